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
from collections.abc import AsyncIterator, Sequence

import pytest
import trio

import wsstream
from tests.conftest import Server
from wsstream._engine.outbox import IOV_MAX, MAX_INFLIGHT, Outbox, _advance
from wsstream._transport import SocketTransport, StreamTransport, transport_for

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


def _outbox_on(stream: trio.SocketStream) -> tuple[Outbox, SocketTransport]:
    """An outbox and the direct transport of ``stream``, as the engine's."""
    transport = transport_for(stream)
    assert isinstance(transport, SocketTransport)
    return Outbox(), transport


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
    out, transport = _outbox_on(ours)
    first = bytes(range(256)) * 4096  # 1 MiB: far more than the socket takes
    second = b"after"
    out.queue_message((first[:10], first[10:]))
    out.queue_message((second,))
    assert not out.write_now(transport)
    # Part went out at once, the rest waits for the flusher, in order.
    assert 0 < out.written < len(first)
    assert out.size == len(first) + len(second) - out.written
    assert out.started and out.data_pending == out.size
    received: list[bytes] = []
    async with trio.open_nursery() as nursery:
        nursery.start_soon(lambda: _collect(peer, len(first) + len(second), received))
        await out.flush(transport)
    assert received == [first + second]
    assert out.size == 0 and out.written == len(first) + len(second)


async def _collect(stream: trio.SocketStream, n: int, into: list[bytes]) -> None:
    into.append(await _read_exactly(stream, n))


async def test_a_direct_write_to_a_broken_socket_leaves_the_error_to_the_flusher(
    pair: tuple[trio.SocketStream, trio.SocketStream],
) -> None:
    ours, peer = pair
    await peer.aclose()
    out, transport = _outbox_on(ours)
    out.queue_message((b"x" * 100,))
    assert not out.write_now(transport)  # EPIPE: nothing is written, nothing is raised
    assert out.written == 0 and out.size == 100 and out.broken
    with pytest.raises(trio.BrokenResourceError):
        await out.flush(transport)
    assert not out.write_now(transport)  # a broken outbox is left alone
    assert out.written == 0


async def test_a_frame_cut_by_a_full_socket_is_finished_before_the_close_echo(
    pair: tuple[trio.SocketStream, trio.SocketStream],
) -> None:
    # Issue 12, defect 4: the peer's Close arrives while a direct write took
    # only part of a frame. The messages not started are dropped (the peer
    # will read none), but the frame cut short is finished before the Close
    # echo, or the peer would read the echo as payload.
    ours, peer = pair
    out, transport = _outbox_on(ours)
    big = bytes(range(256)) * 4096
    out.queue_message((big[:10], big[10:]))
    out.queue_message((b"\x82\x05later",))
    assert not out.write_now(transport)
    cut = out.written
    assert 0 < cut < len(big)
    out.drop_unstarted_messages()
    out.queue_control([b"\x88\x02\x03\xe8"])
    assert out.data_pending == len(big) - cut  # the started frame stays
    expected = big + b"\x88\x02\x03\xe8"
    received: list[bytes] = []
    async with trio.open_nursery() as nursery:
        nursery.start_soon(lambda: _collect(peer, len(expected), received))
        await out.flush(transport)
    assert received == [expected]
    assert out.size == 0


async def test_pongs_go_between_frames_and_the_close_after_every_message() -> None:
    left, right = trio.testing.memory_stream_pair()
    out = Outbox()
    transport = StreamTransport(left)
    out.queue_message((b"m1",))
    out.queue_control([b"\x88\x00"])  # a Close: after the messages
    out.queue_message((b"m2",))
    out.queue_control([b"\x8a\x00"])  # a pong: before them
    await out.flush(transport)
    assert await right.receive_some(100) == b"\x8a\x00m1m2\x88\x00"


async def test_a_stream_is_written_in_bounded_pieces() -> None:
    # What is in flight on a trio stream is at most MAX_INFLIGHT: the rest
    # of a big frame can still be judged "unsent" when the peer closes.
    left, right = trio.testing.memory_stream_pair()
    out = Outbox()
    seen: list[tuple[int, int]] = []

    class Watched(StreamTransport):
        async def write(self, chunks: Sequence[bytes | bytearray | memoryview]) -> None:
            seen.append((out.data_inflight, out.data_pending))
            await super().write(chunks)

    transport = Watched(left)
    big = os.urandom(3 * MAX_INFLIGHT + 7)
    out.queue_message((big[:10], big[10:]))
    await out.flush(transport)
    assert [inflight for inflight, _ in seen] == [MAX_INFLIGHT] * 3 + [7]
    assert seen[0][1] == len(big) - MAX_INFLIGHT
    got = b""
    while len(got) < len(big):
        got += await right.receive_some(1 << 20)
    assert got == big


async def test_only_plain_sockets_take_the_direct_path(
    pair: tuple[trio.SocketStream, trio.SocketStream],
) -> None:
    ours, _ = pair
    transport = transport_for(ours)
    assert isinstance(transport, SocketTransport) and transport.direct
    assert transport.fd == ours.socket.fileno()
    left, right = trio.testing.memory_stream_pair()
    assert isinstance(transport_for(left), StreamTransport)


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
    transport = conn._transport
    assert isinstance(transport, SocketTransport)
    assert transport.fd == -1 and conn.inbox.before_wait is None
    assert conn.statistics().buffered_out == 0


def test_advance_drops_written_bytes_and_keeps_views_of_the_rest() -> None:
    chunks: list[bytes | memoryview] = [b"abc", b"defg", b"hi"]
    assert [bytes(c) for c in _advance(chunks, 0)] == [b"abc", b"defg", b"hi"]
    assert [bytes(c) for c in _advance(chunks, 2)] == [b"c", b"defg", b"hi"]
    assert [bytes(c) for c in _advance(chunks, 3)] == [b"defg", b"hi"]
    assert [bytes(c) for c in _advance(chunks, 8)] == [b"i"]
    assert _advance(chunks, 9) == []
    assert chunks == [b"abc", b"defg", b"hi"]  # the input list is left alone


async def test_more_chunks_than_one_writev_takes_arrive_whole_and_in_order(
    pair: tuple[trio.SocketStream, trio.SocketStream],
) -> None:
    ours, peer = pair
    out, transport = _outbox_on(ours)
    chunks = [i.to_bytes(4, "big") * (1 + i % 7) for i in range(3 * IOV_MAX + 5)]
    expected = b"".join(chunks)
    for chunk in chunks:
        out.queue_message((chunk,))
    out.write_now(transport)  # a first part, directly
    received: list[bytes] = []
    async with trio.open_nursery() as nursery:
        nursery.start_soon(lambda: _collect(peer, len(expected), received))
        await out.flush(transport)
    assert received == [expected]
    assert out.written == len(expected) and out.size == 0
