"""A cheap client for the idle-connection memory benchmark.

``python -m benchmarks.memclient PORT N [ws|raw]`` opens N TCP connections to
127.0.0.1:PORT and, in ``ws`` mode, performs each opening handshake by hand
(one GET with Upgrade, read up to the end of the 101 response); ``raw`` mode
(for the raw-trio floor) only connects. It prints ``READY <n>`` once all are
open, then keeps them idle until stdin closes or a line arrives, and exits.
Written with raw non-blocking sockets and asyncio so that the client holds
10,000 connections in a few megabytes and is never the bottleneck.
"""

from __future__ import annotations

import asyncio
import base64
import os
import socket
import sys

from .common import emit, hard_exit, raise_nofile_limit

CONCURRENCY = 64


def request(port: int) -> bytes:
    key = base64.b64encode(os.urandom(16)).decode()
    return (
        "GET /idle HTTP/1.1\r\n"
        f"Host: 127.0.0.1:{port}\r\n"
        "Upgrade: websocket\r\n"
        "Connection: Upgrade\r\n"
        f"Sec-WebSocket-Key: {key}\r\n"
        "Sec-WebSocket-Version: 13\r\n"
        "\r\n"
    ).encode()


async def open_one(port: int, handshake: bool) -> socket.socket:
    loop = asyncio.get_running_loop()
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setblocking(False)
    await loop.sock_connect(sock, ("127.0.0.1", port))
    if handshake:
        await loop.sock_sendall(sock, request(port))
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = await loop.sock_recv(sock, 4096)
            if not chunk:
                raise ConnectionError("closed during the handshake")
            data += chunk
        if not data.startswith(b"HTTP/1.1 101"):
            raise ConnectionError(data.split(b"\r\n", 1)[0].decode(errors="replace"))
    return sock


async def main(port: int, count: int, handshake: bool) -> None:
    socks: list[socket.socket] = []
    slots = asyncio.Semaphore(CONCURRENCY)

    async def one() -> None:
        async with slots:
            socks.append(await open_one(port, handshake))

    await asyncio.gather(*(one() for _ in range(count)))
    emit(f"READY {len(socks)}")
    loop = asyncio.get_running_loop()
    await loop.run_in_executor(None, sys.stdin.readline)


if __name__ == "__main__":
    raise_nofile_limit()
    port, count = int(sys.argv[1]), int(sys.argv[2])
    mode = sys.argv[3] if len(sys.argv) > 3 else "ws"
    try:
        asyncio.run(main(port, count, mode == "ws"))
    except Exception as exc:
        emit(f"ERROR {type(exc).__name__}: {exc}")
        hard_exit(1)
    hard_exit(0)
