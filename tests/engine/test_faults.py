"""Faults: peers that vanish, stall, flood or never read; cancellation everywhere.

Over memory streams with the MockClock (``autojump_clock``): every timeout is
virtual and a hang fails at once through ``trio.fail_after``. Each test checks
the outcome the contract gives (API.md, "How a connection ends"), that the
stream was closed, and that no task was left behind.
"""

from __future__ import annotations

import contextlib
import logging
import struct
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import pytest
import trio
import trio.testing

import wsstream
from tests.hostile import (
    TrackedStream,
    client_request,
    count_tasks,
    error_log,
    new_key,
    server_response,
)
from tests.peer import BINARY, CLOSE, PING, PONG, TEXT, Peer, build_frame

OPTIONS: dict[str, Any] = {"compression": None, "ping_interval": None, "close_timeout": 5}


@asynccontextmanager
async def client(
    tracked: TrackedStream | None = None, **options: Any
) -> AsyncIterator[tuple[wsstream.WebSocketStream, Peer, TrackedStream]]:
    """An open client and the hand-scripted server peer on the other end."""
    ours, theirs = trio.testing.memory_stream_pair()
    stream = tracked if tracked is not None else TrackedStream(ours)
    stream.inner = ours
    peer = Peer(theirs, is_client=False)
    with trio.fail_after(300):
        async with wsstream.WebSocketStream(
            "ws://test/", stream=stream, **{**OPTIONS, **options}
        ) as wss:
            await peer.accept()
            await wss.opened
            yield wss, peer, stream


async def expect_error(awaitable: Awaitable[Any], code: int) -> wsstream.WebSocketError:
    with pytest.raises(wsstream.WebSocketError) as info:
        await awaitable
    assert info.value.close_code == code
    return info.value


# ----------------------------------------------------------------------
# The peer vanishes


@pytest.mark.parametrize("how", ["eof", "reset"])
async def test_peer_vanishing_mid_frame_gives_1006_everywhere_at_once(
    autojump_clock: Any, how: str
) -> None:
    async with client() as (wss, peer, stream):
        readable, writable, *_ = await wss.opened
        start = trio.current_time()
        frame = build_frame(BINARY, b"x" * 1000)
        await peer.stream.send_all(frame[:500])
        await trio.testing.wait_all_tasks_blocked()
        if how == "eof":
            await peer.stream.aclose()
        else:
            stream.vanish_after_received = stream.received
            await peer.stream.send_all(b"more")  # wakes the reader: it breaks
        error = await expect_error(wss.closed, 1006)
        assert trio.current_time() == start  # no timeout was needed
        with pytest.raises(wsstream.WebSocketError) as on_receive:
            await readable.receive()
        with pytest.raises(wsstream.WebSocketError) as on_send:
            await writable.send("late")
        assert on_receive.value is error is on_send.value
    assert stream.closed


@pytest.mark.parametrize("cut", [0, 1, 20, 60])
async def test_server_vanishing_mid_handshake_gives_handshake_error(
    autojump_clock: Any, cut: int
) -> None:
    ours, theirs = trio.testing.memory_stream_pair()
    stream = TrackedStream(ours)
    peer = Peer(theirs, is_client=False)
    with trio.fail_after(60):
        async with wsstream.WebSocketStream("ws://test/", stream=stream, **OPTIONS) as wss:
            _, headers = await peer.read_http()
            await theirs.send_all(server_response(headers["sec-websocket-key"])[:cut])
            await theirs.aclose()
            with pytest.raises(wsstream.HandshakeError) as info:
                await wss.opened
            assert info.value.close_code == 1006
            assert trio.current_time() == 0
            with pytest.raises(wsstream.HandshakeError) as again:
                await wss.closed
            assert again.value is info.value
    assert stream.closed


