"""A hostile client for the flood-fairness benchmark.

``python -m benchmarks.flooder PORT KIND SECONDS`` opens one WebSocket
connection to 127.0.0.1:PORT (the opening handshake by hand, no extensions)
and sends frames that cost the server parsing but never pile up as data, as
fast as the server reads them:

* ``cont``: a text message started with fin=0, then empty continuation
  frames (6 bytes each, masked) that never end it;
* ``frag``: text messages of 4,096 one-byte fragments each (7 bytes a frame),
  so that ``max_message_size`` never trips;
* ``ping``: empty pings (6 bytes each).

Everything the server sends back (pongs, echoes) is read and discarded by a
second thread, so no output piles up on the server either. If the server
sends a Close or ends the connection, the flooder connects again (counted as
``reconnects``). It prints ``READY`` once
the first batch of frames went out, keeps flooding until a line arrives on
stdin, stdin closes or SECONDS pass, then prints one JSON line: bytes and
frames sent, over how many seconds, reconnections, the last error.
"""

from __future__ import annotations

import base64
import json
import os
import select
import socket
import struct
import sys
import threading
import time

from .common import emit, hard_exit, raise_nofile_limit

#: Bytes per send: large writes, as a fast client's segments arrive
#: coalesced in the server's socket buffer.
BATCH = 256 * 1024
#: One-byte fragments per message in ``frag`` mode.
FRAGMENTS = 4096
KINDS = ("cont", "frag", "ping")


def masked_frame(opcode: int, payload: bytes, key: bytes, *, fin: bool = True) -> bytes:
    """A client frame (RFC 6455 5.2); one masking key for the whole flood so
    that batches are built once by repetition."""
    head = (0x80 if fin else 0) | opcode
    assert len(payload) < 126
    body = bytes(b ^ key[i % 4] for i, b in enumerate(payload))
    return struct.pack("!BB", head, 0x80 | len(payload)) + key + body


