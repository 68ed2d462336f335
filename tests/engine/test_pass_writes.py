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