@pytest.mark.parametrize("cut", [0, 1, 30, -4])
@pytest.mark.parametrize("how", ["eof", "reset", "stall"])
async def test_client_vanishing_mid_handshake_never_reaches_the_handler(
    autojump_clock: Any, cut: int, how: str
) -> None:
    ours, theirs = trio.testing.memory_stream_pair()
    stream = TrackedStream(ours)
    called = []

    async def handler(wss: wsstream.WebSocketStream) -> None:
        called.append(wss)

    request = client_request(new_key())
    part = request[:cut]
    with trio.fail_after(60):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(
                lambda: wsstream.serve_stream(handler, stream, open_timeout=3, **OPTIONS)
            )
            await theirs.send_all(part)
            await trio.testing.wait_all_tasks_blocked()
            if how == "eof":
                await theirs.aclose()
            elif how == "reset":
                stream.vanish_after_received = stream.received
                await theirs.send_all(b"x")
            # "stall": the client just stops; open_timeout ends it.
    assert called == []
    assert stream.closed
    assert trio.current_time() == (3 if how == "stall" else 0)


async def test_peer_vanishing_mid_closing_handshake_ends_at_once_with_1006(
    autojump_clock: Any,
) -> None:
    async with client(close_timeout=30) as (wss, peer, stream):
        wss.close(1000, "bye")
        assert await peer.expect_close() == (1000, "bye")
        await peer.stream.aclose()  # no Close back: the peer is just gone
        await expect_error(wss.closed, 1006)
        assert trio.current_time() == 0
    assert stream.closed


async def test_peer_closing_then_vanishing_before_our_echo_is_written(
    autojump_clock: Any,
) -> None:
    tracked = TrackedStream(trio.testing.memory_stream_pair()[0])
    async with client(tracked) as (wss, peer, stream):
        stream.vanish_after_sent = stream.sent  # our next write breaks
        await peer.send_close(3000, "gone")
        with contextlib.suppress(wsstream.WebSocketError):
            await wss.closed  # the echo never left: either outcome is honest
        assert trio.current_time() < OPTIONS["close_timeout"]
    assert stream.closed


# ----------------------------------------------------------------------
# Half-closed TCP


async def test_peer_half_closing_without_a_close_frame_gives_1006_but_we_read_first(
    autojump_clock: Any,
) -> None:
    async with client() as (wss, peer, stream):
        readable, *_ = await wss.opened
        await peer.send(TEXT, b"last words")
        await peer.stream.send_eof()  # still reading
        assert await readable.receive() == "last words"
        error = await expect_error(readable.receive(), 1006)
        assert await expect_error(wss.closed, 1006) is error
        await peer.expect_eof()  # we closed our side too
        assert trio.current_time() == 0
    assert stream.closed


async def test_server_sees_a_half_closed_client_as_1006_and_closes(
    autojump_clock: Any,
) -> None:
    ours, theirs = trio.testing.memory_stream_pair()
    stream = TrackedStream(ours)
    seen: list[object] = []

    async def handler(wss: wsstream.WebSocketStream) -> None:
        readable, *_ = await wss.opened
        try:
            async for message in readable:
                seen.append(message)
        except wsstream.WebSocketError as exc:
            seen.append(exc.close_code)

    with trio.fail_after(60):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(lambda: wsstream.serve_stream(handler, stream, **OPTIONS))
            peer = Peer(theirs, is_client=True)
            assert (await peer.handshake()).startswith("HTTP/1.1 101")
            await peer.send(TEXT, b"one")
            await theirs.send_eof()
            await peer.expect_eof()
    assert seen == ["one", 1006]
    assert stream.closed
    assert trio.current_time() == 0


# ----------------------------------------------------------------------
# A peer that never sends its Close


async def test_server_closes_a_client_that_never_answers_within_close_timeout(
    autojump_clock: Any,
) -> None:
    ours, theirs = trio.testing.memory_stream_pair()
    stream = TrackedStream(ours)

    async def handler(wss: wsstream.WebSocketStream) -> None:
        await wss.opened  # and return: close 1000

    with trio.fail_after(60):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(
                lambda: wsstream.serve_stream(handler, stream, **{**OPTIONS, "close_timeout": 7})
            )
            peer = Peer(theirs, is_client=True)
            assert (await peer.handshake()).startswith("HTTP/1.1 101")
            assert await peer.expect_close() == (1000, "")
            start = trio.current_time()
            # Never answer, never close: the server gives up after close_timeout.
            await peer.expect_eof()
            assert trio.current_time() - start <= 7
    assert stream.closed
    assert trio.current_time() == pytest.approx(7)


# ----------------------------------------------------------------------
# Ping floods


