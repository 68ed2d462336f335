"""Memory bounds: what a connection holds stays within its limits.

The contract (API.md, ARCHITECTURE.md rule 3): a connection holds at most
``read_limit`` of unread messages (plus what one read brings in), at most
``write_limit`` of unsent bytes (plus the message being queued), one partial
message of at most ``max_message_size``, a bounded amount of control
replies, and a constant. Checked two ways: ``wss.statistics()`` (the
engine's own counters) and ``tracemalloc`` (what Python really allocated
while the flood ran, so a buffer the counters miss shows up too).

The peer writes over ``lockstep_stream_pair``: its ``send_all`` waits until
we read, so bytes we do not read stay in the peer's (pre-built) frames and
are not counted; everything that grows is ours. Never wall time: progress
is judged with ``wait_all_tasks_blocked``.
"""

from __future__ import annotations

import contextlib
import tracemalloc
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager
from typing import Any

import pytest
import trio
import trio.testing

import wsstream
from tests.hostile import TrackedStream
from tests.peer import BINARY, CONT, PING, TEXT, Peer, build_frame

READ_LIMIT = 64 * 1024
WRITE_LIMIT = 16 * 1024
MAX_MESSAGE = 64 * 1024
#: What one connection may hold beyond its limits: read buffers (one
#: 64 KiB read), the core's parser state, bookkeeping.
CONSTANT = 160 * 1024
#: The engine's documented bounds beyond read_limit: one read
#: (MIN_RECEIVE) lands whole, and pending pongs are capped.
MIN_RECEIVE = 4096
MAX_PENDING_CONTROL = 128 * 1024
PARSE_FRAMES = 64  # the engine's parse step (wsstream._engine.connection)

OPTIONS: dict[str, Any] = {
    "compression": None,
    "ping_interval": None,
    "close_timeout": 5,
    "read_limit": READ_LIMIT,
    "write_limit": WRITE_LIMIT,
    "max_message_size": MAX_MESSAGE,
}


class Growth:
    """Memory allocated since the start of a ``measure()`` block."""

    def __init__(self) -> None:
        self.base = 0
        self.current = 0
        self.peak = 0


@contextmanager
def measure() -> Iterator[Growth]:
    growth = Growth()
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        growth.base = tracemalloc.get_traced_memory()[0]
        yield growth
        current, peak = tracemalloc.get_traced_memory()
        growth.current = current - growth.base
        growth.peak = peak - growth.base
    finally:
        tracemalloc.stop()


@asynccontextmanager
async def client(
    **options: Any,
) -> AsyncIterator[tuple[wsstream.WebSocketStream, Peer, TrackedStream]]:
    ours, theirs = trio.testing.lockstep_stream_pair()
    stream = TrackedStream(ours)
    peer = Peer(theirs, is_client=False)
    with trio.fail_after(600):
        async with wsstream.WebSocketStream(
            "ws://test/", stream=stream, **{**OPTIONS, **options}
        ) as wss:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(peer.accept)
                await wss.opened
            yield wss, peer, stream
            # The server ends TCP first; don't wait for close_timeout.
            nursery_scope = trio.CancelScope(deadline=trio.current_time() + 1)
            with nursery_scope:
                await theirs.aclose()


async def send_frames(peer: Peer, frames: Sequence[bytes], sent: list[int]) -> None:
    """Write pre-built frames one by one (each waits for our reader)."""
    for frame in frames:
        await peer.stream.send_all(frame)
        sent[0] += 1


@asynccontextmanager
async def flooding(peer: Peer, frames: Sequence[bytes]) -> AsyncIterator[list[int]]:
    """The peer writes ``frames`` in the background; the block starts once
    our reader paused (everyone blocked). Yields the count written so far;
    on exit, waits for the peer to finish (the block must read it all) or
    abandons it if the connection ended."""
    sent = [0]
    async with trio.open_nursery() as nursery:

        async def write() -> None:
            with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError):
                await send_frames(peer, frames, sent)

        nursery.start_soon(write)
        await trio.testing.wait_all_tasks_blocked()
        yield sent


