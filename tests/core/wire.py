"""Frames as bytes, for the protocol core's tests: build them and read
them back, independently of the code under test."""

from __future__ import annotations

import os
import struct
import zlib

from wsstream._protocol.frames import py_apply_mask

CONT, TEXT, BINARY, CLOSE, PING, PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA


def build(
    opcode: int,
    payload: bytes = b"",
    *,
    fin: bool = True,
    mask: bool = True,
    rsv1: bool = False,
    rsv2: bool = False,
    length: int | None = None,
) -> bytes:
    """One frame; ``mask`` for a client's; ``length`` overrides the header's."""
    head = (0x80 if fin else 0) | (0x40 if rsv1 else 0) | (0x20 if rsv2 else 0) | opcode
    n = len(payload) if length is None else length
    bit = 0x80 if mask else 0
    if n < 126:
        header = struct.pack("!BB", head, bit | n)
    elif n < 65536:
        header = struct.pack("!BBH", head, bit | 126, n)
    else:
        header = struct.pack("!BBQ", head, bit | 127, n)
    if mask:
        key = os.urandom(4)
        return header + key + py_apply_mask(payload, key)
    return header + payload


def read_frames(data: bytes) -> list[tuple[int, bool, bool, bytes]]:
    """(opcode, fin, rsv1, unmasked payload) of each whole frame in ``data``."""
    frames = []
    pos = 0
    while pos < len(data):
        head, second = data[pos], data[pos + 1]
        n = second & 0x7F
        pos += 2
        if n == 126:
            n = int.from_bytes(data[pos : pos + 2], "big")
            pos += 2
        elif n == 127:
            n = int.from_bytes(data[pos : pos + 8], "big")
            pos += 8
        key = b""
        if second & 0x80:
            key = data[pos : pos + 4]
            pos += 4
        payload = data[pos : pos + n]
        assert len(payload) == n, "truncated frame"
        pos += n
        if key:
            payload = py_apply_mask(payload, key)
        frames.append((head & 0x0F, bool(head & 0x80), bool(head & 0x40), payload))
    return frames


class Compressor:
    """A peer's permessage-deflate sender (RFC 7692 7.2.1), context kept."""

    def __init__(self, wbits: int = 15) -> None:
        self._c = zlib.compressobj(6, zlib.DEFLATED, -wbits)

    def compress(self, data: bytes) -> bytes:
        out = self._c.compress(data) + self._c.flush(zlib.Z_SYNC_FLUSH)
        assert out.endswith(b"\x00\x00\xff\xff")
        return out[:-4]


def inflate(payload: bytes, d: zlib._Decompress | None = None) -> bytes:
    d = d or zlib.decompressobj(-15)
    return d.decompress(payload + b"\x00\x00\xff\xff")
