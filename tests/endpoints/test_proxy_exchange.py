"""The proxy exchange against stand-ins that misbehave on purpose: answers
split byte by byte, refusals with bodies, bytes behind the 200, silence,
hang-ups; what the CONNECT request carries; timeouts, aborts and retries.
Real proxies are in tests/endpoints/test_proxies.py."""

from __future__ import annotations

import base64
import errno
import functools
import socket
import struct
from collections.abc import Awaitable, Callable

import pytest
import trio
from python_socks import ProxyError

import wsstream
from tests.conftest import Server, echo_handler
from tests.proxy_servers import free_port, require
from wsstream._endpoints.proxy import ProxyURL
from wsstream._endpoints.tunnel import _socks_refusal, connect_request

SECRET = "pw-Zq81x"

Answer = Callable[[trio.SocketStream, bytes], Awaitable[None]]


async def read_head(stream: trio.SocketStream) -> bytes:
    head = b""
    while b"\r\n\r\n" not in head:
        data = await stream.receive_some(1)
        if not data:
            break
        head += data
    return head


async def relay(stream: trio.abc.Stream, head: bytes) -> None:
    """After a 200: carry bytes both ways to the CONNECT request's target."""
    target = head.split(b" ")[1].decode()
    host, _, port = target.rpartition(":")
    upstream = await trio.open_tcp_stream(host.strip("[]"), int(port))

    async with upstream, trio.open_nursery() as nursery:

        async def pipe(source: trio.abc.Stream, sink: trio.abc.Stream) -> None:
            try:
                while data := await source.receive_some(65536):
                    await sink.send_all(data)
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                pass
            # Either side done: the relay is.
            nursery.cancel_scope.cancel()

        nursery.start_soon(pipe, stream, upstream)
        nursery.start_soon(pipe, upstream, stream)


class StandIn:
    """An HTTP proxy stand-in on 127.0.0.1: records each request head, then
    answers as ``answer`` says."""

    def __init__(self, answer: Answer) -> None:
        self.answer = answer
        self.heads: list[bytes] = []
        self.asked = trio.Event()  # a request head came
        self.port = 0

    async def start(self, nursery: trio.Nursery) -> str:
        listeners = await nursery.start(
            functools.partial(trio.serve_tcp, self._handle, 0, host="127.0.0.1")
        )
        self.port = listeners[0].socket.getsockname()[1]
        return f"http://127.0.0.1:{self.port}"

    async def _handle(self, stream: trio.SocketStream) -> None:
        head = await read_head(stream)
        self.heads.append(head)
        self.asked.set()
        try:
            await self.answer(stream, head)
        except trio.BrokenResourceError:
            pass
        finally:
            await stream.aclose()


def sends(data: bytes, *, then_relay: bool = False, chunk: int = 0) -> Answer:
    async def answer(stream: trio.SocketStream, head: bytes) -> None:
        if chunk:
            for i in range(0, len(data), chunk):
                await stream.send_all(data[i : i + chunk])
                await trio.sleep(0.001)  # separate segments, really
        else:
            await stream.send_all(data)
        if then_relay:
            await relay(stream, head)
        # else: hang up, as a proxy does after a refusal

    return answer


async def never_answers(stream: trio.SocketStream, head: bytes) -> None:
    while await stream.receive_some(1024):
        pass


async def failure(url: str, **options: object) -> wsstream.HandshakeError:
    async with wsstream.WebSocketStream(url, **options) as wss:  # type: ignore[arg-type]
        with pytest.raises(wsstream.HandshakeError) as info:
            await wss.opened
    return info.value


# -- the request --------------------------------------------------------------------


def test_the_connect_request() -> None:
    proxy = ProxyURL("http", "h", 1, "us er", "p@ss é")
    token = base64.b64encode("us er:p@ss é".encode()).decode()
    assert connect_request(proxy, "example.com", 443, "ua/1") == (
        b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\nUser-Agent: ua/1\r\n"
        b"Proxy-Authorization: Basic " + token.encode() + b"\r\n\r\n"
    )
    assert connect_request(ProxyURL("http", "h", 1), "::1", 8765, None) == (
        b"CONNECT [::1]:8765 HTTP/1.1\r\nHost: [::1]:8765\r\n\r\n"
    )


