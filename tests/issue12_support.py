"""Helpers for the regression tests of issue 12 (the owned protocol core).

A hand-driven client peer for ``serve_stream`` over memory streams: frames
are built here byte for byte (masked, optionally compressed per RFC 7692),
and a small parser reads back what wsstream wrote, reporting a truncated
frame instead of hanging on it. Only the public API is used on wsstream's side.
"""

from __future__ import annotations

import os
import struct
import zlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import trio
import trio.testing

import wsstream
from tests.peer import Peer, client_request, new_key

Handler = Callable[[wsstream.WebSocketStream], Awaitable[None]]

#: What a browser offers (Chrome, Firefox): permessage-deflate, and that it
#: accepts any window size the server asks of its compressor.
DEFLATE_OFFER = "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits"


def mask(payload: bytes, key: bytes) -> bytes:
    """RFC 6455 5.3 masking, with one big-integer XOR: tests build frames of
    up to a few MiB, and the byte-by-byte loop of ``tests.peer.build_frame``
    would take seconds for those."""
    n = len(payload)
    if not n:
        return b""
    keystream = (key * (n // 4 + 1))[:n]
    value = int.from_bytes(payload, "little") ^ int.from_bytes(keystream, "little")
    return value.to_bytes(n, "little")


def frame(
    opcode: int,
    payload: bytes = b"",
    *,
    fin: bool = True,
    rsv1: bool = False,
    masked: bool = True,
    key: bytes | None = None,
) -> bytes:
    """One frame (RFC 6455 5.2); masked as a client's must be, unless told not."""
    head = (0x80 if fin else 0) | (0x40 if rsv1 else 0) | opcode
    n = len(payload)
    bit = 0x80 if masked else 0
    if n < 126:
        header = struct.pack("!BB", head, bit | n)
    elif n < 65536:
        header = struct.pack("!BBH", head, bit | 126, n)
    else:
        header = struct.pack("!BBQ", head, bit | 127, n)
    if not masked:
        return header + payload
    key = os.urandom(4) if key is None else key
    return header + key + mask(payload, key)


def deflate_message(data: bytes, window_bits: int) -> bytes:
    """One message compressed as RFC 7692 7.2.1 says: raw deflate, a sync
    flush, the trailing ``00 00 ff ff`` removed. A fresh compressor per
    message (no context takeover) is always allowed to the sender."""
    compressor = zlib.compressobj(wbits=-window_bits)
    body = compressor.compress(data) + compressor.flush(zlib.Z_SYNC_FLUSH)
    assert body.endswith(b"\x00\x00\xff\xff")
    return body[:-4]


def client_window_bits(extensions: str) -> int:
    """The ``client_max_window_bits`` the server asked for (15 if none)."""
    for param in extensions.split(";"):
        name, _, value = param.strip().partition("=")
        if name == "client_max_window_bits" and value:
            return int(value.strip('"'))
    return 15


@dataclass
class Parsed:
    """A frame read back from wsstream; ``complete`` is False for a frame
    whose header promised more bytes than arrived before the stream ended."""

    opcode: int
    fin: bool
    length: int
    payload: bytes
    complete: bool


def parse_frames(data: bytes) -> list[Parsed]:
    """Every frame in ``data``, in order; the last may be incomplete."""
    frames: list[Parsed] = []
    pos = 0
    while pos < len(data):
        if len(data) - pos < 2:
            frames.append(Parsed(-1, False, 0, data[pos:], False))
            break
        b0, b1 = data[pos], data[pos + 1]
        n = b1 & 0x7F
        head = 2
        if n == 126:
            head, n = 4, int.from_bytes(data[pos + 2 : pos + 4], "big")
        elif n == 127:
            head, n = 10, int.from_bytes(data[pos + 2 : pos + 10], "big")
        key = b""
        if b1 & 0x80:
            key = data[pos + head : pos + head + 4]
            head += 4
        start, end = pos + head, pos + head + n
        payload = data[start:end]
        complete = end <= len(data) and len(key) in (0, 4)
        if key and complete:
            payload = mask(payload, key)
        frames.append(Parsed(b0 & 0x0F, bool(b0 & 0x80), n, payload, complete))
        if not complete:
            break
        pos = end
    return frames


async def open_server(
    nursery: trio.Nursery,
    handler: Handler,
    *,
    offer: str | None = None,
    **options: object,
) -> tuple[Peer, dict[str, str]]:
    """``serve_stream`` on one end of a memory stream pair, a hand-driven
    client on the other; returns it once the 101 is in, with its headers."""
    server_side, client_side = trio.testing.memory_stream_pair()
    nursery.start_soon(lambda: wsstream.serve_stream(handler, server_side, **options))
    peer = Peer(client_side, is_client=True)
    await client_side.send_all(client_request(new_key(), extra=[offer] if offer else []))
    status, headers = await peer.read_http()
    assert status.startswith("HTTP/1.1 101"), status
    return peer, headers
