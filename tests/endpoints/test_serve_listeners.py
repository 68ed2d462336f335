"""serve_listeners: the one server, on listeners the caller made (issue 14,
item 2), with serve's graceful shutdown and task_status."""

from __future__ import annotations

import inspect

import pytest
import trio

import wsstream
from tests.server_support import Stoppable, echo, port_of
from tests.wpt_handlers import TlsContexts
from wsstream._endpoints.server import ServerOptions
from wsstream._options import ConnectionOptions


async def test_serves_on_the_listeners_given_and_starts_with_them(
    nursery: trio.Nursery,
) -> None:
    first = await trio.open_tcp_listeners(0, host="127.0.0.1")
    second = await trio.open_tcp_listeners(0, host="127.0.0.1")
    given = first + second
    seen: list[str] = []

    async def handler(wss: wsstream.WebSocketStream) -> None:
        seen.append(wss.url)
        await echo(wss)

    started = await Stoppable(nursery).start(wsstream.serve_listeners, handler, given)
    assert started == given
    for listener in given:
        url = f"ws://127.0.0.1:{port_of([listener])}/x"
        async with wsstream.WebSocketStream(url) as wss:
            readable, writable, *_ = await wss.opened
            await writable.send("hi")
            assert await readable.receive() == "hi"
    assert len(seen) == 2 and all(url.startswith("ws://127.0.0.1:") for url in seen)


async def test_cancelling_closes_connections_with_1001_and_the_listeners(
    nursery: trio.Nursery,
) -> None:
    listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
    server = Stoppable(nursery)
    await server.start(wsstream.serve_listeners, echo, listeners)
    url = f"ws://127.0.0.1:{port_of(listeners)}/"
    async with wsstream.WebSocketStream(url) as one, wsstream.WebSocketStream(url) as two:
        await one.opened
        await two.opened
        server.scope.cancel()
        assert (await one.closed).close_code == 1001
        assert (await two.closed).close_code == 1001
    await server.done.wait()
    # The listeners were the server's: closed with it.
    assert all(listener.socket.fileno() == -1 for listener in listeners)


async def test_a_tls_listener_gives_wss_connections(
    nursery: trio.Nursery, tls_contexts: TlsContexts
) -> None:
    tcp = await trio.open_tcp_listeners(0, host="127.0.0.1")
    tls = [trio.SSLListener(listener, tls_contexts.server) for listener in tcp]
    urls: list[str] = []

    async def handler(wss: wsstream.WebSocketStream) -> None:
        urls.append(wss.url)
        await echo(wss)

    await Stoppable(nursery).start(wsstream.serve_listeners, handler, tls)
    url = f"wss://127.0.0.1:{port_of(tcp)}/secure"
    async with wsstream.WebSocketStream(url, ssl_context=tls_contexts.client) as wss:
        readable, writable, *_ = await wss.opened
        await writable.send("tls")
        assert await readable.receive() == "tls"
    assert urls == [url]


async def test_the_hooks_and_options_of_serve_apply(nursery: trio.Nursery) -> None:
    listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
    stats = wsstream.ServerStatistics()

    def process_request(request: wsstream.Request) -> wsstream.Response | None:
        if request.path == "/no":
            return wsstream.Response(404)
        return None

    await Stoppable(nursery).start(
        wsstream.serve_listeners, echo, listeners, subprotocols=["v2"],
        process_request=process_request, statistics=stats, compression=None,
    )
    base = f"ws://127.0.0.1:{port_of(listeners)}"
    async with wsstream.WebSocketStream(base + "/", protocols=["v1", "v2"]) as wss:
        _, _, extensions, protocol = await wss.opened
        assert (extensions, protocol) == ("", "v2")
    async with wsstream.WebSocketStream(base + "/no") as wss:
        with pytest.raises(wsstream.HandshakeError) as caught:
            await wss.opened
    assert caught.value.status == 404
    assert stats.connections_accepted == 2 and stats.handshakes_failed == 1


async def test_bad_arguments_raise_before_accepting() -> None:
    listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
    try:
        with pytest.raises(TypeError, match="sequence"):
            await wsstream.serve_listeners(echo, listeners[0])  # type: ignore[arg-type]
        with pytest.raises(TypeError, match="listener"):
            await wsstream.serve_listeners(echo, [object()])  # type: ignore[list-item]
        with pytest.raises(ValueError, match="empty"):
            await wsstream.serve_listeners(echo, [])
        with pytest.raises(TypeError, match="no_such"):
            await wsstream.serve_listeners(echo, listeners, no_such=1)  # type: ignore[call-arg]
        with pytest.raises(TypeError, match="max_connections"):
            await wsstream.serve_listeners(echo, listeners, max_connections=1.5)  # type: ignore[typeddict-item]
        with pytest.raises(TypeError, match="process_response"):
            await wsstream.serve_listeners(echo, listeners, process_response=3)  # type: ignore[typeddict-item]
        # Nothing was accepted, and the listeners are still the caller's.
        assert all(listener.socket.fileno() != -1 for listener in listeners)
    finally:
        for listener in listeners:
            await listener.aclose()


def test_serve_takes_exactly_the_options_serve_listeners_takes() -> None:
    # ServerOptions is serve's keyword arguments, but for those of listening.
    own = set(inspect.signature(wsstream.serve).parameters) - {
        "handler", "host", "port", "task_status", "ssl_context", "backlog", "reuse_port",
        "options",
    }
    assert own == set(ServerOptions.__annotations__) - set(ConnectionOptions.__annotations__)
