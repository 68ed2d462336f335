"""Writes at the end of trio's scheduler passes (wsstream/_engine/passes.py).

On a plain socket, ``send()`` does not wake the flusher: the connection is
listed with the run's pass writer, a trio instrument whose
``before_io_wait`` hook writes each listed outbox once per pass, deferring
while the user is still producing and trio has more to run. These tests
pin what that promises: batches share a write, nothing waits for a flusher
that is not needed, what the socket does not take is finished by the
flusher, and the instrument is there only while a connection uses it.
"""

from __future__ import annotations

import contextlib
import os
import socket
from collections.abc import Sequence

import pytest
import trio

import wsstream
from tests.conftest import Server, echo_handler
from wsstream._engine import passes
from wsstream._transport import SocketTransport

pytestmark = pytest.mark.skipif(os.name != "posix", reason="the direct path is POSIX only")


def _count_writes(monkeypatch: pytest.MonkeyPatch) -> dict[int, int]:
    """Count the direct writes per descriptor."""
    writes: dict[int, int] = {}
    original = SocketTransport.write_some

    def counting(self: SocketTransport, chunks: Sequence[bytes | bytearray | memoryview]) -> int:
        writes[self.fd] = writes.get(self.fd, 0) + 1
        return original(self, chunks)

    monkeypatch.setattr(SocketTransport, "write_some", counting)
    return writes


def _fd(wss: wsstream.WebSocketStream) -> int:
    transport = wss._conn._transport
    assert isinstance(transport, SocketTransport)
    return transport.fd


