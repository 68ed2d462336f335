"""A 256 MiB message each way through a server that streams it to a hash:
the server process's peak RSS grows by less than 16 MiB (issue 16)."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import pytest
import trio

import wsstream
from tests.interop_support import LineReader
from tests.peers.streaming_server import BLOCK, block, blocks

pytestmark = pytest.mark.slow

SERVER = Path(__file__).parent.parent / "peers" / "streaming_server.py"
SIZE = 256 * 2**20


async def test_256_mib_each_way_through_a_streaming_server_in_bounded_memory() -> None:
    process = await trio.lowlevel.open_process(
        [sys.executable, str(SERVER), str(SIZE)], stdout=subprocess.PIPE
    )
    try:
        assert process.stdout is not None
        lines = LineReader(process.stdout)
        with trio.fail_after(30):
            port = int((await lines.readline()).split()[1])
        with trio.fail_after(300):
            async with wsstream.WebSocketStream(
                f"ws://127.0.0.1:{port}/", compression=None, ping_interval=None
            ) as wss:
                readable, writable, *_ = await wss.opened
                sent = hashlib.sha256()
                left = SIZE
                async with writable.send_stream() as message:
                    for n in blocks(SIZE, seed=1000):
                        piece = block(n, min(BLOCK, left))
                        left -= len(piece)
                        sent.update(piece)
                        await message.send(piece)
                assert await readable.receive() == sent.hexdigest()
                expected = hashlib.sha256()
                left = SIZE
                for n in blocks(SIZE):
                    expected.update(block(n, min(BLOCK, left)))
                    left -= BLOCK
                got = hashlib.sha256()
                async with readable.receive_stream() as back:
                    async for chunk in back:
                        got.update(chunk)  # type: ignore[arg-type]
                assert back.size == SIZE
                assert got.hexdigest() == expected.hexdigest()
            report = json.loads(await lines.readline())
    finally:
        process.kill()
        await process.wait()
    assert report["received_size"] == SIZE
    assert report["received_sha256"] == sent.hexdigest()
    print(f"server peak RSS growth: {report['rss_growth'] / 2**20:.1f} MiB")
    assert report["rss_growth"] < 16 * 2**20