def batches(kind: str) -> tuple[bytes, bytes, int]:
    """(bytes sent once per connection, the batch sent over and over, the
    size of one frame in it)."""
    key = os.urandom(4)
    if kind == "cont":
        empty = masked_frame(0x0, b"", key, fin=False)
        return masked_frame(0x1, b"", key, fin=False), empty * (BATCH // len(empty)), len(empty)
    if kind == "frag":
        first = masked_frame(0x1, b"a", key, fin=False)
        middle = masked_frame(0x0, b"a", key, fin=False)
        last = masked_frame(0x0, b"a", key, fin=True)
        message = first + middle * (FRAGMENTS - 2) + last
        return b"", message * max(1, BATCH // len(message)), len(middle)
    if kind == "ping":
        ping = masked_frame(0x9, b"", key)
        return b"", ping * (BATCH // len(ping)), len(ping)
    raise ValueError(f"unknown flood kind {kind!r}")


def connect(port: int, timeout: float) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    key = base64.b64encode(os.urandom(16)).decode()
    sock.sendall(
        (
            "GET /flood HTTP/1.1\r\n"
            f"Host: 127.0.0.1:{port}\r\n"
            "Upgrade: websocket\r\n"
            "Connection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key}\r\n"
            "Sec-WebSocket-Version: 13\r\n"
            "\r\n"
        ).encode()
    )
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(4096)
        if not chunk:
            raise ConnectionError("closed during the handshake")
        data += chunk
    if not data.startswith(b"HTTP/1.1 101"):
        raise ConnectionError(data.split(b"\r\n", 1)[0].decode(errors="replace"))
    return sock


def close_frame_at_end(buf: bytearray) -> bool:
    """Skip the whole frames at the start of ``buf`` (removing them); True if
    one of them is a Close. Server frames are unmasked (RFC 6455 5.1)."""
    pos, end = 0, len(buf)
    closed = False
    while end - pos >= 2:
        n, head = buf[pos + 1] & 0x7F, 2
        if n == 126:
            if end - pos < 4:
                break
            n, head = int.from_bytes(buf[pos + 2 : pos + 4], "big"), 4
        elif n == 127:
            if end - pos < 10:
                break
            n, head = int.from_bytes(buf[pos + 2 : pos + 10], "big"), 10
        if end - pos < head + n:
            break
        closed = closed or buf[pos] & 0x0F == 0x8
        pos += head + n
    del buf[:pos]
    return closed


def drain(sock: socket.socket, done: threading.Event, cut: threading.Event) -> None:
    """Read what the server sends (pongs, echoes) until the connection ends
    or ``done`` is set; set ``cut`` when the server sent a Close (it failed
    the connection, e.g. 1008 for a ping flood): the flooder then connects
    again, as a determined attacker would, instead of flooding a connection
    the server only drains until its close_timeout."""
    buf = bytearray()
    try:
        while not done.is_set():
            readable, _, _ = select.select([sock], [], [], 0.2)
            if not readable:
                continue
            try:
                data = sock.recv(262144)
            except BlockingIOError:
                continue
            if not data:
                break
            buf += data
            if close_frame_at_end(buf):
                break
    except (OSError, ValueError):  # closed under us, or reset
        pass
    cut.set()


def flood(
    sock: socket.socket, batch: bytes, stop: threading.Event, cut: threading.Event,
    deadline: float,
) -> tuple[int, str]:
    """Send ``batch`` over and over, as fast as the server takes it, until
    ``stop``, the deadline or an error; returns the bytes sent and the error.
    Non-blocking sends: a server that stops reading cannot hold the flooder
    past its deadline, and no frame is ever cut (the batch is resumed where a
    send stopped)."""
    view = memoryview(batch)
    offset = sent = 0
    while not stop.is_set() and not cut.is_set() and time.monotonic() < deadline:
        _, writable, _ = select.select([], [sock], [], 0.2)
        if not writable:
            continue
        try:
            n = sock.send(view[offset:])
        except BlockingIOError:
            continue
        except OSError as exc:  # the server closed or reset the connection
            return sent, f"send: {exc}"
        sent += n
        offset = (offset + n) % len(batch)
    return sent, ""


def main(port: int, kind: str, seconds: float) -> None:
    first, batch, frame_size = batches(kind)
    stop = threading.Event()
    deadline = time.monotonic() + seconds
    stats: dict[str, object] = {"kind": kind, "bytes": 0, "frames": 0, "reconnects": 0,
                                "error": ""}
    total = 0
    started = time.monotonic()

    def wait_for_stdin() -> None:
        sys.stdin.readline()
        stop.set()

    threading.Thread(target=wait_for_stdin, daemon=True).start()
    connections = 0
    while not stop.is_set() and time.monotonic() < deadline:
        try:
            sock = connect(port, timeout=10)
        except OSError as exc:
            stats["error"] = f"connect: {exc}"
            time.sleep(0.1)
            continue
        connections += 1
        done, cut = threading.Event(), threading.Event()
        reader = threading.Thread(target=drain, args=(sock, done, cut), daemon=True)
        reader.start()
        try:
            sock.sendall(first)  # blocking still: a few bytes
            sock.setblocking(False)
            if connections == 1:
                emit("READY")
                started = time.monotonic()
            sent, error = flood(sock, batch, stop, cut, deadline)
            total += sent
            stats["error"] = error or stats["error"]
        except OSError as exc:
            stats["error"] = f"send: {exc}"
        finally:
            done.set()
            reader.join(1)
            sock.close()
    stats.update(bytes=total, frames=total // frame_size, reconnects=max(0, connections - 1),
                 seconds=time.monotonic() - started)
    if not connections:
        emit(f"ERROR {stats['error'] or 'never connected'}")
    emit(json.dumps(stats))


if __name__ == "__main__":
    raise_nofile_limit()
    try:
        main(int(sys.argv[1]), sys.argv[2], float(sys.argv[3]))
    except Exception as exc:
        emit(f"ERROR {type(exc).__name__}: {exc}")
        hard_exit(1)
    hard_exit(0)
