"""A wsstream server in a process of its own, for the peak-memory test of
streamed messages (tests/engine/test_large_messages_rss.py).

    streaming_server.py SIZE

Prints ``PORT <n>`` once it listens on 127.0.0.1. One connection: it reads
one message with ``receive_stream()`` into a sha256, answers the digest as
text, sends back a SIZE-byte message with ``send_stream()`` (blocks of a
seeded generator), then prints one JSON line: the digest it received and
``rss_growth`` in bytes (the peak resident size from the moment it listens,
VmHWM after resetting it through /proc/self/clear_refs, less the resident
size then), and exits.
"""

from __future__ import annotations

import functools
import hashlib
import json
import random
import sys

import trio

import wsstream

BLOCK = 256 * 1024


def blocks(size: int, seed: int = 7) -> list[int]:
    return [seed + i for i in range((size + BLOCK - 1) // BLOCK)]


def block(n: int, size: int) -> bytes:
    return random.Random(n).randbytes(size)


def _status(field: str) -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024  # kB
    raise LookupError(field)


def reset_peak() -> int:
    """Start measuring the peak from now (Linux: writing 5 to clear_refs
    resets VmHWM); returns the resident size now."""
    with open("/proc/self/clear_refs", "w") as clear:
        clear.write("5")
    return _status("VmRSS")


def peak_rss() -> int:
    """The peak resident size since reset_peak()."""
    return _status("VmHWM")


async def main(size: int) -> None:
    done = trio.Event()
    report: dict[str, object] = {}

    async def handler(wss: wsstream.WebSocketStream) -> None:
        readable, writable, *_ = await wss.opened
        hasher = hashlib.sha256()
        if "--whole" in sys.argv:  # the control: the message reassembled
            data = await readable.receive()
            hasher.update(data)  # type: ignore[arg-type]
            report["received_size"] = len(data)
            del data
        else:
            async with readable.receive_stream() as message:
                async for chunk in message:
                    hasher.update(chunk)  # type: ignore[arg-type]
            report["received_size"] = message.size
        report["received_sha256"] = hasher.hexdigest()
        await writable.send(hasher.hexdigest())
        left = size
        async with writable.send_stream() as out:
            for n in blocks(size):
                piece = block(n, min(BLOCK, left))
                left -= len(piece)
                await out.send(piece)
        async for _ in readable:
            pass
        done.set()

    async with trio.open_nursery() as nursery:
        listeners = await nursery.start(
            functools.partial(
                wsstream.serve, handler, "127.0.0.1", 0,
                compression=None, ping_interval=None,
                max_message_size=None if "--whole" in sys.argv else 2**20,
            )
        )
        baseline = reset_peak()
        print(f"PORT {listeners[0].socket.getsockname()[1]}", flush=True)
        await done.wait()
        report["rss_growth"] = peak_rss() - baseline
        print(json.dumps(report), flush=True)
        nursery.cancel_scope.cancel()


if __name__ == "__main__":
    trio.run(main, int(sys.argv[1]))