async def test_a_slow_reader_pauses_the_socket_at_read_limit(autojump_clock: Any) -> None:
    frames = [build_frame(BINARY, i.to_bytes(4, "big") * 25) for i in range(10_000)]
    async with client() as (wss, peer, stream):
        readable, *_ = await wss.opened
        with measure() as growth:
            async with flooding(peer, frames) as sent:
                stats = wss.statistics()
                held = tracemalloc.get_traced_memory()[0] - growth.base
                assert sent[0] < len(frames)  # reading paused: the peer is held back
                # Nothing was lost: reading resumes and everything comes, in order.
                for i in range(len(frames)):
                    assert await readable.receive() == i.to_bytes(4, "big") * 25
        assert READ_LIMIT <= stats.buffered_in <= READ_LIMIT + MIN_RECEIVE + 100
        assert held <= 2 * READ_LIMIT + CONSTANT  # 100-byte messages: some overhead


async def test_maximal_messages_hold_at_most_read_limit_plus_one_message(
    autojump_clock: Any,
) -> None:
    payload = bytes(range(256)) * (MAX_MESSAGE // 256)
    frames = [build_frame(BINARY, payload) for _ in range(20)]
    async with client() as (wss, peer, stream):
        readable, *_ = await wss.opened
        with measure() as growth:
            async with flooding(peer, frames) as sent:
                stats = wss.statistics()
                assert sent[0] < len(frames)
                for _ in range(len(frames)):
                    assert await readable.receive() == payload
        assert stats.buffered_in <= READ_LIMIT + MAX_MESSAGE
        assert growth.current <= READ_LIMIT + MAX_MESSAGE + MAX_MESSAGE + CONSTANT
        # Transient copies while a frame is parsed and unmasked: bounded too.
        assert growth.peak <= READ_LIMIT + 4 * MAX_MESSAGE + CONSTANT


async def test_a_fragmented_maximal_message_is_bounded_while_it_is_assembled(
    autojump_clock: Any,
) -> None:
    piece = b"f" * 1024
    n = MAX_MESSAGE // len(piece)
    frames = [build_frame(TEXT if i == 0 else CONT, piece, fin=i == n - 1) for i in range(n)]
    async with client() as (wss, peer, stream):
        readable, *_ = await wss.opened
        with measure() as growth:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(send_frames, peer, frames[:-1], [0])
            await trio.testing.wait_all_tasks_blocked()
            partial = tracemalloc.get_traced_memory()[0] - growth.base
        assert wss.statistics().buffered_in == 0  # not a message yet
        assert partial <= MAX_MESSAGE + CONSTANT
        await peer.stream.send_all(frames[-1])
        assert await readable.receive() == (piece * n).decode()


async def test_ten_thousand_queued_sends_wait_at_write_limit(autojump_clock: Any) -> None:
    message = b"m" * 100
    async with client() as (wss, peer, stream):
        _, writable, *_ = await wss.opened
        stream.pause_sends()  # the peer does not read for now
        queued = 0
        with measure() as growth:
            with trio.move_on_after(10):
                for _ in range(10_000):
                    await writable.send(message)
                    queued += 1
            stats = wss.statistics()
        assert queued < 10_000  # send() waited: backpressure
        assert stats.buffered_out <= WRITE_LIMIT + len(message) + 10
        assert growth.current <= 2 * WRITE_LIMIT + CONSTANT
        # The peer starts reading: every queued message arrives, in order.
        stream.resume_sends()
        async with trio.open_nursery() as nursery:

            async def rest() -> None:
                for _ in range(10_000 - queued):
                    await writable.send(message)

            nursery.start_soon(rest)
            for _ in range(10_000):
                assert await peer.receive_frame() == (BINARY, message, True)
        assert wss.statistics().messages_sent == 10_000


async def test_a_ping_flood_without_reading_is_capped_then_failed_with_1008(
    autojump_clock: Any,
) -> None:
    frames = [build_frame(PING, b"p" * 125) for _ in range(3000)]
    async with client(close_timeout=1) as (wss, peer, stream):
        stream.pause_sends()  # the flooder never reads our pongs
        with measure() as growth:
            async with flooding(peer, frames):
                stats = wss.statistics()
        # Checked after each parse step: at most one step's pongs (64 of
        # 127 bytes) and the Close over the cap.
        assert stats.buffered_out <= MAX_PENDING_CONTROL + PARSE_FRAMES * 127 + 128
        assert growth.current <= 2 * MAX_PENDING_CONTROL + CONSTANT
        with pytest.raises(wsstream.WebSocketError) as info:
            await wss.closed
        assert info.value.close_code == 1008