async def test_an_answer_split_byte_by_byte_then_the_tunnel(
    nursery: trio.Nursery, server: Server
) -> None:
    url = await server.start(echo_handler)
    answer = b"HTTP/1.1 200 Connection established\r\nProxy-Agent: stand-in\r\n\r\n"
    stand_in = StandIn(sends(answer, then_relay=True, chunk=1))
    proxy = (await stand_in.start(nursery)).replace("http://", f"http://user:{SECRET}@")
    async with wsstream.WebSocketStream(url + "/x", proxy=proxy, user_agent="agent/7") as wss:
        readable, writable, *_ = await wss.opened
        await writable.send("through")
        assert await readable.receive() == "through"
    port = url.rsplit(":", 1)[1]
    token = base64.b64encode(f"user:{SECRET}".encode()).decode()
    assert stand_in.heads == [
        f"CONNECT 127.0.0.1:{port} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
        f"User-Agent: agent/7\r\nProxy-Authorization: Basic {token}\r\n\r\n".encode()
    ]


# -- refusals and broken answers -----------------------------------------------------


async def test_a_502_with_its_headers_and_body(nursery: trio.Nursery) -> None:
    body = b"upstream unreachable\n"

    async def answer(stream: trio.SocketStream, head: bytes) -> None:
        await stream.send_all(
            b"HTTP/1.1 502 Bad Gateway\r\nContent-Type: text/plain\r\n"
            b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body[:5]
        )
        await trio.sleep(0.01)
        await stream.send_all(body[5:])  # the rest of the body in a later segment
        await never_answers(stream, head)

    stand_in = StandIn(answer)
    proxy = await stand_in.start(nursery)
    error = await failure("wss://feed.example/", proxy=proxy)
    assert error.status == 502
    assert error.proxy == proxy
    assert error.headers is not None and error.headers["content-type"] == "text/plain"
    assert error.body == body
    assert error.message == (
        f"the proxy {proxy} refused to open a tunnel to feed.example:443: HTTP 502 Bad Gateway"
    )


@pytest.mark.parametrize(
    ("answer", "message"),
    [
        (b"HTTP/1.1 200 OK\r\n\r\nSSH-2.0-x\r\n", "sent 11 bytes behind its HTTP 200 to CONNECT"),
        (b"\x05\x00", "did not answer CONNECT in HTTP"),
        (b"HTTP/1.1 2xx Fine\r\n\r\n", "sent an invalid status line: 'HTTP/1.1 2xx Fine'"),
        (b"HTTP/1.1 200 OK\r\n" + b"X: y\r\n" * 20_000, "answer to CONNECT is over 65536 bytes"),
    ],
)
async def test_answers_that_cannot_open_a_tunnel(
    answer: bytes, message: str, nursery: trio.Nursery
) -> None:
    proxy = await StandIn(sends(answer)).start(nursery)
    error = await failure("ws://feed.example/", proxy=proxy)
    assert message in error.message
    assert error.proxy == proxy
    assert error.status is None


async def test_a_proxy_that_hangs_up(nursery: trio.Nursery) -> None:
    async def hang_up(stream: trio.SocketStream, head: bytes) -> None:
        pass

    proxy = await StandIn(hang_up).start(nursery)
    error = await failure("ws://feed.example/", proxy=proxy)
    assert error.message == f"the proxy {proxy} closed the connection during the CONNECT exchange"
    assert isinstance(error.__cause__, EOFError)


async def test_an_unreachable_proxy() -> None:
    port = free_port()
    proxy = f"http://user:{SECRET}@127.0.0.1:{port}"
    error = await failure("ws://feed.example/", proxy=proxy)
    assert error.message == (
        f"could not connect to the proxy http://127.0.0.1:{port}: "
        f"127.0.0.1:{port}: connection refused"
    )
    assert error.proxy == f"http://127.0.0.1:{port}"
    assert isinstance(error.__cause__, ConnectionRefusedError)
    for scheme in ("socks5h", "socks4"):
        error = await failure("ws://127.0.0.1:9/", proxy=f"{scheme}://127.0.0.1:{port}")
        assert error.message == (
            f"could not connect to the proxy {scheme}://127.0.0.1:{port}: "
            f"127.0.0.1:{port}: connection refused"
        )
        assert isinstance(error.__cause__, ConnectionRefusedError)


# -- time and cancellation -----------------------------------------------------------


async def test_open_timeout_covers_the_proxy_and_says_so(nursery: trio.Nursery) -> None:
    stand_in = StandIn(never_answers)
    proxy = await stand_in.start(nursery)
    start = trio.current_time()
    error = await failure("ws://feed.example/", proxy=proxy, open_timeout=0.3)
    assert 0.3 <= trio.current_time() - start < 2
    assert error.message == (
        f"the opening handshake timed out after 0.3 s, waiting for the proxy {proxy}"
    )
    assert error.proxy == proxy
    assert isinstance(error.__cause__, trio.TooSlowError)


