"""A cheap client for the idle-connection memory benchmark.

``python -m benchmarks.memclient PORT N [ws|raw|deflate|deflate-msg|deflate-nct-msg]`` opens N
TCP connections to 127.0.0.1:PORT and, in ``ws`` mode, performs each opening
handshake by hand (one GET with Upgrade, read up to the end of the 101
response); ``raw`` mode (for the raw-trio floor) only connects. ``deflate``
offers permessage-deflate as browsers do (``permessage-deflate;
client_max_window_bits``); ``deflate-msg`` also sends one small text message
(compressed if the server accepted the offer, as a browser would) and reads
its echo, so that each connection has used its compression both ways;
``deflate-nct-msg`` does the same with an offer that also asks for
``server_no_context_takeover`` and ``client_no_context_takeover``, so that
both ends may release their zlib contexts after each message. It
prints ``READY <n>`` once all are open, then keeps them idle until stdin
closes or a line arrives, and exits.
Written with raw non-blocking sockets and asyncio so that the client holds
10,000 connections in a few megabytes and is never the bottleneck.
"""

from __future__ import annotations

import asyncio
import base64
import os
import socket
import struct
import sys
import zlib

from .common import emit, hard_exit, raise_nofile_limit

CONCURRENCY = 64
MODES = ("ws", "raw", "deflate", "deflate-msg", "deflate-nct-msg")
#: What Chrome and Firefox send.
DEFLATE_OFFER = "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n"
#: The offer of ``deflate-nct-msg`` mode: no context takeover either way.
DEFLATE_NCT_OFFER = (
    "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits; "
    "server_no_context_takeover; client_no_context_takeover\r\n"
)
#: The message of the ``*-msg`` modes: a chat event of typical size (168
#: bytes; the chat workload of benchmarks.deflate_settings has 100-300), so
#: that a server's ``min_size`` below that does not leave it uncompressed.
MESSAGE = (
    b'{"type":"message","id":"5f2c9a1e7b3d","channel":"general",'
    b'"user":{"id":"u4821","name":"Alice"},'
    b'"text":"sounds good, I will push the fix after lunch","ts":1718031234567}'
)


def request(port: int, offer: str = "") -> bytes:
    key = base64.b64encode(os.urandom(16)).decode()
    return (
        "GET /idle HTTP/1.1\r\n"
        f"Host: 127.0.0.1:{port}\r\n"
        "Upgrade: websocket\r\n"
        "Connection: Upgrade\r\n"
        f"Sec-WebSocket-Key: {key}\r\n"
        "Sec-WebSocket-Version: 13\r\n"
        + offer
        + "\r\n"
    ).encode()


def client_window_bits(head: bytes) -> int | None:
    """The client_max_window_bits of an accepted permessage-deflate offer
    (15 when the server set none), or None if it was not accepted."""
    for line in head.decode("latin-1").split("\r\n")[1:]:
        name, _, value = line.partition(":")
        if name.strip().lower() != "sec-websocket-extensions":
            continue
        params = [p.strip() for p in value.split(";")]
        if params[0] != "permessage-deflate":
            continue
        for param in params[1:]:
            key, _, bits = param.partition("=")
            if key.strip() == "client_max_window_bits" and bits:
                return int(bits.strip('"'))
        return 15
    return None


def text_frame(payload: bytes, window_bits: int | None) -> bytes:
    """A masked text frame, compressed as RFC 7692 says when negotiated."""
    head = 0x81
    if window_bits is not None:
        compressor = zlib.compressobj(wbits=-window_bits)
        payload = (compressor.compress(payload) + compressor.flush(zlib.Z_SYNC_FLUSH))[:-4]
        head |= 0x40  # RSV1: this message is compressed
    assert len(payload) < 65536
    key = os.urandom(4)
    masked = bytes(b ^ key[i % 4] for i, b in enumerate(payload))
    if len(payload) < 126:
        return struct.pack("!BB", head, 0x80 | len(payload)) + key + masked
    return struct.pack("!BBH", head, 0x80 | 126, len(payload)) + key + masked


async def read_frame(loop: asyncio.AbstractEventLoop, sock: socket.socket, buf: bytes) -> None:
    """Read one whole (unmasked, server) frame, ``buf`` being what came
    after the 101; its content is not checked (it may be compressed)."""
    data = bytearray(buf)

    async def need(n: int) -> None:
        while len(data) < n:
            chunk = await loop.sock_recv(sock, 4096)
            if not chunk:
                raise ConnectionError("closed before the echo")
            data.extend(chunk)

    await need(2)
    n, head = data[1] & 0x7F, 2
    if n == 126:
        await need(4)
        n, head = struct.unpack("!H", data[2:4])[0], 4
    elif n == 127:
        await need(10)
        n, head = struct.unpack("!Q", data[2:10])[0], 10
    await need(head + n)


async def open_one(port: int, mode: str) -> socket.socket:
    loop = asyncio.get_running_loop()
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setblocking(False)
    await loop.sock_connect(sock, ("127.0.0.1", port))
    if mode != "raw":
        offer = {"deflate-nct-msg": DEFLATE_NCT_OFFER}.get(
            mode, DEFLATE_OFFER if mode.startswith("deflate") else ""
        )
        await loop.sock_sendall(sock, request(port, offer))
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = await loop.sock_recv(sock, 4096)
            if not chunk:
                raise ConnectionError("closed during the handshake")
            data += chunk
        if not data.startswith(b"HTTP/1.1 101"):
            raise ConnectionError(data.split(b"\r\n", 1)[0].decode(errors="replace"))
        if mode.endswith("-msg"):
            head, _, rest = data.partition(b"\r\n\r\n")
            await loop.sock_sendall(sock, text_frame(MESSAGE, client_window_bits(head)))
            await read_frame(loop, sock, rest)
    return sock


async def main(port: int, count: int, mode: str) -> None:
    socks: list[socket.socket] = []
    slots = asyncio.Semaphore(CONCURRENCY)

    async def one() -> None:
        async with slots:
            socks.append(await open_one(port, mode))

    await asyncio.gather(*(one() for _ in range(count)))
    emit(f"READY {len(socks)}")
    loop = asyncio.get_running_loop()
    await loop.run_in_executor(None, sys.stdin.readline)


if __name__ == "__main__":
    raise_nofile_limit()
    port, count = int(sys.argv[1]), int(sys.argv[2])
    mode = sys.argv[3] if len(sys.argv) > 3 else "ws"
    if mode not in MODES:
        raise SystemExit(f"unknown mode {mode!r}")
    try:
        asyncio.run(main(port, count, mode))
    except Exception as exc:
        emit(f"ERROR {type(exc).__name__}: {exc}")
        hard_exit(1)
    hard_exit(0)
