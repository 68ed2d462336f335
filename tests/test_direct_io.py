"""The plain-TCP path: the engine reads and writes the socket itself.

On a POSIX system a plain ``trio.SocketStream`` is read and written with
``os.read``/``os.write`` on its descriptor (no schedule point after a system
call that did not wait), and a task about to wait in ``receive()`` writes
what it sent meanwhile (``Outbox.write_now``). These tests pin the corners:
a write the socket takes only in part, a broken socket, the end of the
connection, and that other streams keep trio's path.
"""

from __future__ import annotations

import os
import socket
from collections.abc import AsyncIterator

import pytest
import trio

import wsstream
from tests.conftest import Server
from wsstream._connection import _plain_fd
from wsstream._outbox import IOV_MAX, Outbox, _advance

pytestmark = pytest.mark.skipif(os.name != "posix", reason="the direct path is POSIX only")


@pytest.fixture
async def pair() -> AsyncIterator[tuple[trio.SocketStream, trio.SocketStream]]:
    """Two connected sockets with small buffers, closed after the test."""
    a, b = trio.socket.socketpair()
    for sock in (a, b):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    streams = trio.SocketStream(a), trio.SocketStream(b)
    yield streams
    for stream in streams:
        await stream.aclose()


def _outbox_on(stream: trio.SocketStream) -> Outbox:
    """An outbox that writes ``stream``'s socket directly, as the engine's."""
    out = Outbox()
    out.fd = _plain_fd(stream)
    assert out.fd >= 0
    return out


async def _read_exactly(stream: trio.SocketStream, n: int) -> bytes:
    got = bytearray()
    while len(got) < n:
        chunk = await stream.receive_some(65536)
        assert chunk, "the stream ended early"
        got += chunk
    return bytes(got)


async def test_a_direct_write_the_socket_takes_in_part_is_finished_by_the_flusher(
    pair: tuple[trio.SocketStream, trio.SocketStream],
) -> None:
    ours, peer = pair
    out = _outbox_on(ours)
    first = bytes(range(256)) * 4096  # 1 MiB: far more than the socket takes
    second = b"after"
    out.queue([first, second])
    out.write_now()
    # Part went out at once, the rest waits for the flusher, in order.
    assert 0 < out.written < len(first)
    assert out.size == len(first) + len(second) - out.written
    assert not out.writing
    received: list[bytes] = []
    async with trio.open_nursery() as nursery:
        nursery.start_soon(lambda: _collect(peer, len(first) + len(second), received))
        await out.write(ours)
    assert received == [first + second]
    assert out.size == 0 and out.written == len(first) + len(second)


async def _collect(stream: trio.SocketStream, n: int, into: list[bytes]) -> None:
    into.append(await _read_exactly(stream, n))


async def test_a_direct_write_to_a_broken_socket_leaves_the_error_to_the_flusher(
    pair: tuple[trio.SocketStream, trio.SocketStream],
) -> None:
    ours, peer = pair
    await peer.aclose()
    out = _outbox_on(ours)
    out.queue([b"x" * 100])
    out.write_now()  # EPIPE: nothing is written, nothing is raised
    assert out.written == 0 and out.size == 100 and not out.broken
    with pytest.raises(trio.BrokenResourceError):
        await out.write(ours)
    assert out.broken
    out.write_now()  # a broken outbox is left alone
    assert out.written == 0


async def test_nothing_is_written_directly_while_the_flusher_writes(
    pair: tuple[trio.SocketStream, trio.SocketStream],
) -> None:
    ours, peer = pair
    out = _outbox_on(ours)
    big = b"a" * (1 << 20)
    out.queue([big])
    async with trio.open_nursery() as nursery:
        nursery.start_soon(out.write, ours)
        await trio.testing.wait_all_tasks_blocked()
        assert out.writing  # the socket is full: the flusher waits
        out.queue([b"b" * 10])
        out.write_now()  # must not cut into the frame being written
        assert out.pending() == [b"b" * 10]
        received = await _read_exactly(peer, len(big))
    assert received == big
    await out.write(ours)
    assert await _read_exactly(peer, 10) == b"b" * 10


async def test_only_plain_sockets_take_the_direct_path(
    pair: tuple[trio.SocketStream, trio.SocketStream],
) -> None:
    ours, _ = pair
    assert _plain_fd(ours) == ours.socket.fileno()
    left, right = trio.testing.memory_stream_pair()
    assert _plain_fd(left) == -1


async def test_a_reply_sent_before_waiting_arrives_and_the_descriptor_is_let_go(
    server: Server,
) -> None:
    # An echo handler: each reply leaves through write_now when the handler
    # waits for the next message. Big replies leave partly that way and the
    # rest through the flusher; after the end the descriptor is forgotten
    # before the socket is closed, so a late receive() writes nothing.
    conns: list[wsstream.WebSocketStream] = []

    async def handler(wss: wsstream.WebSocketStream) -> None:
        conns.append(wss)
        readable, writable, *_ = await wss.opened
        async for message in readable:
            await writable.send(message)

    url = await server.start(handler, compression=None, max_message_size=1 << 24)
    payloads = [b"small", bytes(range(256)) * 32768, "text", b""]  # 8 MiB among them
    async with wsstream.WebSocketStream(url, max_message_size=1 << 24) as wss:
        readable, writable, *_ = await wss.opened
        for payload in payloads:
            await writable.send(payload)
            await trio.sleep(0.05)  # the handler waits, and writes, in between
            assert await readable.receive() == payload
        wss.close()
        await wss.closed
    with trio.fail_after(10):
        await conns[0].closed
    conn = conns[0]._conn
    assert conn._out.fd == -1 and conn.inbox.before_wait is None
    assert conn.statistics().buffered_out == 0


def test_advance_drops_written_bytes_and_keeps_views_of_the_rest() -> None:
    chunks: list[bytes | memoryview] = [b"abc", b"defg", b"hi"]
    assert _advance(chunks, 0) is chunks
    assert [bytes(c) for c in _advance(chunks, 2)] == [b"c", b"defg", b"hi"]
    assert [bytes(c) for c in _advance(chunks, 3)] == [b"defg", b"hi"]
    assert [bytes(c) for c in _advance(chunks, 8)] == [b"i"]
    assert _advance(chunks, 9) == []
    assert chunks == [b"abc", b"defg", b"hi"]  # the input list is left alone


async def test_more_chunks_than_one_writev_takes_arrive_whole_and_in_order(
    pair: tuple[trio.SocketStream, trio.SocketStream],
) -> None:
    ours, peer = pair
    out = _outbox_on(ours)
    chunks = [i.to_bytes(4, "big") * (1 + i % 7) for i in range(3 * IOV_MAX + 5)]
    expected = b"".join(chunks)
    out.queue(chunks)
    out.write_now()  # a first part, directly
    received: list[bytes] = []
    async with trio.open_nursery() as nursery:
        nursery.start_soon(lambda: _collect(peer, len(expected), received))
        await out.write(ours)
    assert received == [expected]
    assert out.written == len(expected) and out.size == 0
