"""A client streaming large messages does not fault its heap in again for
each one (wsstream/_protocol/frames.py, KEEP_MASKED_MIN).

Each large masked frame is a fresh allocation of its size. When the engine
freed two of them, glibc gave the top of its heap back to the system and the
next frame's masking faulted it in again: about 70 page faults per MiB sent,
a third of the client's CPU. The client here runs in a process of its own
(the server's allocations in this one would change the pattern) and reports
its minor page faults per message.
"""

from __future__ import annotations

import json
import os
import platform
import sys
from pathlib import Path

import pytest
import trio

import wsstream
from tests.conftest import Server
from wsstream._protocol import frames

pytestmark = pytest.mark.skipif(
    sys.platform != "linux" or platform.libc_ver()[0] != "glibc",
    reason="the heap's behaviour measured here is glibc's, on Linux",
)

MESSAGES = 200

CLIENT = """
import json, resource, sys, trio, wsstream

async def main(url, count):
    async with wsstream.WebSocketStream(url, compression=None, ping_interval=None,
                                        max_message_size=None) as wss:
        readable, writable, *_ = await wss.opened
        message = b"m" * (1 << 20)
        for _ in range(20):  # warm up: the heap reaches its working size
            await writable.send(message)
        await writable.send(b"mark")
        await readable.receive()
        before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        for _ in range(count):
            await writable.send(message)
        await writable.send(b"mark")
        await readable.receive()
        after = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        wss.close()
    print(json.dumps({"faults_per_message": (after - before) / count}))

trio.run(main, sys.argv[1], int(sys.argv[2]))
"""


async def _sink(wss: wsstream.WebSocketStream) -> None:
    readable, writable, *_ = await wss.opened
    async for message in readable:
        if len(message) < 10:
            await writable.send(message)


async def test_sending_1_mib_messages_does_not_fault_the_heap_in_each_time(
    server: Server,
) -> None:
    url = await server.start(_sink, max_message_size=None, compression=None)
    # Untraced: coverage's tracer (CI) would allocate in the client too.
    env = {k: v for k, v in os.environ.items() if not k.startswith(("COV_CORE", "COVERAGE"))}
    with trio.fail_after(60):
        result = await trio.run_process(
            [sys.executable, "-c", CLIENT, url, str(MESSAGES)], capture_stdout=True, env=env,
            cwd=Path(__file__).parent.parent.parent,
        )
    faults = json.loads(result.stdout.decode().splitlines()[-1])["faults_per_message"]
    # A MiB is 256 pages: 65-71 faults per message before, 0-1 after.
    assert faults < 16, f"{faults:.1f} minor page faults per 1 MiB message sent"


def test_only_a_bounded_masked_payload_is_kept() -> None:
    small = frames.frame(0x82, b"s" * 1000, True)
    large = frames.frame(0x82, b"l" * frames.KEEP_MASKED_MIN, True)
    assert frames._kept.data is large[-1]
    frames.frame(0x82, b"h" * (frames.KEEP_MASKED_MAX + 4), True)
    assert frames._kept.data is large[-1]  # too large to keep: the last kept stays
    assert small  # small frames are never kept
