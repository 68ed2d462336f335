"""Client and server, both wsstream, over real TCP on 127.0.0.1."""

from __future__ import annotations

import pytest
import trio

import wsstream
from tests.conftest import Server, echo_handler, pipeline


async def test_echo_text_and_binary(echo_url: str) -> None:
    async with wsstream.WebSocketStream(echo_url) as wss:
        readable, writable, extensions, protocol = await wss.opened
        await writable.send("héllo")
        await writable.send(b"\x00\xff")
        await writable.send(bytearray(b"ba"))
        await writable.send(memoryview(b"mv"))
        assert await readable.receive() == "héllo"
        assert await readable.receive() == b"\x00\xff"
        assert await readable.receive() == b"ba"
        assert await readable.receive() == b"mv"
        wss.close()
        assert await wss.closed == (1005, "")


@pytest.mark.parametrize("compression", ["deflate", None])
async def test_pipelined_64_messages_of_1_mib_each_way(
    server: Server, compression: str | None
) -> None:
    # Engine rule 1: the reader never waits on the writer, so a deep pipeline
    # of big messages in both directions cannot deadlock.
    url = await server.start(echo_handler, compression=compression, max_message_size=2**21)
    payload = bytes(range(256)) * 4096  # 1 MiB
    async with wsstream.WebSocketStream(
        url, compression=compression, max_message_size=2**21
    ) as wss:
        readable, writable, *_ = await wss.opened
        with trio.fail_after(60):
            await pipeline(readable, writable, payload, 64)
        assert wss.statistics().messages_received == 64


async def test_a_handler_closing_with_a_full_readable_closes_cleanly_on_both_sides(
    server: Server,
) -> None:
    # The handler never reads: its readable is over read_limit, yet its Close
    # must still be answered and read (found by the WPT translation work).
    outcome: list[object] = []
    done = trio.Event()

    async def handler(wss: wsstream.WebSocketStream) -> None:
        await wss.opened
        # Nothing signals "a message was buffered"; poll the counter.
        while wss.statistics().buffered_in == 0:  # noqa: ASYNC110
            await trio.sleep(0.01)
        wss.close(4567)
        try:
            outcome.append(await wss.closed)
        except wsstream.WebSocketError as exc:
            outcome.append(exc)
        done.set()

    url = await server.start(handler, read_limit=1)
    async with wsstream.WebSocketStream(url) as wss:
        _, writable, *_ = await wss.opened
        await writable.send(b"x" * 1000)
        with trio.fail_after(5):  # close_timeout is 10 s
            assert await wss.closed == (4567, "")
    with trio.fail_after(5):
        await done.wait()
    assert outcome == [(4567, "")]
