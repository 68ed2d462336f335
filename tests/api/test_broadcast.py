"""``wsstream.broadcast``: one message to many connections, a slow one never
holding up the others, one encoding shared where the bytes are the same
(issue 15, part 2).

Connections run over trio memory streams (``serve_stream`` on one end, a
wsstream client or a hand-driven peer on the other); a slow member is a
hand-driven peer on a lockstep stream that reads nothing, so the server's
writes to it stay pending exactly as long as the test says.
"""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any

import pytest
import trio
import trio.testing

import wsstream
from tests.conftest import Server
from tests.engine.test_engine import open_client
from tests.peer import BINARY, TEXT, Peer
from wsstream._protocol import core as core_module
from wsstream._protocol import shared_frame

WRITE_LIMIT = 4096
MESSAGE = "m" * 100  # 102 bytes on the wire, uncompressed
FRAME = len(MESSAGE) + 2


class Room:
    """Server-side connections (what ``broadcast`` is given) and the peers
    that receive what it sent."""

    def __init__(self, nursery: trio.Nursery, stack: AsyncExitStack) -> None:
        self._nursery = nursery
        self._stack = stack
        self._arrivals, self._arrived = trio.open_memory_channel[wsstream.WebSocketStream](1)

    async def _handler(self, wss: wsstream.WebSocketStream) -> None:
        await self._arrivals.send(wss)
        await trio.sleep_forever()

    def _serve(self, stream: trio.abc.Stream, **options: Any) -> None:
        options.setdefault("write_limit", WRITE_LIMIT)
        options.setdefault("compression", None)
        self._nursery.start_soon(functools.partial(
            wsstream.serve_stream, self._handler, stream, ping_interval=None, **options
        ))

    async def join(
        self, compression: str | None = None, **options: Any
    ) -> tuple[wsstream.WebSocketStream, wsstream.WebSocketStream]:
        """A member whose wsstream client reads eagerly (into its readable):
        (the server's stream, the client)."""
        server_side, client_side = trio.testing.memory_stream_pair()
        self._serve(server_side, compression=compression, **options)
        client = await self._stack.enter_async_context(wsstream.WebSocketStream(
            "ws://test/", stream=client_side, compression=compression, ping_interval=None
        ))
        await client.opened
        return await self._arrived.receive(), client

    async def join_slow(self, **options: Any) -> tuple[wsstream.WebSocketStream, Peer]:
        """A member that reads nothing until the test makes it: a hand-driven
        peer on a lockstep stream, so the server's writes wait for it."""
        server_side, client_side = trio.testing.lockstep_stream_pair()
        self._serve(server_side, **options)
        peer = Peer(client_side, is_client=True)
        status = await peer.handshake()
        assert status.startswith("HTTP/1.1 101"), status
        return await self._arrived.receive(), peer


@asynccontextmanager
async def open_room() -> AsyncIterator[Room]:
    with trio.fail_after(60):
        async with trio.open_nursery() as nursery:
            async with AsyncExitStack() as stack:  # the clients, inside the nursery
                yield Room(nursery, stack)
            nursery.cancel_scope.cancel()


