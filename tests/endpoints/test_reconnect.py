"""connect_forever: the backoff, which endings reconnect, cancellation.

Everything runs on 127.0.0.1 under trio's MockClock (``autojump_clock``), so
the delays are virtual seconds and no test waits in real time. Every loop is
bounded: ``on_reconnect`` gives up after a few attempts by raising
``GaveUp``. The jitter is pinned by replacing the module's random source.
"""

from __future__ import annotations

import functools
import logging
import random
import socket
import ssl
import struct
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import pytest
import trio

import wsstream
from tests.peer import TEXT, Peer
from tests.wpt_handlers import TlsContexts
from wsstream._endpoints import reconnect as _reconnect
from wsstream._endpoints.reconnect import backoff_ceiling

Script = Callable[[Peer, int], Awaitable[None]]


class GaveUp(Exception):
    pass


class Attempts:
    """An ``on_reconnect`` that records each call and gives up after ``limit``."""

    def __init__(self, limit: int = 3) -> None:
        self.limit = limit
        self.infos: list[wsstream.ReconnectInfo] = []
        self.times: list[float] = []
        self.called = trio.Event()

    def __call__(self, info: wsstream.ReconnectInfo) -> None:
        self.infos.append(info)
        self.times.append(trio.current_time())
        self.called.set()
        if len(self.infos) > self.limit:
            raise GaveUp(info)

    @property
    def causes(self) -> list[wsstream.WebSocketError | wsstream.CloseInfo]:
        return [info.cause for info in self.infos]


class Jitter:
    """Stands for the module's random source: ``uniform(a, b)`` gives the
    point ``fraction`` of the way from a to b, and records its arguments."""

    def __init__(self, fraction: float) -> None:
        self.fraction = fraction
        self.calls: list[tuple[float, float]] = []

    def uniform(self, a: float, b: float) -> float:
        self.calls.append((a, b))
        return a + (b - a) * self.fraction


@pytest.fixture
def jitter(monkeypatch: pytest.MonkeyPatch) -> Jitter:
    """Every delay is its ceiling: the backoff sequence itself."""
    fixed = Jitter(1.0)
    monkeypatch.setattr(_reconnect, "_random", fixed)
    return fixed