async def test_a_reading_peer_flooding_pings_gets_every_pong_and_messages_still_flow(
    autojump_clock: Any,
) -> None:
    async with client() as (wss, peer, stream):
        readable, writable, *_ = await wss.opened
        n = 5000
        await peer.stream.send_all(
            b"".join(build_frame(PING, struct.pack("!I", i)) for i in range(n))
            + build_frame(TEXT, b"after the flood")
        )
        assert await readable.receive() == "after the flood"
        for i in range(n):
            assert await peer.receive_frame() == (PONG, struct.pack("!I", i), True)
        await writable.send("still open")
        assert await peer.receive_frame() == (TEXT, b"still open", True)
        assert wss.statistics().buffered_out == 0


async def test_a_server_flooded_with_pings_by_a_client_that_never_reads_fails_it_with_1008(
    autojump_clock: Any,
) -> None:
    ours, theirs = trio.testing.lockstep_stream_pair()
    stream = TrackedStream(ours)
    outcome: list[object] = []

    async def handler(wss: wsstream.WebSocketStream) -> None:
        try:
            await wss.closed
        except wsstream.WebSocketError as exc:
            outcome.append(exc.close_code)

    with trio.fail_after(60):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(lambda: wsstream.serve_stream(handler, stream, **OPTIONS))
            peer = Peer(theirs, is_client=True)
            assert (await peer.handshake()).startswith("HTTP/1.1 101")
            # Never read again: the server's pongs pile up past the cap.
            with trio.move_on_after(30):
                for _ in range(3000):
                    await peer.send(PING, b"p" * 125)
            nursery.cancel_scope.deadline = trio.current_time() + 30
    assert outcome == [1008]
    assert stream.closed


# ----------------------------------------------------------------------
# A peer that never reads


async def test_a_peer_that_never_reads_blocks_our_writer_not_our_reader(
    autojump_clock: Any,
) -> None:
    async with client(write_limit=1000, close_timeout=4) as (wss, peer, stream):
        readable, writable, *_ = await wss.opened
        stream.pause_sends()  # the peer's receive window is full forever
        await writable.send(b"a" * 2000)
        with trio.move_on_after(10) as blocked:
            await writable.send(b"b")
        assert blocked.cancelled_caught  # backpressure: send waits for the peer
        assert wss.statistics().buffered_out >= 2000
        # Reading still works, pings are answered into the (stuck) buffer.
        await peer.send(PING, b"?")
        await peer.send(TEXT, b"incoming")
        assert await readable.receive() == "incoming"
        start = trio.current_time()
        wss.close(1000)
        await expect_error(wss.closed, 1006)  # our Close could never leave
        assert trio.current_time() - start == pytest.approx(4)
    assert stream.closed


# ----------------------------------------------------------------------
# Cancellation at every await point


class CancelAtStep(trio.abc.Instrument):
    """Cancels ``scope`` right before the ``n``-th task step of the run."""

    def __init__(self, n: int, scope: trio.CancelScope) -> None:
        self.n = n
        self.scope = scope
        self.steps = 0

    def before_task_step(self, task: trio.lowlevel.Task) -> None:
        self.steps += 1
        if self.steps == self.n:
            self.scope.cancel()


async def echo_server_peer(stream: trio.abc.Stream) -> None:
    """A polite server peer: answers the handshake, echoes, answers Close."""
    peer = Peer(stream, is_client=False)
    try:
        await peer.accept()
        while True:
            opcode, payload, _ = await peer.receive_frame()
            if opcode in (TEXT, BINARY):
                await peer.send(opcode, payload)
            elif opcode == CLOSE:
                await peer.send(CLOSE, payload)
                break
    except (EOFError, KeyError, trio.BrokenResourceError, trio.ClosedResourceError):
        pass
    finally:
        await stream.aclose()


async def client_session(stream: trio.abc.Stream, how_close: str) -> None:
    async with wsstream.WebSocketStream("ws://test/", stream=stream, **OPTIONS) as wss:
        readable, writable, *_ = await wss.opened
        await writable.send("ping")
        assert await readable.receive() == "ping"
        await writable.send(b"bytes")
        assert await readable.receive() == b"bytes"
        if how_close == "writable.aclose":
            await writable.aclose()
        elif how_close == "readable.aclose":
            await readable.aclose()
            await wss.closed
        else:
            wss.close(1000, "done")
            assert await wss.closed == (1000, "done")