async def test_a_timeout_past_the_tunnel_is_not_the_proxys(nursery: trio.Nursery) -> None:
    async def silent_server(stream: trio.SocketStream) -> None:
        await never_answers(stream, b"")

    listeners = await nursery.start(
        functools.partial(trio.serve_tcp, silent_server, 0, host="127.0.0.1")
    )
    port = listeners[0].socket.getsockname()[1]
    proxy = await StandIn(sends(b"HTTP/1.1 200 OK\r\n\r\n", then_relay=True)).start(nursery)
    error = await failure(f"ws://127.0.0.1:{port}/", proxy=proxy, open_timeout=0.3)
    assert error.message == "the opening handshake timed out after 0.3 s"
    assert error.proxy is None


async def test_an_abort_during_the_proxy_exchange_closes_the_socket(
    nursery: trio.Nursery,
) -> None:
    closed = trio.Event()

    async def wait_for_hang_up(stream: trio.SocketStream, head: bytes) -> None:
        await never_answers(stream, head)
        closed.set()

    stand_in = StandIn(wait_for_hang_up)
    proxy = await stand_in.start(nursery)
    signal = trio.Event()
    async with wsstream.WebSocketStream("ws://feed.example/", proxy=proxy, signal=signal) as wss:
        await stand_in.asked.wait()
        signal.set()
        with pytest.raises(wsstream.AbortError):
            await wss.opened
    with trio.fail_after(5):
        await closed.wait()


async def test_cancelling_the_block_during_the_proxy_exchange(nursery: trio.Nursery) -> None:
    closed = trio.Event()

    async def wait_for_hang_up(stream: trio.SocketStream, head: bytes) -> None:
        await never_answers(stream, head)
        closed.set()

    stand_in = StandIn(wait_for_hang_up)
    proxy = await stand_in.start(nursery)
    with trio.move_on_after(0.3) as scope:
        async with wsstream.WebSocketStream("ws://feed.example/", proxy=proxy) as wss:
            await wss.opened
    assert scope.cancelled_caught
    with trio.fail_after(5):
        await closed.wait()


# -- retries -----------------------------------------------------------------------


async def test_connect_forever_retries_a_502_and_stops_at_a_407(nursery: trio.Nursery) -> None:
    async def handler(wss: wsstream.WebSocketStream) -> None:
        raise AssertionError("never opened")

    class GiveUp(Exception):
        pass

    def stop(info: wsstream.ReconnectInfo) -> None:
        raise GiveUp(info.cause)

    bad_gateway = await StandIn(sends(b"HTTP/1.1 502 Bad Gateway\r\n\r\n")).start(nursery)
    with pytest.raises(GiveUp) as info:
        await wsstream.connect_forever(
            "ws://feed.example/", handler, proxy=bad_gateway, on_reconnect=stop
        )
    cause = info.value.args[0]
    assert isinstance(cause, wsstream.HandshakeError) and cause.status == 502

    auth = await StandIn(sends(b"HTTP/1.1 407 Proxy Authentication Required\r\n\r\n")).start(
        nursery
    )
    with pytest.raises(wsstream.HandshakeError) as refused:
        await wsstream.connect_forever(
            "ws://feed.example/", handler, proxy=auth, on_reconnect=stop
        )
    assert refused.value.status == 407
    assert refused.value.proxy == auth


# -- SOCKS ------------------------------------------------------------------------------


async def test_socks4a_sends_the_name_to_the_proxy(nursery: trio.Nursery) -> None:
    """Dante does not implement SOCKS4A's names: a stand-in records the
    request python-socks sends and refuses it (reply 91)."""
    received = bytearray()

    async def socks4_stand_in(stream: trio.SocketStream) -> None:
        while received.count(b"\x00") < 2 or not received.endswith(b"\x00"):
            data = await stream.receive_some(1024)
            if not data:
                return
            received.extend(data)
        await stream.send_all(b"\x00\x5b" + b"\x00" * 6)
        await stream.aclose()

    listeners = await nursery.start(
        functools.partial(trio.serve_tcp, socks4_stand_in, 0, host="127.0.0.1")
    )
    port = listeners[0].socket.getsockname()[1]
    error = await failure(
        "ws://only-the-proxy.example:8765/", proxy=f"socks4a://me@127.0.0.1:{port}"
    )
    # VER 4, CONNECT, port, 0.0.0.x (SOCKS4A's "a name follows"), user id, name.
    assert bytes(received) == (
        b"\x04\x01" + (8765).to_bytes(2, "big") + b"\x00\x00\x00\x01"
        + b"me\x00only-the-proxy.example\x00"
    )
    assert "(SOCKS4 reply 91)" in error.message
    assert error.proxy == f"socks4a://127.0.0.1:{port}"


