"""Shared fixtures: a wsstream server on loopback, handlers that play the
roles of the web-platform-tests' server handlers."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
import trio

import wsstream

Handler = Callable[[wsstream.WebSocketStream], Awaitable[None]]


async def echo_handler(wss: wsstream.WebSocketStream) -> None:
    readable, writable, *_ = await wss.opened
    async for message in readable:
        await writable.send(message)


class Server:
    """A running ``wsstream.serve`` on 127.0.0.1 with a port of its own."""

    def __init__(self, nursery: trio.Nursery) -> None:
        self._nursery = nursery

    async def start(self, handler: Handler, **kwargs: Any) -> str:
        listeners = await self._nursery.start(
            lambda task_status: wsstream.serve(
                handler, "127.0.0.1", 0, task_status=task_status, **kwargs
            )
        )
        port = listeners[0].socket.getsockname()[1]
        return f"ws://127.0.0.1:{port}"


@pytest.fixture
async def server(nursery: trio.Nursery) -> AsyncIterator[Server]:
    yield Server(nursery)


@pytest.fixture
async def echo_url(server: Server) -> str:
    return await server.start(echo_handler) + "/echo"