async def test_messages_sent_one_per_pass_share_one_write(
    server: Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A sender that yields after every message (as a trio.Semaphore in the
    # loop does) used to wake the flusher once per message; its messages now
    # wait for the pass in which it stops producing, and go in one write.
    # (Ten: send() yields by itself once in 16 calls, and a pass in which
    # the sender only resumes from that yield counts as no progress.)
    writes = _count_writes(monkeypatch)
    url = await server.start(echo_handler)
    async with wsstream.WebSocketStream(url) as wss:
        readable, writable, *_ = await wss.opened
        fd = _fd(wss)
        done = trio.Event()

        async def sender() -> None:
            for i in range(10):
                await writable.send(b"%d" % i)
                await trio.lowlevel.cancel_shielded_checkpoint()
            await done.wait()  # waits elsewhere than in receive()

        async with trio.open_nursery() as nursery:
            nursery.start_soon(sender)
            for i in range(10):
                assert await readable.receive() == b"%d" % i
            done.set()
        assert writes[fd] == 1
        wss.close()


async def test_a_message_is_written_without_starting_the_flusher(server: Server) -> None:
    url = await server.start(echo_handler)
    async with wsstream.WebSocketStream(url) as wss:
        readable, writable, *_ = await wss.opened
        async with trio.open_nursery() as nursery:
            nursery.start_soon(writable.send, "one")  # sends, and its task ends
            assert await readable.receive() == "one"
        # An idle connection has no flusher; writing one message did not
        # need one either (it is started only when something waits for it).
        assert wss._conn._out.start_flusher is not None
        wss.close()


async def test_what_the_socket_does_not_take_at_the_end_of_a_pass_is_finished_by_the_flusher(
    server: Server,
) -> None:
    # 8 MiB is more than a small socket buffer takes at once; write_limit is
    # higher, so send() leaves it all to the end of the pass, where only part
    # of it goes: the flusher, woken through trio's run_sync_soon (the hook
    # cannot wake a task), waits for the socket and writes the rest.
    big = bytes(range(256)) * 32768
    url = await server.start(echo_handler, compression=None, max_message_size=1 << 24)
    async with wsstream.WebSocketStream(
        url, compression=None, max_message_size=1 << 24, write_limit=1 << 25
    ) as wss:
        readable, writable, *_ = await wss.opened
        stream = wss._conn.stream
        assert isinstance(stream, trio.SocketStream)
        stream.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
        done = trio.Event()

        async def sender() -> None:
            await writable.send(big)
            await done.wait()

        async with trio.open_nursery() as nursery:
            nursery.start_soon(sender)
            assert await readable.receive() == big
            done.set()
        assert wss.statistics().buffered_out == 0
        wss.close()


async def test_the_pass_writer_is_installed_only_while_a_connection_uses_it(
    server: Server,
) -> None:
    accepted: list[wsstream.WebSocketStream] = []

    async def handler(wss: wsstream.WebSocketStream) -> None:
        accepted.append(wss)
        await echo_handler(wss)

    url = await server.start(handler)
    assert passes._writers.get(None) is None
    async with wsstream.WebSocketStream(url) as wss:
        readable, writable, *_ = await wss.opened
        await writable.send(b"x")
        assert await readable.receive() == b"x"
        writer = passes._writers.get(None)
        assert writer is not None and writer._users == 2  # the client and the server side
        wss.close()
        await wss.closed
    with trio.fail_after(10):
        await accepted[0].closed
    assert passes._writers.get(None) is None


async def test_a_connection_that_ends_while_listed_leaves_the_others_writing(
    server: Server,
) -> None:
    url = await server.start(echo_handler)
    async with (
        wsstream.WebSocketStream(url) as first,
        wsstream.WebSocketStream(url) as second,
    ):
        r1, w1, *_ = await first.opened
        r2, w2, *_ = await second.opened
        await w1.send(b"queued")
        first._conn.abort(wsstream.WebSocketError._build("gone", 1006))  # same pass
        with pytest.raises(wsstream.WebSocketError):
            await first.closed
        for i in range(3):
            await w2.send(b"%d" % i)
            assert await r2.receive() == b"%d" % i
        second.close()


async def _send_then_wait_elsewhere(wss: wsstream.WebSocketStream) -> None:
    _, writable, *_ = await wss.opened
    await writable.send("hi")
    with contextlib.suppress(wsstream.WebSocketError):
        await wss.closed  # waits elsewhere than in receive()


async def test_an_autojumping_clock_does_not_jump_past_a_message_already_sent(
    server: Server, autojump_clock: trio.testing.MockClock
) -> None:
    # With nothing runnable, an autojumping clock makes trio ask the hook
    # with a timeout of 0, as when it is busy: a write held back then let
    # the clock jump to the client's deadline (got None at t=1.0).
    url = await server.start(_send_then_wait_elsewhere)
    async with wsstream.WebSocketStream(url) as wss:
        readable, *_ = await wss.opened
        got = None
        with trio.move_on_after(1):
            got = await readable.receive()
        assert (got, trio.current_time()) == ("hi", 0.0)
        wss.close()


async def test_wait_all_tasks_blocked_returns_after_the_write(server: Server) -> None:
    go = trio.Event()

    async def handler(wss: wsstream.WebSocketStream) -> None:
        await wss.opened
        await go.wait()
        await _send_then_wait_elsewhere(wss)

    url = await server.start(handler)
    async with wsstream.WebSocketStream(url) as wss:
        readable, *_ = await wss.opened
        await trio.testing.wait_all_tasks_blocked()
        go.set()
        await trio.testing.wait_all_tasks_blocked()
        # Everything is blocked only once the message is out (it was held
        # back); loopback delivers it with the write, and the reader has run.
        try:
            got = readable.receive_nowait()
        except trio.WouldBlock:
            got = None  # not written when trio declared everything blocked
        assert got == "hi"
        wss.close()


async def test_a_write_waits_for_more_passes_only_briefly(
    server: Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A producer sends one message per pass while another task keeps trio
    # busy and each pass takes 10 ms of (fake) real time: a write waits at
    # most FLUSH_DEFER_SECONDS, so the messages go out about one write per
    # pass, not one write per 64 passes (held 342 ms in a review's run).
    from wsstream._engine import writer

    now = [0.0]
    monkeypatch.setattr(writer, "perf_counter", lambda: now[0])
    writes = _count_writes(monkeypatch)
    url = await server.start(echo_handler)
    async with wsstream.WebSocketStream(url) as wss:
        readable, writable, *_ = await wss.opened
        fd = _fd(wss)
        done = trio.Event()

        async def busy() -> None:
            while not done.is_set():
                now[0] += 0.010
                await trio.lowlevel.cancel_shielded_checkpoint()

        async def producer() -> None:
            for i in range(40):
                writable.send_nowait(b"%d" % i)
                await trio.lowlevel.cancel_shielded_checkpoint()

        async with trio.open_nursery() as nursery:
            nursery.start_soon(busy)
            nursery.start_soon(producer)
            for i in range(40):
                assert await readable.receive() == b"%d" % i
            done.set()
        assert writes[fd] >= 20
        wss.close()


async def test_a_failure_inside_the_hook_leaves_the_writes_to_the_flusher(
    server: Server, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # An exception leaving before_io_wait would make trio remove the
    # instrument, and every connection's end-of-pass writes with it.
    from wsstream._engine import writer

    original = writer.Writer.end_of_pass
    failed: list[bool] = []

    def failing_once(self: writer.Writer, busy: bool) -> bool:
        if not failed:
            failed.append(True)
            raise RuntimeError("a bug of ours")
        return original(self, busy)

    monkeypatch.setattr(writer.Writer, "end_of_pass", failing_once)
    url = await server.start(echo_handler)
    async with wsstream.WebSocketStream(url) as wss:
        readable, writable, *_ = await wss.opened
        for i in range(3):
            await writable.send(b"%d" % i)
            assert await readable.receive() == b"%d" % i
        assert failed
        assert passes._writers.get(None) is not None  # still installed, still used
        assert "writing at the end of a pass failed" in caplog.text
        wss.close()


def test_systemexit_inside_the_hook_ends_the_run(monkeypatch: pytest.MonkeyPatch) -> None:
    # A signal handler that calls sys.exit() can run inside the hook; trio
    # would swallow it with the instrument. It ends the run instead, as
    # anything raised outside a task does (TrioInternalError, its cause).
    from wsstream._engine import writer

    def exiting(self: writer.Writer, busy: bool) -> bool:
        raise SystemExit(3)

    monkeypatch.setattr(writer.Writer, "end_of_pass", exiting)

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            listeners = await nursery.start(
                lambda task_status: wsstream.serve(
                    echo_handler, "127.0.0.1", 0, task_status=task_status
                )
            )
            port = listeners[0].socket.getsockname()[1]
            async with wsstream.WebSocketStream(f"ws://127.0.0.1:{port}") as wss:
                _, writable, *_ = await wss.opened
                await writable.send(b"x")
                await trio.sleep(5)
            nursery.cancel_scope.cancel()  # (swallowed, the run went on)

    with pytest.raises(trio.TrioInternalError) as caught:
        trio.run(main)
    # (The cause comes wrapped in trio's system nursery's groups; one
    # SystemExit per connection the hook was writing.)
    def leaves(exc: BaseException | None) -> list[BaseException | None]:
        if isinstance(exc, BaseExceptionGroup):
            return [leaf for inner in exc.exceptions for leaf in leaves(inner)]
        return [exc]

    found = leaves(caught.value.__cause__)
    assert found and all(isinstance(e, SystemExit) and e.code == 3 for e in found)


async def test_many_connections_do_not_pay_for_the_idle_check(
    server: Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    # current_statistics() counts every descriptor trio waits on: with more
    # than EXACT_IDLE_CHECK_USERS connections (here: more than 0) it is not
    # asked, and a timeout of 0 counts as busy; messages still flow.
    monkeypatch.setattr(passes, "EXACT_IDLE_CHECK_USERS", 0)
    calls: list[None] = []
    original = trio.lowlevel.current_statistics

    def counting() -> object:
        calls.append(None)
        return original()

    monkeypatch.setattr(trio.lowlevel, "current_statistics", counting)
    url = await server.start(echo_handler)
    async with wsstream.WebSocketStream(url) as wss:
        readable, writable, *_ = await wss.opened
        for i in range(50):
            writable.send_nowait(b"%d" % i)
            await trio.lowlevel.cancel_shielded_checkpoint()
        for i in range(50):
            assert await readable.receive() == b"%d" % i
        wss.close()
    assert calls == []