async def _cancel_sweep(
    session: Callable[[trio.abc.Stream], Awaitable[None]],
    peer: Callable[[trio.abc.Stream], Awaitable[None]],
) -> int:
    """Run the session once per task step, cancelled at that step; returns
    how many steps were covered. After each: no task left, stream closed,
    no error logged, nothing but Cancelled raised."""
    n = 0
    while True:
        n += 1
        assert n < 2000, "the session never completed"
        before = count_tasks()
        ours, theirs = trio.testing.memory_stream_pair()
        stream = TrackedStream(ours)
        with error_log() as log, trio.fail_after(300):
            async with trio.open_nursery() as nursery:
                nursery.start_soon(peer, theirs)
                with trio.CancelScope() as scope:
                    instrument = CancelAtStep(n, scope)
                    trio.lowlevel.add_instrument(instrument)
                    try:
                        await session(stream)
                    finally:
                        trio.lowlevel.remove_instrument(instrument)
                if instrument.steps < n:
                    # The session ended before the n-th step: all were covered.
                    assert not scope.cancelled_caught
                    assert stream.closed
                    return n
                # The peer may wait for a Close that the cancellation cut.
                nursery.cancel_scope.deadline = trio.current_time() + 60
        assert stream.closed, f"stream left open when cancelled at step {n}"
        assert count_tasks() == before, f"tasks left behind when cancelled at step {n}"
        assert log.messages() == [], f"step {n}"


@pytest.mark.parametrize("how_close", ["close", "writable.aclose", "readable.aclose"])
async def test_cancelling_the_client_at_every_step_leaves_nothing_behind(
    autojump_clock: Any, how_close: str
) -> None:
    steps = await _cancel_sweep(lambda s: client_session(s, how_close), echo_server_peer)
    print(f"client ({how_close}) cancelled at {steps} steps")
    assert steps > 20  # open, send, receive and close were all cut somewhere


async def echo_client_peer(stream: trio.abc.Stream) -> None:
    peer = Peer(stream, is_client=True)
    try:
        await peer.handshake()
        for message in (b"one", b"two"):
            await peer.send(TEXT, message)
            opcode, payload, _ = await peer.receive_frame()
            if opcode == CLOSE:  # the server was cancelled: 1001
                assert payload[:2] == struct.pack("!H", 1001)
                await peer.send(CLOSE, payload)
                await peer.expect_eof()
                return
            assert (opcode, payload) == (TEXT, message)
        await peer.send_close(1000)
        await peer.expect_close()
        await peer.expect_eof()
    except (EOFError, KeyError, trio.BrokenResourceError, trio.ClosedResourceError):
        pass
    finally:
        await stream.aclose()


async def test_cancelling_serve_stream_at_every_step_leaves_nothing_behind(
    autojump_clock: Any,
) -> None:
    async def handler(wss: wsstream.WebSocketStream) -> None:
        readable, writable, *_ = await wss.opened
        async for message in readable:
            await writable.send(message)

    async def session(stream: trio.abc.Stream) -> None:
        await wsstream.serve_stream(handler, stream, **OPTIONS)

    steps = await _cancel_sweep(session, echo_client_peer)
    print(f"serve_stream cancelled at {steps} steps")
    assert steps > 20


# ----------------------------------------------------------------------
# Handler bugs


async def test_handler_exceptions_close_1011_and_never_escape_serve_stream(
    autojump_clock: Any, caplog: pytest.LogCaptureFixture
) -> None:
    class HandlerBug(Exception):
        pass

    async def handler(wss: wsstream.WebSocketStream) -> None:
        raise HandlerBug("boom")

    for _ in range(3):
        ours, theirs = trio.testing.memory_stream_pair()
        stream = TrackedStream(ours)
        with trio.fail_after(60):
            async with trio.open_nursery() as nursery:
                nursery.start_soon(lambda s=stream: wsstream.serve_stream(handler, s, **OPTIONS))
                peer = Peer(theirs, is_client=True)
                assert (await peer.handshake()).startswith("HTTP/1.1 101")
                assert await peer.expect_close() == (1011, "")
                await peer.send_close(1011)
                await peer.expect_eof()
                await theirs.aclose()
        assert stream.closed
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 3 and all("boom" in r.getMessage() or r.exc_info for r in errors)