@pytest.fixture
def refused_url() -> Iterator[str]:
    """A port bound but not listening: connecting is refused, and no other
    program can take the port while the test runs."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield f"ws://127.0.0.1:{sock.getsockname()[1]}/"


class ScriptedServer:
    """A TCP server on 127.0.0.1 whose connections each run a hand-written
    script (tests.peer), for endings a wsstream server cannot produce
    (close codes 1012-1014, a drop without a Close, silence)."""

    def __init__(self, script: Script) -> None:
        self.script = script
        self.connections = 0

    async def handle(self, stream: trio.SocketStream) -> None:
        self.connections += 1
        try:
            await self.script(Peer(stream, is_client=False), self.connections)
        except (trio.BrokenResourceError, trio.ClosedResourceError, EOFError):
            pass  # the client went away first: what some tests want
        finally:
            await trio.aclose_forcefully(stream)

    async def start(self, nursery: trio.Nursery) -> str:
        listeners = await nursery.start(
            functools.partial(trio.serve_tcp, self.handle, 0, host="127.0.0.1")
        )
        return f"ws://127.0.0.1:{listeners[0].socket.getsockname()[1]}/"


def close_with(code: int | None, after: float = 0.0) -> Script:
    """Accept, stay open ``after`` seconds, close with ``code``, wait for the echo."""

    async def script(peer: Peer, n: int) -> None:
        await peer.accept()
        await trio.sleep(after)
        await peer.send_close(code)
        await peer.expect_close()

    return script


async def read_all(wss: wsstream.WebSocketStream) -> None:
    """The usual feed handler: read until the connection ends."""
    readable, *_ = await wss.opened
    async for _ in readable:
        pass


async def run_until_gave_up(url: str, attempts: Attempts, **options: Any) -> None:
    with pytest.raises(GaveUp):
        await wsstream.connect_forever(url, read_all, on_reconnect=attempts, **options)


# -- the backoff --------------------------------------------------------------


def test_backoff_ceilings_grow_by_the_factor_up_to_the_maximum() -> None:
    ceilings = [backoff_ceiling(n, 5.0, 1.618, 90.0) for n in range(1, 10)]
    assert ceilings == pytest.approx(
        [5.0, 8.09, 13.09, 21.18, 34.27, 55.45, 89.72, 90.0, 90.0], abs=0.01
    )
    # A client that has retried for days: the power overflows, the cap holds.
    assert backoff_ceiling(10**6, 5.0, 1.618, 90.0) == 90.0
    assert backoff_ceiling(3, 2.0, 1.0, 2.0) == 2.0  # factor 1: a constant delay


async def test_delays_follow_the_backoff_sequence(
    autojump_clock: Any, jitter: Jitter, refused_url: str
) -> None:
    attempts = Attempts(limit=9)
    start = trio.current_time()
    await run_until_gave_up(refused_url, attempts)
    expected = [backoff_ceiling(n, 5.0, 1.618, 90.0) for n in range(1, 11)]
    assert [info.attempt for info in attempts.infos] == list(range(1, 11))
    assert [info.delay for info in attempts.infos] == pytest.approx(expected)
    # Each delay is drawn from [0, ceiling], and slept in full: the next
    # attempt comes exactly that much (virtual) time later.
    assert [low for low, _ in jitter.calls] == [0.0] * 10
    assert [high for _, high in jitter.calls] == pytest.approx(expected)
    slept = [b - a for a, b in zip([start, *attempts.times], attempts.times, strict=False)]
    assert slept == pytest.approx([0.0, *expected[:-1]])


async def test_jitter_draws_each_delay_below_its_ceiling(
    autojump_clock: Any, monkeypatch: pytest.MonkeyPatch, refused_url: str
) -> None:
    monkeypatch.setattr(_reconnect, "_random", random.Random(20240614))
    attempts = Attempts(limit=11)
    await run_until_gave_up(
        refused_url, attempts, initial_delay=1.0, backoff_factor=2.0, max_delay=30.0
    )
    delays = [info.delay for info in attempts.infos]
    ceilings = [backoff_ceiling(n, 1.0, 2.0, 30.0) for n in range(1, 13)]
    assert all(0.0 <= d <= c for d, c in zip(delays, ceilings, strict=True))
    # Full jitter: spread over the window, not at its top.
    assert sum(delays) < 0.9 * sum(ceilings)
    assert len(set(delays)) == len(delays)


async def test_jitter_fraction_scales_every_delay(
    autojump_clock: Any, monkeypatch: pytest.MonkeyPatch, refused_url: str
) -> None:
    monkeypatch.setattr(_reconnect, "_random", Jitter(0.25))
    attempts = Attempts(limit=3)
    await run_until_gave_up(refused_url, attempts, initial_delay=4.0, backoff_factor=2.0)
    assert [info.delay for info in attempts.infos] == pytest.approx([1.0, 2.0, 4.0, 8.0])


async def test_a_connection_open_long_enough_resets_the_backoff(
    autojump_clock: Any, jitter: Jitter, nursery: trio.Nursery
) -> None:
    # Connections 1-3 close at once, the 4th after 61 s, the 5th at once.
    durations = {4: 61.0}

    async def script(peer: Peer, n: int) -> None:
        await close_with(1012, after=durations.get(n, 0.0))(peer, n)

    url = await ScriptedServer(script).start(nursery)
    attempts = Attempts(limit=4)
    await run_until_gave_up(url, attempts, ping_interval=None)
    assert [info.attempt for info in attempts.infos] == [1, 2, 3, 1, 2]
    assert [info.delay for info in attempts.infos] == pytest.approx([5.0, 8.09, 13.09, 5.0, 8.09],
                                                                    abs=0.01)


async def test_reset_after_zero_resets_after_every_open_connection(
    autojump_clock: Any, jitter: Jitter, nursery: trio.Nursery
) -> None:
    url = await ScriptedServer(close_with(1012)).start(nursery)
    attempts = Attempts(limit=2)
    await run_until_gave_up(url, attempts, reset_after=0)
    assert [info.attempt for info in attempts.infos] == [1, 1, 1]


async def test_each_reconnection_is_logged(
    autojump_clock: Any, jitter: Jitter, refused_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="wsstream.reconnect")
    await run_until_gave_up(refused_url, Attempts(limit=1))
    messages = [r.getMessage() for r in caplog.records if r.name == "wsstream.reconnect"]
    assert len(messages) == 2
    assert "reconnecting in 5.0 s (attempt 1)" in messages[0]
    assert "HandshakeError" in messages[0]


# -- a real server that restarts ---------------------------------------------


async def test_reconnects_when_the_server_restarts_on_the_same_port(
    autojump_clock: Any, jitter: Jitter, nursery: trio.Nursery
) -> None:
    generation = 0
    first_message = trio.Event()
    seen: list[str] = []

    async def server_handler(wss: wsstream.WebSocketStream) -> None:
        readable, writable, *_ = await wss.opened
        await writable.send(f"generation {generation}")
        async for _ in readable:
            pass

    async def start_server(port: int) -> tuple[trio.CancelScope, trio.Event, int]:
        scope = trio.CancelScope()
        stopped = trio.Event()

        async def run(task_status: trio.TaskStatus[list[trio.SocketListener]]) -> None:
            try:
                with scope:
                    await wsstream.serve(
                        server_handler, "127.0.0.1", port, task_status=task_status
                    )
            finally:
                stopped.set()

        listeners = await nursery.start(run)
        return scope, stopped, listeners[0].socket.getsockname()[1]

    async def client_handler(wss: wsstream.WebSocketStream) -> None:
        readable, *_ = await wss.opened
        seen.append(await readable.receive())
        first_message.set()
        if len(seen) == 2:
            return  # seen both servers: stop (returning while open)
        async for _ in readable:
            pass  # until the server's shutdown closes with 1001

    refused = trio.Event()

    def on_reconnect(info: wsstream.ReconnectInfo) -> None:
        attempts.append(info)
        if isinstance(info.cause, wsstream.HandshakeError):
            refused.set()
        if len(attempts) > 5:
            raise GaveUp(attempts)

    attempts: list[wsstream.ReconnectInfo] = []
    scope, stopped, port = await start_server(0)

    async def restart() -> None:
        nonlocal generation
        await first_message.wait()
        scope.cancel()  # shutdown: the client's connection is closed with 1001
        await stopped.wait()
        await refused.wait()  # the client found nobody listening
        generation = 1
        await start_server(port)

    nursery.start_soon(restart)
    with trio.fail_after(300):
        close = await wsstream.connect_forever(
            f"ws://127.0.0.1:{port}/", client_handler, on_reconnect=on_reconnect
        )
    assert seen == ["generation 0", "generation 1"]
    assert close == wsstream.CloseInfo(1000, "")
    assert [info.attempt for info in attempts] == [1, 2]
    assert attempts[0].cause == wsstream.CloseInfo(1001, "")
    refusal = attempts[1].cause
    assert isinstance(refusal, wsstream.HandshakeError)
    assert isinstance(refusal.__cause__, OSError)


# -- the handshake: which failures retry --------------------------------------


async def test_a_refused_connection_is_retried(
    autojump_clock: Any, jitter: Jitter, refused_url: str
) -> None:
    attempts = Attempts(limit=2)
    await run_until_gave_up(refused_url, attempts)
    for cause in attempts.causes:
        assert isinstance(cause, wsstream.HandshakeError)
        assert cause.status is None
        # trio's OSError for the host, over the attempts for each address.
        failed = cause.__cause__
        assert isinstance(failed, OSError)
        assert isinstance(failed.__cause__, BaseExceptionGroup)
        assert failed.__cause__.subgroup(ConnectionRefusedError) is not None


@pytest.mark.parametrize("status", [500, 502, 503, 504, 599])
async def test_a_5xx_handshake_is_retried(
    autojump_clock: Any, jitter: Jitter, server: Any, status: int
) -> None:
    requests = 0

    def process_request(request: wsstream.Request) -> wsstream.Response:
        nonlocal requests
        requests += 1
        return wsstream.Response(status)

    url = await server.start(read_all, process_request=process_request)
    attempts = Attempts(limit=2)
    await run_until_gave_up(url, attempts)
    assert requests == 3
    assert [getattr(cause, "status", None) for cause in attempts.causes] == [status] * 3


@pytest.mark.parametrize("status", [400, 401, 403, 404, 429, 302, 200])
async def test_any_other_handshake_status_stops(
    autojump_clock: Any, jitter: Jitter, server: Any, status: int
) -> None:
    requests = 0

    def process_request(request: wsstream.Request) -> wsstream.Response:
        nonlocal requests
        requests += 1
        return wsstream.Response(status)

    url = await server.start(read_all, process_request=process_request)
    attempts = Attempts()
    with pytest.raises(wsstream.HandshakeError) as caught:
        await wsstream.connect_forever(url, read_all, on_reconnect=attempts)
    assert caught.value.status == status
    assert requests == 1
    assert attempts.infos == []


async def test_an_open_timeout_is_retried(
    autojump_clock: Any, jitter: Jitter, nursery: trio.Nursery
) -> None:
    async def silent(peer: Peer, n: int) -> None:
        await trio.sleep_forever()  # never answers the request

    url = await ScriptedServer(silent).start(nursery)
    attempts = Attempts(limit=1)
    await run_until_gave_up(url, attempts, open_timeout=3)
    for cause in attempts.causes:
        assert isinstance(cause, wsstream.HandshakeError)
        assert isinstance(cause.__cause__, trio.TooSlowError)
    assert attempts.times[0] == pytest.approx(3.0)


async def test_a_server_that_closes_during_the_handshake_is_retried(
    autojump_clock: Any, jitter: Jitter, nursery: trio.Nursery
) -> None:
    async def hang_up(peer: Peer, n: int) -> None:
        await peer.read_http()  # then closes without answering

    server = ScriptedServer(hang_up)
    url = await server.start(nursery)
    attempts = Attempts(limit=1)
    await run_until_gave_up(url, attempts)
    assert server.connections == 2
    for cause in attempts.causes:
        assert isinstance(cause, wsstream.HandshakeError)
        assert isinstance(cause.__cause__, EOFError)


async def test_a_reset_during_the_handshake_is_retried(
    autojump_clock: Any, jitter: Jitter, nursery: trio.Nursery
) -> None:
    async def reset(peer: Peer, n: int) -> None:
        await peer.read_http()
        # SO_LINGER 0: closing sends a TCP reset, not a FIN.
        assert isinstance(peer.stream, trio.SocketStream)
        peer.stream.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))

    server = ScriptedServer(reset)
    url = await server.start(nursery)
    attempts = Attempts(limit=1)
    await run_until_gave_up(url, attempts)
    assert server.connections == 2
    for cause in attempts.causes:
        assert isinstance(cause, wsstream.HandshakeError)
        assert isinstance(cause.__cause__, trio.BrokenResourceError)


async def test_an_invalid_handshake_response_stops(
    autojump_clock: Any, nursery: trio.Nursery
) -> None:
    async def wrong_accept(peer: Peer, n: int) -> None:
        await peer.read_http()
        await peer.stream.send_all(
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
            b"Connection: Upgrade\r\nSec-WebSocket-Accept: d3Jvbmc=\r\n\r\n"
        )
        await trio.sleep_forever()

    server = ScriptedServer(wrong_accept)
    url = await server.start(nursery)
    with pytest.raises(wsstream.HandshakeError) as caught:
        await wsstream.connect_forever(url, read_all, on_reconnect=Attempts())
    assert caught.value.status is None
    assert server.connections == 1


async def test_an_untrusted_certificate_stops(
    autojump_clock: Any, server: Any, tls_contexts: TlsContexts
) -> None:
    url = await server.start(read_all, ssl_context=tls_contexts.server)
    attempts = Attempts()
    with pytest.raises(wsstream.HandshakeError) as caught:
        # The default context: the system's trust store, without trustme's CA.
        await wsstream.connect_forever(
            url.replace("ws://", "wss://"), read_all, on_reconnect=attempts
        )
    assert isinstance(caught.value.__cause__, trio.BrokenResourceError)
    assert isinstance(caught.value.__cause__.__cause__, ssl.SSLCertVerificationError)
    assert attempts.infos == []


async def test_an_aborted_handshake_stops(autojump_clock: Any, refused_url: str) -> None:
    signal = trio.Event()
    signal.set()
    with pytest.raises(wsstream.AbortError):
        await wsstream.connect_forever(
            refused_url, read_all, signal=signal, on_reconnect=Attempts()
        )


# -- how an open connection ended: close codes ------------------------------


@pytest.mark.parametrize("code", [1001, 1011, 1012, 1013, 1014])
async def test_a_close_with_a_transient_code_is_retried(
    autojump_clock: Any, jitter: Jitter, nursery: trio.Nursery, code: int
) -> None:
    server = ScriptedServer(close_with(code, after=1.0))
    url = await server.start(nursery)
    attempts = Attempts(limit=2)
    await run_until_gave_up(url, attempts)
    assert server.connections == 3
    assert attempts.causes == [wsstream.CloseInfo(code, "")] * 3


@pytest.mark.parametrize("code", [1000, 1003, 1008, 3000, 4000, 4999])
async def test_a_clean_close_with_another_code_returns_it(
    autojump_clock: Any, nursery: trio.Nursery, code: int
) -> None:
    server = ScriptedServer(close_with(code))
    url = await server.start(nursery)
    attempts = Attempts()
    close = await wsstream.connect_forever(url, read_all, on_reconnect=attempts)
    assert close == wsstream.CloseInfo(code, "")
    assert server.connections == 1
    assert attempts.infos == []


async def test_a_close_without_a_code_is_a_normal_close(
    autojump_clock: Any, nursery: trio.Nursery
) -> None:
    url = await ScriptedServer(close_with(None)).start(nursery)
    close = await wsstream.connect_forever(url, read_all, on_reconnect=Attempts())
    assert close == wsstream.CloseInfo(1005, "")


@pytest.mark.parametrize("code", [1000, None])
async def test_reconnect_on_normal_close_retries_1000_and_1005(
    autojump_clock: Any, jitter: Jitter, nursery: trio.Nursery, code: int | None
) -> None:
    server = ScriptedServer(close_with(code))
    url = await server.start(nursery)
    attempts = Attempts(limit=1)
    await run_until_gave_up(url, attempts, reconnect_on_normal_close=True)
    assert server.connections == 2
    assert attempts.causes == [wsstream.CloseInfo(1000 if code else 1005, "")] * 2


async def test_reconnect_on_normal_close_still_stops_on_other_codes(
    autojump_clock: Any, nursery: trio.Nursery
) -> None:
    url = await ScriptedServer(close_with(1008, after=1.0)).start(nursery)
    close = await wsstream.connect_forever(
        url, read_all, reconnect_on_normal_close=True, on_reconnect=Attempts()
    )
    assert close.close_code == 1008


async def test_a_dropped_connection_is_retried(
    autojump_clock: Any, jitter: Jitter, nursery: trio.Nursery
) -> None:
    async def drop(peer: Peer, n: int) -> None:
        await peer.accept()  # then closes TCP without a Close frame

    url = await ScriptedServer(drop).start(nursery)
    attempts = Attempts(limit=1)
    await run_until_gave_up(url, attempts)
    for cause in attempts.causes:
        assert isinstance(cause, wsstream.WebSocketError)
        assert not isinstance(cause, wsstream.HandshakeError)
        assert cause.close_code == 1006


async def test_a_connection_found_dead_by_keepalive_is_retried(
    autojump_clock: Any, jitter: Jitter, nursery: trio.Nursery
) -> None:
    async def deaf(peer: Peer, n: int) -> None:
        await peer.accept()
        await trio.sleep_forever()  # reads nothing: pings go unanswered

    url = await ScriptedServer(deaf).start(nursery)
    attempts = Attempts(limit=1)
    start = trio.current_time()
    await run_until_gave_up(url, attempts, ping_interval=5, ping_timeout=5, close_timeout=1)
    cause = attempts.causes[0]
    assert isinstance(cause, wsstream.WebSocketError)
    assert cause.close_code == 1011
    assert attempts.times[0] - start == pytest.approx(11.0)  # ping, timeout, close_timeout


async def test_a_connection_this_side_failed_with_another_code_stops(
    autojump_clock: Any, nursery: trio.Nursery
) -> None:
    async def bad_utf8(peer: Peer, n: int) -> None:
        await peer.accept()
        await peer.send(TEXT, b"\xff")
        await peer.expect_close()

    server = ScriptedServer(bad_utf8)
    url = await server.start(nursery)
    with pytest.raises(wsstream.WebSocketError) as caught:
        await wsstream.connect_forever(url, read_all, on_reconnect=Attempts())
    assert caught.value.close_code == 1007
    assert server.connections == 1


# -- the handler ----------------------------------------------------------------


async def test_the_handler_gets_each_connection_open(
    autojump_clock: Any, jitter: Jitter, nursery: trio.Nursery
) -> None:
    streams: list[wsstream.WebSocketStream] = []

    async def handler(wss: wsstream.WebSocketStream) -> None:
        assert wss.opened.settled
        streams.append(wss)
        await read_all(wss)

    url = await ScriptedServer(close_with(1012)).start(nursery)
    with pytest.raises(GaveUp):
        await wsstream.connect_forever(url, handler, on_reconnect=Attempts(limit=2))
    assert len(streams) == 3
    assert len({id(wss) for wss in streams}) == 3


async def test_a_handler_returning_while_open_stops_with_1000(
    autojump_clock: Any, server: Any
) -> None:
    closes: list[wsstream.CloseInfo] = []
    server_done = trio.Event()

    async def server_handler(wss: wsstream.WebSocketStream) -> None:
        await read_all(wss)
        closes.append(await wss.closed)
        server_done.set()

    async def once(wss: wsstream.WebSocketStream) -> None:
        pass

    url = await server.start(server_handler)
    attempts = Attempts()
    close = await wsstream.connect_forever(
        url, once, reconnect_on_normal_close=True, on_reconnect=attempts
    )
    assert attempts.infos == []
    assert close == wsstream.CloseInfo(1000, "")
    with trio.fail_after(5):
        await server_done.wait()
    assert closes == [wsstream.CloseInfo(1000, "")]


async def test_a_handler_that_raises_stops_and_its_exception_propagates(
    autojump_clock: Any, server: Any
) -> None:
    codes: list[int] = []
    server_done = trio.Event()

    async def server_handler(wss: wsstream.WebSocketStream) -> None:
        await read_all(wss)
        codes.append((await wss.closed).close_code)
        server_done.set()

    async def buggy(wss: wsstream.WebSocketStream) -> None:
        raise KeyError("a bug")

    url = await server.start(server_handler)
    attempts = Attempts()
    with pytest.raises(KeyError, match="a bug"):
        await wsstream.connect_forever(url, buggy, on_reconnect=attempts)
    assert attempts.infos == []
    with trio.fail_after(5):
        await server_done.wait()
    assert codes == [1011]


async def test_a_handler_raising_a_resource_error_of_its_own_stops(
    autojump_clock: Any, server: Any
) -> None:
    # The connection is still open: the error is the handler's, not its end.
    async def handler(wss: wsstream.WebSocketStream) -> None:
        raise trio.BrokenResourceError("another stream of the application")

    url = await server.start(read_all)
    with pytest.raises(trio.BrokenResourceError, match="another stream"):
        await wsstream.connect_forever(url, handler, on_reconnect=Attempts())


async def test_the_connections_error_raised_by_the_handler_is_its_end(
    autojump_clock: Any, jitter: Jitter, nursery: trio.Nursery
) -> None:
    async def drop_after_hello(peer: Peer, n: int) -> None:
        await peer.accept()
        await peer.send(TEXT, b"hello")

    async def receive_forever(wss: wsstream.WebSocketStream) -> None:
        readable, *_ = await wss.opened
        while True:
            await readable.receive()  # raises the connection's 1006 error

    url = await ScriptedServer(drop_after_hello).start(nursery)
    attempts = Attempts(limit=1)
    with pytest.raises(GaveUp):
        await wsstream.connect_forever(url, receive_forever, on_reconnect=attempts)
    assert [getattr(cause, "close_code", None) for cause in attempts.causes] == [1006, 1006]


async def test_end_of_channel_raised_by_the_handler_is_the_connections_end(
    autojump_clock: Any, jitter: Jitter, nursery: trio.Nursery
) -> None:
    async def receive_forever(wss: wsstream.WebSocketStream) -> None:
        readable, *_ = await wss.opened
        while True:
            await readable.receive()  # EndOfChannel after the clean close

    url = await ScriptedServer(close_with(1013)).start(nursery)
    attempts = Attempts(limit=1)
    with pytest.raises(GaveUp):
        await wsstream.connect_forever(url, receive_forever, on_reconnect=attempts)
    assert attempts.causes == [wsstream.CloseInfo(1013, "")] * 2


async def test_a_group_of_the_connections_errors_from_the_handler_is_its_end(
    autojump_clock: Any, jitter: Jitter, nursery: trio.Nursery
) -> None:
    async def drop(peer: Peer, n: int) -> None:
        await peer.accept()
        await peer.read_exact(1)  # the first byte of the client's first frame

    async def two_tasks(wss: wsstream.WebSocketStream) -> None:
        readable, writable, *_ = await wss.opened

        async def send_forever() -> None:
            while True:
                await writable.send("tick")
                await trio.sleep(1)

        async def receive_forever() -> None:
            while True:
                await readable.receive()

        async with trio.open_nursery() as tasks:
            tasks.start_soon(send_forever)
            tasks.start_soon(receive_forever)

    url = await ScriptedServer(drop).start(nursery)
    attempts = Attempts(limit=1)
    with pytest.raises(GaveUp):
        await wsstream.connect_forever(url, two_tasks, on_reconnect=attempts)
    assert [getattr(cause, "close_code", None) for cause in attempts.causes] == [1006, 1006]


async def test_what_on_reconnect_raises_propagates(
    autojump_clock: Any, refused_url: str
) -> None:
    def give_up(info: wsstream.ReconnectInfo) -> None:
        raise GaveUp(info.attempt)

    with pytest.raises(GaveUp) as caught:
        await wsstream.connect_forever(refused_url, read_all, on_reconnect=give_up)
    assert caught.value.args == (1,)


async def test_options_pass_through_to_each_connection(
    autojump_clock: Any, jitter: Jitter, server: Any
) -> None:
    seen: list[tuple[str, str | None]] = []

    async def server_handler(wss: wsstream.WebSocketStream) -> None:
        assert wss.request is not None
        seen.append((wss.request.path, wss.request.headers.get("x-token")))
        wss.close(1001)

    url = await server.start(server_handler, subprotocols=["v2"])
    protocols: list[str] = []

    async def handler(wss: wsstream.WebSocketStream) -> None:
        protocols.append((await wss.opened).protocol)
        await read_all(wss)

    with pytest.raises(GaveUp):
        await wsstream.connect_forever(
            url + "/feed?x=1", handler, on_reconnect=Attempts(limit=1),
            protocols=["v1", "v2"], headers={"X-Token": "t"}, compression=None,
        )
    assert seen == [("/feed?x=1", "t")] * 2
    assert protocols == ["v2", "v2"]


# -- cancellation -------------------------------------------------------------


async def test_cancelling_during_the_sleep_ends_at_once(
    autojump_clock: Any, jitter: Jitter, refused_url: str, nursery: trio.Nursery
) -> None:
    attempts = Attempts()
    with trio.CancelScope() as scope:

        async def cancel_soon() -> None:
            await attempts.called.wait()
            await trio.sleep(1)
            scope.cancel()

        nursery.start_soon(cancel_soon)
        start = trio.current_time()
        await wsstream.connect_forever(
            refused_url, read_all, on_reconnect=attempts, initial_delay=100, max_delay=100
        )
    assert scope.cancelled_caught
    assert len(attempts.infos) == 1
    assert attempts.infos[0].delay == 100
    assert trio.current_time() - start == pytest.approx(1.0)  # not 100


async def test_cancelling_during_the_handshake_ends_at_once(
    autojump_clock: Any, nursery: trio.Nursery
) -> None:
    request_read = trio.Event()
    hung_up = trio.Event()

    async def slow(peer: Peer, n: int) -> None:
        await peer.read_http()
        request_read.set()
        await peer.expect_eof()
        hung_up.set()

    url = await ScriptedServer(slow).start(nursery)
    attempts = Attempts()
    with trio.CancelScope() as scope:

        async def cancel_then() -> None:
            await request_read.wait()
            scope.cancel()

        nursery.start_soon(cancel_then)
        start = trio.current_time()
        await wsstream.connect_forever(url, read_all, on_reconnect=attempts)
    assert scope.cancelled_caught
    assert trio.current_time() == start  # before open_timeout's 10 s
    assert attempts.infos == []
    with trio.fail_after(1):
        await hung_up.wait()


async def test_cancelling_during_the_handler_ends_at_once_with_1001(
    autojump_clock: Any, server: Any, nursery: trio.Nursery
) -> None:
    codes: list[int | None] = []
    server_done = trio.Event()

    async def server_handler(wss: wsstream.WebSocketStream) -> None:
        readable, *_ = await wss.opened
        try:
            async for _ in readable:
                pass
            codes.append((await wss.closed).close_code)
        except wsstream.WebSocketError as exc:
            codes.append(exc.close_code)
        finally:
            server_done.set()

    in_handler = trio.Event()

    async def handler(wss: wsstream.WebSocketStream) -> None:
        in_handler.set()
        await trio.sleep_forever()

    url = await server.start(server_handler)
    attempts = Attempts()
    with trio.CancelScope() as scope:

        async def cancel_then() -> None:
            await in_handler.wait()
            scope.cancel()

        nursery.start_soon(cancel_then)
        start = trio.current_time()
        await wsstream.connect_forever(url, handler, on_reconnect=attempts)
    assert scope.cancelled_caught
    assert trio.current_time() == start
    assert attempts.infos == []
    with trio.fail_after(1):
        await server_done.wait()
    assert codes == [1001]


# -- arguments ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"initial_delay": 0}, ValueError),
        ({"initial_delay": -1}, ValueError),
        ({"initial_delay": float("inf")}, ValueError),
        ({"initial_delay": float("nan")}, ValueError),
        ({"initial_delay": "5"}, TypeError),
        ({"initial_delay": True}, TypeError),
        ({"backoff_factor": 0.5}, ValueError),
        ({"backoff_factor": float("inf")}, ValueError),
        ({"max_delay": 1.0}, ValueError),  # below initial_delay (5)
        ({"max_delay": float("inf")}, ValueError),
        ({"reset_after": -1}, ValueError),
        ({"reset_after": None}, TypeError),
        ({"reconnect_on_normal_close": 1}, TypeError),
        ({"on_reconnect": 42}, TypeError),
        ({"stream": object()}, TypeError),
        ({"read_limit": -1}, ValueError),  # an option of WebSocketStream
        ({"protocols": "v1"}, TypeError),
        ({"no_such_option": 1}, TypeError),
    ],
)
async def test_bad_arguments_raise_before_any_io(kwargs: dict[str, Any], error: type) -> None:
    # Port 9 (discard) on a documentation address: any I/O would hang or fail
    # differently; the error must come first.
    with pytest.raises(error):
        await wsstream.connect_forever("ws://192.0.2.1:9/", read_all, **kwargs)


async def test_an_async_on_reconnect_is_refused() -> None:
    async def hook(info: wsstream.ReconnectInfo) -> None:
        pass

    with pytest.raises(TypeError, match="on_reconnect"):
        await wsstream.connect_forever("ws://192.0.2.1:9/", read_all, on_reconnect=hook)


@pytest.mark.parametrize("url", ["ftp://example.com/", "ws://example.com/#frag", "not a url"])
async def test_a_bad_url_raises_value_error_at_once(url: str) -> None:
    with pytest.raises(ValueError):
        await wsstream.connect_forever(url, read_all)


async def test_a_handler_that_is_not_callable_raises_type_error() -> None:
    with pytest.raises(TypeError, match="handler"):
        await wsstream.connect_forever("ws://192.0.2.1:9/", "handler")  # type: ignore[arg-type]
