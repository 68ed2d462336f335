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
from tests.peer import TEXT, Peer
from tests.test_engine import open_client
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


# -- the engine's hook -------------------------------------------------------------


async def test_shared_frames_are_refused_where_the_core_would_mask_or_compress() -> None:
    async with open_client() as (wss, peer):
        conn = wss._conn
        assert not conn.core.shares_frames
        with pytest.raises(RuntimeError):
            conn.broadcast_nowait("x", True, shared_frame(True, b"x"))
        assert wss.statistics().messages_sent == 0
        conn.broadcast_nowait("own", True, None)  # encoded (masked) by its core
        assert await peer.receive_frame() == (TEXT, b"own", True)
    async with open_room() as room:
        server, _ = await room.join("deflate")
        assert not server._conn.core.shares_frames
        with pytest.raises(RuntimeError):
            server._conn.broadcast_nowait("x", True, shared_frame(True, b"x"))


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
