"""``send_nowait`` and ``receive_nowait``: trio's memory-channel idiom, no
waiting and no checkpoint (issue 17)."""

from __future__ import annotations

from typing import Any

import pytest
import trio
import trio.testing

import wsstream
from tests.engine.test_engine import open_client
from tests.peer import BINARY, TEXT


async def test_receive_nowait_takes_what_is_buffered_in_order() -> None:
    async with open_client() as (wss, peer):
        readable, *_ = await wss.opened
        with pytest.raises(trio.WouldBlock):
            readable.receive_nowait()
        await peer.send(TEXT, b"one")
        await peer.send(BINARY, b"two")
        await trio.testing.wait_all_tasks_blocked()
        assert readable.statistics() > 0
        assert readable.receive_nowait() == "one"
        assert readable.receive_nowait() == b"two"
        with pytest.raises(trio.WouldBlock):
            readable.receive_nowait()
        assert readable.statistics() == 0


async def test_the_nowait_methods_are_not_checkpoints() -> None:
    async with open_client() as (wss, peer):
        readable, writable, *_ = await wss.opened
        await peer.send(TEXT, b"in")
        await trio.testing.wait_all_tasks_blocked()
        with trio.CancelScope() as scope:  # noqa: ASYNC100 (the point: no checkpoint)
            scope.cancel()
            # Neither sees the cancellation: they never yield.
            assert readable.receive_nowait() == "in"
            writable.send_nowait("out")
        assert await peer.receive_frame() == (TEXT, b"out", True)


async def test_receive_nowait_ends_as_receive_does() -> None:
    async with open_client() as (wss, peer):
        readable, *_ = await wss.opened
        await peer.send(TEXT, b"last")
        await peer.send_close(1000)
        assert await peer.expect_close() == (1000, "")
        await peer.stream.aclose()  # the server ends TCP first
        await wss.closed
        assert readable.receive_nowait() == "last"
        with pytest.raises(trio.EndOfChannel):
            readable.receive_nowait()
    async with open_client() as (wss, peer):
        readable, *_ = await wss.opened
        await readable.aclose()
        with pytest.raises(trio.ClosedResourceError):
            readable.receive_nowait()


async def test_the_documented_batching_loop_ends_cleanly_when_the_peer_closes() -> None:
    # docs/backpressure.md: drain with receive_nowait, which raises
    # EndOfChannel (not WouldBlock) once the end is in and all was taken.
    async with open_client() as (wss, peer):
        readable, *_ = await wss.opened
        for word in (b"one", b"two", b"three"):
            await peer.send(TEXT, word)
        await peer.send_close(1000)
        await trio.testing.wait_all_tasks_blocked()  # all of it is buffered
        batches: list[list[str | bytes]] = []
        async for first in readable:
            batch = [first]
            while True:
                try:
                    batch.append(readable.receive_nowait())
                except (trio.WouldBlock, trio.EndOfChannel):
                    break
            batches.append(batch)
        assert batches == [["one", "two", "three"]]


async def test_send_nowait_refuses_past_write_limit_and_queues_nothing(
    autojump_clock: Any,
) -> None:
    async with open_client(write_limit=1000, lockstep=True) as (wss, peer):
        _, writable, *_ = await wss.opened
        writable.send_nowait(b"a" * 1500)  # under the limit when called
        with pytest.raises(trio.WouldBlock):
            writable.send_nowait(b"b")
        assert wss.statistics().messages_sent == 1
        # send() waits for room instead; the peer reads, both arrive in order.
        async with trio.open_nursery() as nursery:
            nursery.start_soon(writable.send, b"c")
            assert await peer.receive_frame() == (BINARY, b"a" * 1500, True)
            assert await peer.receive_frame() == (BINARY, b"c", True)


async def test_send_nowait_raises_what_send_raises() -> None:
    async with open_client() as (wss, peer):
        _, writable, *_ = await wss.opened
        with pytest.raises(TypeError):
            writable.send_nowait(42)  # type: ignore[arg-type]
        wss.close(1000)
        with pytest.raises(trio.ClosedResourceError):
            writable.send_nowait("late")


async def test_the_batching_pattern_drains_then_awaits_once() -> None:
    # What the docs show: take everything buffered, answer it, await once.
    async with open_client() as (wss, peer):
        readable, writable, *_ = await wss.opened
        for i in range(10):
            await peer.send(TEXT, str(i).encode())
        await trio.testing.wait_all_tasks_blocked()
        batch = [await readable.receive()]
        while True:
            try:
                batch.append(readable.receive_nowait())
            except trio.WouldBlock:
                break
        assert batch == [str(i) for i in range(10)]
        for message in batch:
            writable.send_nowait(message.upper())  # type: ignore[union-attr]
        for i in range(10):
            assert await peer.receive_frame() == (TEXT, str(i).encode(), True)


def test_the_public_channels_have_the_memory_channel_methods() -> None:
    assert callable(wsstream.Readable.receive_nowait)
    assert callable(wsstream.Writable.send_nowait)
