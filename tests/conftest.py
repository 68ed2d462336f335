"""Shared fixtures: a wsstream server on loopback, handlers that play the
roles of the web-platform-tests' server handlers."""

from __future__ import annotations

import os
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
import trio
import trustme
from hypothesis import settings

import wsstream
from tests.wpt_handlers import TlsContexts, WptServer

# Clients default to proxy=True, the environment's proxy (docs/proxies.md),
# and the suite talks to 127.0.0.1 only: a proxy set for pip or a browser
# must not route the tests (nor the CLI's child processes, which inherit
# this environment). Tests of the environment's rules set their own.
for _name in list(os.environ):
    if _name.lower() in ("http_proxy", "https_proxy", "all_proxy", "ws_proxy", "wss_proxy",
                         "no_proxy"):
        del os.environ[_name]

# Hypothesis's per-example deadline (200 ms) measures the machine's load as
# much as the code: on 2 busy cores a fast example can take longer. The
# examples are bounded by their sizes; no deadline.
settings.register_profile("wsstream", deadline=None)
settings.load_profile("wsstream")

Handler = Callable[[wsstream.WebSocketStream], Awaitable[None]]


async def echo_handler(wss: wsstream.WebSocketStream) -> None:
    readable, writable, *_ = await wss.opened
    async for message in readable:
        await writable.send(message)


async def pipeline(
    readable: wsstream.Readable, writable: wsstream.Writable, payload: bytes, count: int
) -> None:
    """Send ``count`` copies of ``payload`` from one task while this one
    reads the echoes: all of them in flight at once, both ways."""
    async with trio.open_nursery() as nursery:

        async def sender() -> None:
            for _ in range(count):
                await writable.send(payload)

        nursery.start_soon(sender)
        for _ in range(count):
            assert await readable.receive() == payload


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


# -- web-platform-tests roles (tests/wpt_handlers.py), over ws:// and wss:// --


@pytest.fixture(scope="session")
def tls_contexts() -> TlsContexts:
    """A trustme CA, a certificate for 127.0.0.1, and the client's trust in it."""
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1")
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    cert.configure_cert(server)
    client = ssl.create_default_context()
    ca.configure_trust(client)
    return TlsContexts(server=server, client=client)


@pytest.fixture(params=["ws", "wss"])
async def wpt(
    request: pytest.FixtureRequest, nursery: trio.Nursery, tls_contexts: TlsContexts
) -> WptServer:
    """WPT server roles; each test runs over ws:// and over wss:// (``?wss``)."""
    return WptServer(nursery, tls_contexts if request.param == "wss" else None)


@pytest.fixture
async def wpt_ws(nursery: trio.Nursery) -> WptServer:
    """WPT server roles over ws:// only."""
    return WptServer(nursery, None)
