"""The reader steps aside for a user waiting in receive() (wsstream/_engine/handoff.py).

On a plain socket, once the reader has handed a message to a task waiting in
``receive()``, it parks and the next ``receive()`` reads the socket itself:
the message it returns makes no hop through the reader's task. These tests
pin the promise that goes with it: somebody always reads (pings are
answered, the Close is read) whether the user keeps receiving, stops, is
cancelled, or keeps trio busy; only one task reads at a time; and nothing
is lost or duplicated on the way.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncIterator

import pytest
import trio

import wsstream
from tests.conftest import Server, echo_handler
from wsstream._engine.connection import RUN_TASK_NAME
from wsstream._engine.handoff import HAND_BACK_PASSES

pytestmark = pytest.mark.skipif(os.name != "posix", reason="the direct path is POSIX only")


class _RunTaskSteps(trio.abc.Instrument):
    """Counts the steps of the connections' run tasks (their readers)."""

    def __init__(self) -> None:
        self.steps = 0

    def before_task_step(self, task: trio.lowlevel.Task) -> None:
        if task.name == RUN_TASK_NAME:
            self.steps += 1


def _aside(wss: wsstream.WebSocketStream) -> bool:
    """Whether the connection's reader stands aside."""
    return wss._conn.inbox.read_here is not None


@contextlib.asynccontextmanager
async def _aside_after_one_echo(
    url: str,
) -> AsyncIterator[tuple[wsstream.WebSocketStream, wsstream.Readable, wsstream.Writable]]:
    """A client that sent one message and got it back: its reader now
    stands aside. Closes on the way out."""
    async with wsstream.WebSocketStream(url) as wss:
        readable, writable, *_ = await wss.opened
        await writable.send(b"x")
        assert await readable.receive() == b"x"
        assert _aside(wss)
        yield wss, readable, writable
        wss.close()


async def _pinger_server(
    server: Server, pinged: list[float], go: trio.Event, done: trio.Event
) -> str:
    """A server that echoes one message, then pings once ``go`` is set,
    recording the round trip and setting ``done``."""

    async def handler(wss: wsstream.WebSocketStream) -> None:
        readable, writable, *_ = await wss.opened
        await writable.send(await readable.receive())
        await go.wait()
        pinged.append(await wss.ping(b"are you there"))
        done.set()
        with contextlib.suppress(wsstream.WebSocketError):
            await wss.closed  # until the client closes

    return await server.start(handler)


async def test_a_request_response_loop_does_not_step_the_reader(server: Server) -> None:
    # Each message used to be read by the run task and handed over: one
    # task step (and a scheduler pass) per message on each side. Now the
    # waiting user reads it: a few steps in all, for the first message.
    url = await server.start(echo_handler)
    counter = _RunTaskSteps()
    async with wsstream.WebSocketStream(url) as wss:
        readable, writable, *_ = await wss.opened
        await writable.send(b"warm-up")
        assert await readable.receive() == b"warm-up"
        trio.lowlevel.add_instrument(counter)
        try:
            for i in range(200):
                await writable.send(b"%d" % i)
                assert await readable.receive() == b"%d" % i
        finally:
            trio.lowlevel.remove_instrument(counter)
        aside = _aside(wss)
        wss.close()
    # Both sides' readers: 400 deliveries. A handful of steps is the
    # periodic yield of receive() waking nothing; 400+ is the old way.
    assert counter.steps < 40, counter.steps
    assert aside


async def test_a_ping_is_answered_while_the_user_reads(server: Server) -> None:
    pinged: list[float] = []
    go, done = trio.Event(), trio.Event()
    url = await _pinger_server(server, pinged, go, done)
    async with wsstream.WebSocketStream(url) as wss:
        readable, writable, *_ = await wss.opened

        reading = trio.Event()

        async def user() -> None:
            await writable.send(b"x")
            assert await readable.receive() == b"x"
            reading.set()
            # This receive() reads the socket itself, and meets the ping.
            await readable.receive()

        with trio.fail_after(5):
            async with trio.open_nursery() as nursery:
                nursery.start_soon(user)
                await reading.wait()
                assert wss._conn._user_reading
                go.set()
                await done.wait()
                assert wss._conn._user_reading
                nursery.cancel_scope.cancel()
        assert len(pinged) == 1
        wss.close()


async def test_reading_is_handed_back_when_the_user_stops_receiving(server: Server) -> None:
    pinged: list[float] = []
    go, done = trio.Event(), trio.Event()
    url = await _pinger_server(server, pinged, go, done)
    async with _aside_after_one_echo(url) as (wss, _, _):
        # The user now waits on something else: trio sleeps, so the reader
        # takes the socket back, and answers the ping.
        go.set()
        with trio.fail_after(5):
            await done.wait()
        assert not _aside(wss)