@pytest.mark.parametrize(
    ("code", "kind", "errno_"),
    [(3, OSError, errno.ENETUNREACH), (4, OSError, errno.EHOSTUNREACH),
     (5, ConnectionRefusedError, errno.ECONNREFUSED), (6, TimeoutError, errno.ETIMEDOUT)],
)
def test_socks5_replies_that_mean_unreachable_are_os_errors(
    code: int, kind: type[OSError], errno_: int
) -> None:
    exc = ProxyError("reason", error_code=code)
    failure_ = _socks_refusal(ProxyURL("socks5h", "h", 1), "SOCKS5", "t:1", exc)
    assert type(failure_.__cause__) is kind
    assert failure_.__cause__.errno == errno_
    assert failure_.__cause__.__cause__ is exc
    assert failure_.proxy == "socks5h://h:1"
    assert str(failure_).endswith(f"reason (SOCKS5 reply {code})")


@pytest.mark.parametrize("code", [1, 2, 7, 8, None])
def test_other_socks_refusals_keep_python_socks_error(code: int | None) -> None:
    exc = ProxyError("Connection not allowed by ruleset", error_code=code)
    failure_ = _socks_refusal(ProxyURL("socks5", "h", 1), "SOCKS5", "t:1", exc)
    assert failure_.__cause__ is exc
    assert "connection not allowed by ruleset" in str(failure_)


# -- the proxies' own tests skip or fail ------------------------------------------------


def test_a_missing_proxy_program_skips_or_fails_under_ci(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("shutil.which", lambda *args, **kwargs: None)
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match=r"apt-get install dante-server"):
        require("danted")
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match=r"tinyproxy is not installed"):
        require("tinyproxy")


@pytest.mark.parametrize("scheme", ["socks5h", "socks4"])
async def test_a_socks_proxy_that_hangs_up(scheme: str, nursery: trio.Nursery) -> None:
    async def hang_up(stream: trio.SocketStream) -> None:
        await stream.receive_some(4096)  # all of the first request: no reset
        await stream.aclose()

    listeners = await nursery.start(
        functools.partial(trio.serve_tcp, hang_up, 0, host="127.0.0.1")
    )
    proxy = f"{scheme}://127.0.0.1:{listeners[0].socket.getsockname()[1]}"
    error = await failure("ws://127.0.0.1:9/", proxy=proxy)
    kind = scheme[:6].upper()
    assert error.message == f"the proxy {proxy} closed the connection during the {kind} exchange"
    assert error.proxy == proxy
    assert isinstance(error.__cause__, EOFError)


def reset(stream: trio.SocketStream) -> None:
    """Close with a TCP reset (SO_LINGER 0), as a crashing proxy would."""
    stream.socket.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    stream.socket.close()


async def test_a_proxy_that_resets_the_connection(nursery: trio.Nursery) -> None:
    async def crash(stream: trio.SocketStream, head: bytes) -> None:
        reset(stream)

    proxy = await StandIn(crash).start(nursery)
    error = await failure("ws://feed.example/", proxy=proxy)
    assert error.message.startswith(f"the connection to the proxy {proxy} broke: ")
    assert error.proxy == proxy

    async def socks_crash(stream: trio.SocketStream) -> None:
        await stream.receive_some(4096)
        reset(stream)

    listeners = await nursery.start(
        functools.partial(trio.serve_tcp, socks_crash, 0, host="127.0.0.1")
    )
    socks = f"socks5h://127.0.0.1:{listeners[0].socket.getsockname()[1]}"
    error = await failure("ws://feed.example/", proxy=socks)
    assert error.message.startswith(f"the connection to the proxy {socks} broke: ")
    assert isinstance(error.__cause__, ConnectionResetError)


async def test_a_refusal_with_malformed_header_lines_keeps_its_status(
    nursery: trio.Nursery,
) -> None:
    proxy = await StandIn(sends(
        b"HTTP/1.0 403 Forbidden\r\nBad Name: x\r\nno colon\r\nContent-Length: 2\r\n\r\nno"
    )).start(nursery)
    error = await failure("ws://feed.example/", proxy=proxy)
    assert error.status == 403
    assert error.headers == wsstream.Headers()
    # Without a usable Content-Length, the body is what came before the
    # proxy hung up (at most 1 s).
    assert error.body == b"no"