class FrameSpy:
    """Counts the frames the protocol core builds (every message frame, shared
    or not, comes from ``frames.frame`` through the core module)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.built: list[tuple[bytes, ...]] = []
        real = core_module.frame

        def spy(head: int, payload: Any, mask: bool) -> Any:
            result = real(head, payload, mask)
            self.built.append(result)
            return result

        monkeypatch.setattr(core_module, "frame", spy)


async def receive_all(client: wsstream.WebSocketStream, count: int) -> list[wsstream.Message]:
    readable = (await client.opened).readable
    return [await readable.receive() for _ in range(count)]


# -- every member gets every message -----------------------------------------------


async def test_every_member_receives_every_message_in_order() -> None:
    async with open_room() as room:
        members = [await room.join() for _ in range(20)]
        streams = [server for server, _ in members]
        messages: list[str | bytes] = [f"text {i} ✓" if i % 2 else bytes([i]) * 50
                                       for i in range(30)]
        for message in messages:
            assert wsstream.broadcast(streams, message) == wsstream.BroadcastResult(20, (), 0)
        for server, client in members:
            assert await receive_all(client, len(messages)) == messages
            assert server.statistics().messages_sent == len(messages)


async def test_writables_and_streams_mixed_each_name_their_connection() -> None:
    async with open_room() as room:
        (a, client_a), (b, client_b) = await room.join(), await room.join()
        writable_b = (await b.opened).writable
        assert wsstream.broadcast([a, writable_b], "one").sent == 2
        # A generator is taken too; a connection named twice gets it twice.
        assert wsstream.broadcast((t for t in [a, a]), b"two").sent == 2
        assert await receive_all(client_a, 3) == ["one", b"two", b"two"]
        assert await receive_all(client_b, 1) == ["one"]
        assert wsstream.broadcast([], "nobody") == wsstream.BroadcastResult(0, (), 0)


async def test_loopback_members_receive_every_message(server: Server) -> None:
    streams: list[wsstream.WebSocketStream] = []
    arrived = trio.Semaphore(0)

    async def handler(wss: wsstream.WebSocketStream) -> None:
        readable, *_ = await wss.opened
        streams.append(wss)
        arrived.release()
        async for _ in readable:  # until the client leaves (serve shields its handlers)
            pass

    url = await server.start(handler, compression=None, ping_interval=None)
    messages = [f"message {i}" for i in range(100)]
    async with AsyncExitStack() as stack:
        clients = [
            await stack.enter_async_context(wsstream.WebSocketStream(url, compression=None))
            for _ in range(10)
        ]
        for _ in clients:
            await arrived.acquire()
        for message in messages:
            # 100 short messages stay far under the default write_limit.
            assert wsstream.broadcast(streams, message).sent == 10
        for client in clients:
            assert await receive_all(client, 100) == messages


# -- one encoding where the bytes are the same ------------------------------------


async def test_uncompressed_server_connections_share_one_encoding(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async with open_room() as room:
        members = [await room.join() for _ in range(10)]
        streams = [server for server, _ in members]
        spy = FrameSpy(monkeypatch)
        assert wsstream.broadcast(streams, MESSAGE).sent == 10
        assert len(spy.built) == 1  # one frame for ten connections
        assert spy.built[0] == (b"\x81\x64" + MESSAGE.encode(),)
        # send_nowait in a loop, for contrast: one encoding per connection.
        for stream in streams:
            (await stream.opened).writable.send_nowait(MESSAGE)
        assert len(spy.built) == 11
        for _, client in members:
            assert await receive_all(client, 2) == [MESSAGE, MESSAGE]


@pytest.mark.parametrize("message", ["héllo ✓", "lone \ud800 surrogate", bytearray(b"\x00\xff")])
async def test_the_shared_frame_is_what_send_nowait_would_send(
    message: str | bytearray,
) -> None:
    async with open_room() as room:
        (a, client_a), (b, client_b), (c, client_c) = [await room.join() for _ in range(3)]
        d, client_d = await room.join("deflate")
        # send_nowait alone on one connection; broadcast to two that share a
        # frame and one that encodes its own.
        try:
            (await a.opened).writable.send_nowait(message)
        except Exception as exc:
            with pytest.raises(type(exc)):
                wsstream.broadcast([d, b, c], message)
            assert all(s.statistics().messages_sent == 0 for s in (b, c, d))
            return
        assert wsstream.broadcast([d, b, c], message).sent == 3
        expected = await receive_all(client_a, 1)
        for client in (client_b, client_c, client_d):
            assert await receive_all(client, 1) == expected


async def test_compressed_connections_encode_their_own_and_decode_correctly(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async with open_room() as room:
        members = [await room.join("deflate" if i % 2 else None) for i in range(10)]
        for server, client in members:
            compressed = "permessage-deflate" in (await client.opened).extensions
            assert compressed == (members.index((server, client)) % 2 == 1)
        spy = FrameSpy(monkeypatch)
        # Repeated messages: with context takeover each compressed connection
        # encodes them differently from the first time (back references).
        messages = ["héllo wörld " * 20, b"\x00\x01" * 300, "héllo wörld " * 20]
        for message in messages:
            assert wsstream.broadcast([s for s, _ in members], message).sent == 10
        # Five compressed connections encode each message; five share one.
        assert len(spy.built) == 3 * (5 + 1)
        assert sum(1 for frame in spy.built if frame[0][0] & 0x40) == 3 * 5  # RSV1
        for _, client in members:
            assert await receive_all(client, 3) == messages


async def test_clients_mask_each_frame_with_their_own_key(
    monkeypatch: pytest.MonkeyPatch, nursery: trio.Nursery
) -> None:
    # Broadcasting from clients (to several servers): no shared frame.
    received: list[wsstream.Message] = []

    async def handler(wss: wsstream.WebSocketStream) -> None:
        readable, *_ = await wss.opened
        received.append(await readable.receive())

    async with AsyncExitStack() as stack:
        clients = []
        for _ in range(3):
            ours, theirs = trio.testing.memory_stream_pair()
            nursery.start_soon(functools.partial(
                wsstream.serve_stream, handler, theirs, compression=None
            ))
            clients.append(await stack.enter_async_context(wsstream.WebSocketStream(
                "ws://test/", stream=ours, compression=None, ping_interval=None
            )))
        for client in clients:
            await client.opened
        spy = FrameSpy(monkeypatch)
        assert wsstream.broadcast(clients, b"to every server").sent == 3
        assert len(spy.built) == 3
        assert len({frame[0][2:6] for frame in spy.built}) == 3  # three masking keys
        for client in clients:
            await client.closed  # the handler returned after one message
    assert received == [b"to every server"] * 3


# -- slow members ------------------------------------------------------------------


async def test_a_slow_member_is_skipped_and_the_others_get_everything() -> None:
    async with open_room() as room:
        fast = [await room.join() for _ in range(5)]
        slow, peer = await room.join_slow()
        streams = [slow] + [server for server, _ in fast]
        missed = 0
        for _ in range(200):
            result = wsstream.broadcast(streams, MESSAGE)
            assert result.sent + len(result.slow) == 6
            assert result.slow in ((), (slow,))  # the very object passed
            missed += len(result.slow)
            # Bounded: what the slow member holds never passes the limit by
            # more than one message.
            assert slow.statistics().buffered_out <= WRITE_LIMIT + FRAME
            await trio.testing.wait_all_tasks_blocked()  # the fast ones drain
        assert missed > 150  # it stopped taking messages early
        delivered = 200 - missed
        assert slow.statistics().messages_sent == delivered
        for _, client in fast:
            assert await receive_all(client, 200) == [MESSAGE] * 200
        # The slow member gets what was queued for it, in order, and then,
        # once it reads, it is offered the next broadcasts again.
        for _ in range(delivered):
            assert await peer.receive_frame() == (TEXT, MESSAGE.encode(), True)
        await trio.testing.wait_all_tasks_blocked()
        assert wsstream.broadcast(streams, b"again").sent == 6
        assert await peer.receive_frame() == (BINARY, b"again", True)


@pytest.mark.parametrize("code", [1008, 1013, 4000])
async def test_a_slow_member_is_closed_with_the_policy_code(code: int) -> None:
    async with open_room() as room:
        fast, fast_client = await room.join()
        slow, peer = await room.join_slow()
        closed = []
        for _ in range(100):
            result = wsstream.broadcast([slow, fast], MESSAGE, policy="close",
                                        close_code=code, reason="lagging")
            closed += result.slow
            # A message over the limit at most, then the Close frame.
            assert slow.statistics().buffered_out <= WRITE_LIMIT + FRAME + 4 + len("lagging")
            await trio.testing.wait_all_tasks_blocked()
        # Slow once, then closing: skipped silently from then on.
        assert closed == [slow]
        assert result.not_open == 1 and result.sent == 1
        assert await receive_all(fast_client, 100) == [MESSAGE] * 100
        # What was queued before the Close still arrives, then the Close.
        for _ in range(slow.statistics().messages_sent):
            assert await peer.receive_frame() == (TEXT, MESSAGE.encode(), True)
        assert await peer.expect_close() == (code, "lagging")


async def test_closed_and_unopened_connections_are_skipped_silently() -> None:
    async with open_room() as room:
        (a, _), (b, client_b), (c, _) = [await room.join() for _ in range(3)]
        a.close(1000)
        client_b.close(1000)  # this member left
        await b.closed
        never_entered = wsstream.WebSocketStream("ws://test/")
        result = wsstream.broadcast([a, b, c, never_entered], "hi")
        assert result == wsstream.BroadcastResult(1, (), 3)
        # The slow policy does not apply to them.
        result = wsstream.broadcast([a, b, never_entered], "hi", policy="close")
        assert result == wsstream.BroadcastResult(0, (), 3)


# -- the contract ------------------------------------------------------------------


async def test_broadcast_is_not_a_checkpoint() -> None:
    async with open_room() as room:
        server, client = await room.join()
        with trio.CancelScope() as scope:  # noqa: ASYNC100 (the point: no checkpoint)
            scope.cancel()
            assert wsstream.broadcast([server], "queued anyway").sent == 1
        assert await receive_all(client, 1) == ["queued anyway"]


async def test_bad_arguments_raise_before_anything_is_queued() -> None:
    async with open_room() as room:
        server, _ = await room.join()
        writable = (await server.opened).writable
        bad_targets: list[Any] = [server, writable, "abc", b"abc", 3, None, [server, 3],
                                  [server, (await server.opened).readable]]
        for targets in bad_targets:
            with pytest.raises(TypeError):
                wsstream.broadcast(targets, "x")
        for message in (3, None, ["x"]):
            with pytest.raises(TypeError):
                wsstream.broadcast([server], message)  # type: ignore[arg-type]
        for kwargs in ({"close_code": True}, {"close_code": 1008.0}, {"reason": b"slow"},
                       {"policy": None}):
            with pytest.raises(TypeError):
                wsstream.broadcast([server], "x", **kwargs)
        for kwargs in ({"policy": "drop"}, {"close_code": 1000}, {"close_code": 1011},
                       {"close_code": 5000}, {"reason": "é" * 62}, {"reason": "\ud800"}):
            with pytest.raises(ValueError):
                wsstream.broadcast([server], "x", **kwargs)
        assert server.statistics().messages_sent == 0
        # A validated close_code and reason apply only under policy="close".
        assert wsstream.broadcast([server], "x", close_code=1013, reason="é" * 61).sent == 1


# -- the engine's hook -------------------------------------------------------------


async def test_shared_frames_are_refused_where_the_core_would_mask_or_compress() -> None:
    async with open_client() as (wss, peer):
        conn = wss._conn
        assert not conn.core.shares_frames
        with pytest.raises(RuntimeError):
            conn.broadcast_nowait(b"x", True, shared_frame(True, b"x"))
        assert wss.statistics().messages_sent == 0
        conn.broadcast_nowait(b"own", True, None)  # encoded (masked) by its core
        assert await peer.receive_frame() == (TEXT, b"own", True)
    async with open_room() as room:
        server, _ = await room.join("deflate")
        assert not server._conn.core.shares_frames
        with pytest.raises(RuntimeError):
            server._conn.broadcast_nowait(b"x", True, shared_frame(True, b"x"))


async def test_the_hook_checks_what_send_nowait_checks() -> None:
    async with open_room() as room:
        server, _ = await room.join_slow()
        conn = server._conn
        assert conn.core.shares_frames
        frame = shared_frame(False, b"z" * (WRITE_LIMIT + 1))
        conn.broadcast_nowait(b"", False, frame)  # under the limit when called
        assert server.statistics().messages_sent == 1
        assert server.statistics().buffered_out == len(frame[0])
        with pytest.raises(trio.WouldBlock):
            conn.broadcast_nowait(b"", False, frame)
        assert server.statistics().messages_sent == 1
        server.close(1000)
        with pytest.raises(trio.ClosedResourceError):
            conn.broadcast_nowait(b"", False, shared_frame(False, b""))