async def test_reading_is_handed_back_in_a_busy_program(server: Server) -> None:
    # trio never sleeps here (the user's task is always runnable): reading
    # goes back after the user's pass and one more, and the ping is answered
    # while the user still spins.
    pinged: list[float] = []
    go, done = trio.Event(), trio.Event()
    url = await _pinger_server(server, pinged, go, done)
    async with _aside_after_one_echo(url) as (wss, _, _):
        for _ in range(HAND_BACK_PASSES + 1):
            await trio.lowlevel.checkpoint()
        assert not _aside(wss)
        go.set()
        spins = 0
        while not pinged and spins < 1_000_000:
            await trio.lowlevel.checkpoint()
            spins += 1
        assert pinged, "the ping was not answered while the program was busy"


async def test_a_cancelled_receive_hands_back_and_loses_nothing(server: Server) -> None:
    url = await server.start(echo_handler)
    async with _aside_after_one_echo(url) as (wss, readable, writable):
        with trio.move_on_after(0.05) as scope:
            await readable.receive()
        assert scope.cancelled_caught
        assert not _aside(wss)
        assert not wss._conn._user_reading
        for i in range(20):
            await writable.send(b"%d" % i)
        assert [await readable.receive() for _ in range(20)] == [b"%d" % i for i in range(20)]


async def test_two_receivers_get_every_message_once(server: Server) -> None:
    count = 300

    async def burst(wss: wsstream.WebSocketStream) -> None:
        readable, writable, *_ = await wss.opened
        await writable.send(await readable.receive())
        for i in range(count):
            await writable.send(b"%d" % i)
            if i % 7 == 0:
                await trio.sleep(0.001)
        await readable.receive()

    url = await server.start(burst)
    got: list[bytes] = []
    async with wsstream.WebSocketStream(url) as wss:
        readable, writable, *_ = await wss.opened
        await writable.send(b"go")
        assert await readable.receive() == b"go"

        async def receiver() -> None:
            while len(got) < count:
                message = await readable.receive()
                assert isinstance(message, bytes)
                got.append(message)
            nursery.cancel_scope.cancel()

        with trio.fail_after(10):
            async with trio.open_nursery() as nursery:
                nursery.start_soon(receiver)
                nursery.start_soon(receiver)
        assert sorted(got, key=int) == [b"%d" % i for i in range(count)]
        wss.close()


async def test_the_peer_closing_ends_a_reading_receive(server: Server) -> None:
    async def once(wss: wsstream.WebSocketStream) -> None:
        readable, writable, *_ = await wss.opened
        await writable.send(await readable.receive())
        await trio.sleep(0.05)
        wss.close(4000, "bye")

    url = await server.start(once)
    async with wsstream.WebSocketStream(url) as wss:
        readable, writable, *_ = await wss.opened
        await writable.send(b"x")
        assert await readable.receive() == b"x"
        assert _aside(wss)
        with trio.fail_after(5):
            with pytest.raises(trio.EndOfChannel):
                await readable.receive()
            info = await wss.closed
        assert (info.close_code, info.reason) == (4000, "bye")


async def test_our_close_is_completed_by_a_reading_receive(server: Server) -> None:
    url = await server.start(echo_handler)
    async with wsstream.WebSocketStream(url) as wss:
        readable, writable, *_ = await wss.opened
        await writable.send(b"x")
        assert await readable.receive() == b"x"
        with trio.fail_after(5):
            async with trio.open_nursery() as nursery:

                reading = trio.Event()

                async def user() -> None:
                    await writable.send(b"y")
                    assert await readable.receive() == b"y"
                    reading.set()
                    with pytest.raises(trio.EndOfChannel):
                        await readable.receive()

                nursery.start_soon(user)
                await reading.wait()
                assert wss._conn._user_reading
                wss.close(1000, "done")
            info = await wss.closed
        assert info.close_code == 1000


async def test_large_and_small_messages_mixed(server: Server) -> None:
    # A large message read by a user hands reading back (the reader reads
    # it directly); the next small ones are read by the user again.
    url = await server.start(echo_handler, max_message_size=4 * 1024 * 1024)
    sizes = [10, 3 * 1024 * 1024, 20, 200_000, 5, 70_000, 1]
    async with wsstream.WebSocketStream(url, max_message_size=4 * 1024 * 1024) as wss:
        readable, writable, *_ = await wss.opened
        with trio.fail_after(20):
            for round_ in range(3):
                for size in sizes:
                    payload = bytes([round_ + size % 251]) * size
                    await writable.send(payload)
                    assert await readable.receive() == payload
        wss.close()
