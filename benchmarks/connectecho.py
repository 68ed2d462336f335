"""An honest client for the flood-fairness benchmark.

``python -m benchmarks.connectecho PORT COUNT SECONDS`` measures, COUNT
times one after the other, the latency a new client sees: connect to
127.0.0.1:PORT, do the opening handshake (by hand, no extensions), send one
32-byte binary message, read its echo; then it sends a Close and leaves.
Plain blocking sockets: the client is never the bottleneck, and it works
the same against every server. It stops early once SECONDS have passed
(a starved server can take a second per sample) and prints one JSON line:
median and p99 in microseconds over the samples it got, how many, and how
many failed (a sample times out after SECONDS too).
"""

from __future__ import annotations

import base64
import json
import os
import socket
import statistics
import struct
import sys
import time

from .common import emit, hard_exit

PAYLOAD = bytes(range(32))


def _read_exact(sock: socket.socket, n: int, buf: bytearray) -> bytes:
    while len(buf) < n:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("closed by the server")
        buf += chunk
    data = bytes(buf[:n])
    del buf[:n]
    return data


def one_sample(port: int, timeout: float) -> int:
    """One connect-and-echo, in nanoseconds."""
    key = os.urandom(4)
    message = struct.pack("!BB", 0x82, 0x80 | len(PAYLOAD)) + key + bytes(
        b ^ key[i % 4] for i, b in enumerate(PAYLOAD)
    )
    request = (
        "GET /echo HTTP/1.1\r\n"
        f"Host: 127.0.0.1:{port}\r\n"
        "Upgrade: websocket\r\n"
        "Connection: Upgrade\r\n"
        f"Sec-WebSocket-Key: {base64.b64encode(os.urandom(16)).decode()}\r\n"
        "Sec-WebSocket-Version: 13\r\n"
        "\r\n"
    ).encode()
    start = time.perf_counter_ns()
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.sendall(request)
        buf = bytearray()
        while b"\r\n\r\n" not in buf:
            chunk = sock.recv(4096)
            if not chunk:
                raise ConnectionError("closed during the handshake")
            buf += chunk
        head, _, rest = bytes(buf).partition(b"\r\n\r\n")
        if not head.startswith(b"HTTP/1.1 101"):
            raise ConnectionError(head.split(b"\r\n", 1)[0].decode(errors="replace"))
        buf = bytearray(rest)
        sock.sendall(message)
        b0, b1 = _read_exact(sock, 2, buf)
        n = b1 & 0x7F
        if n == 126:
            (n,) = struct.unpack("!H", _read_exact(sock, 2, buf))
        elif n == 127:
            (n,) = struct.unpack("!Q", _read_exact(sock, 8, buf))
        echo = _read_exact(sock, n, buf)
        elapsed = time.perf_counter_ns() - start
        if (b0 & 0x0F, echo) != (0x2, PAYLOAD):
            raise ValueError(f"not the echo: opcode {b0 & 0x0F}, {len(echo)} bytes")
        # A Close with 1000, then leave without waiting (not measured).
        close_key = os.urandom(4)
        code = struct.pack("!H", 1000)
        sock.sendall(
            b"\x88\x82" + close_key + bytes(b ^ close_key[i] for i, b in enumerate(code))
        )
    return elapsed


def main(port: int, count: int, seconds: float) -> dict[str, object]:
    deadline = time.monotonic() + seconds
    latencies: list[int] = []
    failures: list[str] = []
    for _ in range(count):
        left = deadline - time.monotonic()
        if left <= 0:
            break
        try:
            latencies.append(one_sample(port, left))
        except (OSError, ValueError) as exc:
            failures.append(f"{type(exc).__name__}: {exc}")
    if not latencies:
        return {"ok": False, "error": failures[0] if failures else "timeout"}
    latencies.sort()
    p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))]
    return {
        "ok": True,
        "median_us": statistics.median(latencies) / 1000,
        "p99_us": p99 / 1000,
        "samples": len(latencies),
        "failed": len(failures),
        "first_failure": failures[0] if failures else "",
    }


if __name__ == "__main__":
    try:
        result = main(int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3]))
    except Exception as exc:
        result = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
    emit(json.dumps(result))
    hard_exit(0 if result.get("ok") else 1)
