"""The edges of the public API (issue 13): what ``send()`` accepts, awaiting
a stream that was never entered, ``wss://`` over a given stream, URL
credentials, and argument checks. Real servers on 127.0.0.1."""

from __future__ import annotations

import array
import base64
import functools
import gc
import ssl
from typing import Any

import pytest
import trio
import trio.testing
import trustme

import wsstream
from tests.conftest import Server


class Recorder:
    """A handler that keeps every message and the request it was opened with."""

    def __init__(self) -> None:
        self.messages: list[str | bytes] = []
        self.requests: list[wsstream.Request] = []
        self.done = trio.Event()

    async def __call__(self, wss: wsstream.WebSocketStream) -> None:
        assert wss.request is not None
        self.requests.append(wss.request)
        readable, *_ = await wss.opened
        try:
            async for message in readable:
                self.messages.append(message)
        finally:
            self.done.set()


async def send_and_record(server: Server, *messages: Any) -> list[str | bytes]:
    """Send ``messages`` from a client; what the server received."""
    recorder = Recorder()
    url = await server.start(recorder)
    async with wsstream.WebSocketStream(url) as wss:
        _, writable, *_ = await wss.opened
        for message in messages:
            await writable.send(message)
    with trio.fail_after(30):
        await recorder.done.wait()
    return recorder.messages


# -- item 7: any object with the buffer protocol is a binary message ----------


async def test_send_accepts_any_object_with_the_buffer_protocol(server: Server) -> None:
    numbers = array.array("H", [1, 2, 3])
    matrix = memoryview(bytearray(b"abcdef")).cast("B", (2, 3))
    every_other = memoryview(b"abcdef")[::2]  # not contiguous
    got = await send_and_record(server, numbers, matrix, every_other)
    assert got == [numbers.tobytes(), b"abcdef", b"ace"]


async def test_a_mutable_buffer_is_copied_by_send(server: Server) -> None:
    recorder = Recorder()
    url = await server.start(recorder)
    numbers = array.array("B", b"abc")
    async with wsstream.WebSocketStream(url) as wss:
        _, writable, *_ = await wss.opened
        await writable.send(numbers)
        numbers[0] = ord("x")  # after send() returned, before the flush
    with trio.fail_after(30):
        await recorder.done.wait()
    assert recorder.messages == [b"abc"]


async def test_send_of_a_non_buffer_raises_type_error_naming_the_type(echo_url: str) -> None:
    async with wsstream.WebSocketStream(echo_url) as wss:
        readable, writable, *_ = await wss.opened
        with pytest.raises(TypeError, match=r"buffer protocol.* not int"):
            await writable.send(42)  # type: ignore[arg-type]
        await writable.send("still open")
        assert await readable.receive() == "still open"


async def test_classic_send_accepts_any_buffer(server: Server) -> None:
    recorder = Recorder()
    url = await server.start(recorder)
    async with wsstream.WebSocket(url) as ws:
        assert isinstance(await anext(ws.events()), wsstream.OpenEvent)
        ws.send(array.array("H", [1, 2]))
        assert ws.buffered_amount >= 4
    with trio.fail_after(30):
        await recorder.done.wait()
    assert recorder.messages == [array.array("H", [1, 2]).tobytes()]


# -- item 8: lone surrogates become U+FFFD ---------------------------------------


async def test_lone_surrogates_are_sent_as_u_fffd(server: Server) -> None:
    got = await send_and_record(server, "a\udcffb", "\ud800", "\ud83d\ude00 pair", "plain é")
    assert got == ["a\ufffdb", "\ufffd", "\U0001f600 pair", "plain é"]


# -- item 9: opened / closed of a client never entered ----------------------------


async def test_awaiting_opened_or_closed_of_a_client_never_entered_raises_at_once() -> None:
    wss = wsstream.WebSocketStream("ws://127.0.0.1:1/")
    opened, closed = wss.opened, wss.closed  # reading them does not raise
    # fail_after only guards against the old behaviour, which waited for ever.
    with trio.fail_after(10):
        with trio.testing.assert_no_checkpoints(), pytest.raises(
            wsstream.InvalidStateError, match="async with"
        ):
            await opened
        with pytest.raises(wsstream.InvalidStateError):
            await closed
        with pytest.raises(wsstream.InvalidStateError):
            await wss.opened  # again: it does not settle


async def test_opened_read_before_entering_works_once_entered(echo_url: str) -> None:
    wss = wsstream.WebSocketStream(echo_url)
    opened, closed = wss.opened, wss.closed
    async with wss:
        readable, writable, *_ = await opened
        await writable.send("x")
        assert await readable.receive() == "x"
        wss.close(1000)
        assert await closed == (1000, "")


# -- item 11: URL credentials --------------------------------------------------------


async def test_url_userinfo_becomes_basic_authorization_and_leaves_the_url(
    server: Server,
) -> None:
    recorder = Recorder()
    url = await server.start(recorder)
    with_credentials = url.replace("ws://", "ws://al%40ice:s%3Ac%20ret@") + "/path?q=1"
    async with wsstream.WebSocketStream(with_credentials) as wss:
        assert wss.url == url + "/path?q=1"
        await wss.opened
    with trio.fail_after(30):
        await recorder.done.wait()
    # Percent-escapes in the URL are decoded before the Basic encoding (RFC 7617).
    expected = "Basic " + base64.b64encode(b"al@ice:s:c ret").decode()
    assert recorder.requests[0].headers["Authorization"] == expected


def test_a_url_user_name_with_a_colon_is_refused() -> None:
    # Basic authentication (RFC 7617) cannot carry it: "a:b" + ":" + "pw".
    with pytest.raises(ValueError, match="user name"):
        wsstream.WebSocketStream("ws://a%3Ab:pw@127.0.0.1:1/")


# -- item 1: wss:// over a given stream ------------------------------------------------


@pytest.fixture(scope="module")
def named_tls() -> tuple[ssl.SSLContext, ssl.SSLContext]:
    """A server context for the name ``wsstream.test`` and a client that trusts it."""
    ca = trustme.CA()
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("wsstream.test").configure_cert(server)
    client = ssl.create_default_context()
    ca.configure_trust(client)
    return server, client


async def test_wss_over_a_given_stream_does_tls_named_by_the_url(
    server: Server, named_tls: tuple[ssl.SSLContext, ssl.SSLContext]
) -> None:
    server_context, client_context = named_tls
    recorder = Recorder()
    url = await server.start(recorder, ssl_context=server_context)
    port = int(url.rsplit(":", 1)[1])
    # The stream goes to 127.0.0.1; the certificate is checked against the
    # URL's host, which need not resolve at all.
    tcp = await trio.open_tcp_stream("127.0.0.1", port)
    target = f"wss://wsstream.test:{port}/secret?token=abc"
    async with wsstream.WebSocketStream(
        target, stream=tcp, ssl_context=client_context
    ) as wss:
        _, writable, *_ = await wss.opened
        await writable.send("over TLS")
    with trio.fail_after(30):
        await recorder.done.wait()
    assert recorder.messages == ["over TLS"]
    assert recorder.requests[0].path == "/secret?token=abc"


async def test_wss_over_a_given_stream_never_writes_the_request_in_clear() -> None:
    client_end, peer_end = trio.testing.memory_stream_pair()
    async with wsstream.WebSocketStream(
        "wss://example.test/secret?token=abc", stream=client_end, open_timeout=30
    ) as wss:
        with trio.fail_after(30):
            first = await peer_end.receive_some()
        # A TLS record (handshake, 0x16), not "GET /secret?token=abc".
        assert first[:1] == b"\x16"
        assert b"token" not in first
        wss.close()
    with pytest.raises(wsstream.WebSocketError):
        await wss.opened


async def test_wss_over_a_given_tls_stream_adds_no_second_layer(
    server: Server, named_tls: tuple[ssl.SSLContext, ssl.SSLContext]
) -> None:
    server_context, client_context = named_tls
    url = await server.start(Recorder(), ssl_context=server_context)
    port = int(url.rsplit(":", 1)[1])
    tls = trio.SSLStream(
        await trio.open_tcp_stream("127.0.0.1", port), client_context,
        server_hostname="wsstream.test",
    )
    async with wsstream.WebSocketStream(f"wss://wsstream.test:{port}/", stream=tls) as wss:
        await wss.opened


async def test_wss_over_a_given_stream_with_an_untrusted_certificate_fails(
    server: Server, named_tls: tuple[ssl.SSLContext, ssl.SSLContext]
) -> None:
    server_context, _ = named_tls
    url = await server.start(Recorder(), ssl_context=server_context)
    port = int(url.rsplit(":", 1)[1])
    tcp = await trio.open_tcp_stream("127.0.0.1", port)
    # The default context: the test CA is not trusted.
    async with wsstream.WebSocketStream(f"wss://wsstream.test:{port}/", stream=tcp) as wss:
        with pytest.raises(wsstream.HandshakeError, match="CERTIFICATE_VERIFY_FAILED"):
            await wss.opened


async def test_a_given_stream_is_closed_when_aborted_before_it_was_used() -> None:
    for url in ("ws://example.test/", "wss://example.test/"):
        client_end, peer_end = trio.testing.memory_stream_pair()
        signal = trio.Event()
        signal.set()
        async with wsstream.WebSocketStream(url, stream=client_end, signal=signal) as wss:
            with pytest.raises(wsstream.AbortError):
                await wss.opened
        with trio.fail_after(30):
            assert await peer_end.receive_some() == b""  # closed, nothing sent


# -- item 10: argument checks ----------------------------------------------------------


def _serve_with(**kwargs: Any) -> functools.partial[Any]:
    async def handler(wss: wsstream.WebSocketStream) -> None:
        pass

    arguments: dict[str, Any] = {"host": "127.0.0.1", "port": 0, **kwargs}
    host, port = arguments.pop("host"), arguments.pop("port")
    return functools.partial(wsstream.serve, handler, host, port, **arguments)


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"port": 99999}, ValueError),
        ({"port": -1}, ValueError),
        ({"port": 65536}, ValueError),
        ({"port": True}, TypeError),
        ({"port": "8765"}, TypeError),
        ({"port": 1.5}, TypeError),
        ({"host": 127}, TypeError),
        ({"backlog": "10"}, TypeError),
        ({"backlog": -1}, ValueError),
        ({"ssl_context": "yes"}, TypeError),
        ({"origins": "https://example.com"}, TypeError),
        ({"origins": [1]}, TypeError),
        ({"subprotocols": ["a b"]}, ValueError),
        ({"subprotocols": [1]}, TypeError),
        ({"select_subprotocol": "v1"}, TypeError),
        ({"process_request": 1}, TypeError),
        ({"server_header": 1}, TypeError),
        ({"server_header": "x\r\nSet-Cookie: a=b"}, ValueError),
        ({"response_headers": {"X Y": "z"}}, ValueError),
        ({"response_headers": {"X-Y": "a\nb"}}, ValueError),
        ({"response_headers": "X-Y: z"}, TypeError),
        ({"no_such_option": 1}, TypeError),
    ],
)
async def test_serve_refuses_bad_arguments_before_listening(
    kwargs: dict[str, Any], error: type[Exception]
) -> None:
    # fail_after only guards against serving for ever instead of raising.
    with trio.fail_after(10), pytest.raises(error):
        await _serve_with(**kwargs)()


async def test_serve_stream_refuses_a_stream_that_is_not_a_trio_stream() -> None:
    async def handler(wss: wsstream.WebSocketStream) -> None:
        pass

    with trio.fail_after(10), pytest.raises(TypeError, match=r"trio\.abc\.Stream"):
        await wsstream.serve_stream(handler, object())  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"secure": 1}, TypeError),
        ({"origins": ["https://a.example", 3]}, TypeError),
        ({"response_headers": [("Name:", "v")]}, ValueError),
        ({"server_header": "a\x00b"}, ValueError),
    ],
)
async def test_serve_stream_refuses_bad_arguments(
    kwargs: dict[str, Any], error: type[Exception]
) -> None:
    client, server = trio.testing.memory_stream_pair()

    async def handler(wss: wsstream.WebSocketStream) -> None:
        pass

    with trio.fail_after(10), pytest.raises(error):
        await wsstream.serve_stream(handler, server, **kwargs)


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"origin": "https://a.example\r\nX-Injected: 1"}, ValueError),
        ({"origin": "https://a.example\n"}, ValueError),
        ({"user_agent": "agent\r\n"}, ValueError),
        ({"user_agent": "agent\x00"}, ValueError),
        ({"user_agent": "snowman \u2603"}, ValueError),  # not ISO-8859-1: cannot be sent
        ({"headers": {"X Token": "a"}}, ValueError),
        ({"headers": {"X:Token": "a"}}, ValueError),
        ({"headers": {"": "a"}}, ValueError),
        ({"headers": {"X-Token": "a\r\nb"}}, ValueError),
        ({"headers": {"X-Token": "a\x00b"}}, ValueError),
        ({"headers": [("X-Token",)]}, TypeError),
        ({"headers": "X-Token: a"}, TypeError),
        ({"headers": 42}, TypeError),
        ({"headers": {"X-Token": 1}}, TypeError),
        ({"origin": 1}, TypeError),
    ],
)
def test_client_refuses_bad_header_arguments(
    kwargs: dict[str, Any], error: type[Exception]
) -> None:
    with pytest.raises(error):
        wsstream.WebSocketStream("ws://127.0.0.1:1/", **kwargs)


def test_classic_refuses_bad_arguments_with_type_and_value_errors() -> None:
    with pytest.raises(ValueError):
        wsstream.WebSocket("ws://127.0.0.1:1/", origin="a\r\nb")
    with pytest.raises(TypeError):
        wsstream.WebSocket("ws://127.0.0.1:1/", protocols=1)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        wsstream.WebSocket(b"ws://127.0.0.1:1/")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("args", "kwargs", "error"),
    [
        ((200, {"Bad Name": "v"}), {}, ValueError),
        ((200, {"X": "v\r\nSet-Cookie: a=b"}), {}, ValueError),
        ((200,), {"headers": "X: y"}, TypeError),
        ((200,), {"body": "text"}, TypeError),
        ((True,), {}, TypeError),
        ((600,), {}, ValueError),
    ],
)
def test_response_refuses_bad_arguments(
    args: tuple[Any, ...], kwargs: dict[str, Any], error: type[Exception]
) -> None:
    with pytest.raises(error):
        wsstream.Response(*args, **kwargs)


@pytest.mark.parametrize(
    ("items", "error"),
    [
        ({"Na me": "v"}, ValueError),
        ([("X", "a\rb")], ValueError),
        ([("X", "v", "extra")], TypeError),
        ("X: v", TypeError),
        (b"X: v", TypeError),
        (3, TypeError),
    ],
)
def test_headers_refuse_bad_fields(items: Any, error: type[Exception]) -> None:
    with pytest.raises(error):
        wsstream.Headers(items)


def test_headers_accept_iso_8859_1_values_and_every_token_name() -> None:
    headers = wsstream.Headers([("X-!#$%&'*+.^_`|~09az", "caf\u00e9 \t ok")])
    assert headers["x-!#$%&'*+.^_`|~09AZ"] == "caf\u00e9 \t ok"


def test_header_lookups_keep_nothing_per_request() -> None:
    # A server keeps every connection's request, and its handshake looks
    # headers up (Origin, Host): an index built by the first lookup and kept
    # with the headers cost 1-2.5 KiB per connection (2.7 KiB with these 13
    # fields). Lookups now scan: the headers hold their fields and nothing
    # else, before and after. (Not measured with tracemalloc: under
    # coverage, CI's tracer allocates on every traced line.)
    fields = [(f"X-Field-{i}", f"value {i}") for i in range(12)] + [("Origin", "https://a")]
    headers = wsstream.Headers(fields)

    def held() -> list[object]:
        return [r for r in gc.get_referents(headers) if r is not None and not isinstance(r, type)]

    assert held() == [headers.raw_items()]
    assert headers.get_all("origin") == ["https://a"]
    assert headers["ORIGIN"] == "https://a"
    assert "x-field-3" in headers and "nope" not in headers
    assert headers.get("missing") is None
    assert len(headers) == 13
    assert held() == [headers.raw_items()]


def test_repeated_headers_keep_their_order_and_first_value() -> None:
    headers = wsstream.Headers([("A", "1"), ("b", "2"), ("a", "3")])
    assert headers["a"] == "1"
    assert headers.get_all("A") == ["1", "3"]
    assert list(headers) == ["A", "b"]
    assert len(headers) == 2
    with pytest.raises(KeyError):
        headers["c"]


def test_request_refuses_a_path_that_is_not_a_str() -> None:
    with pytest.raises(TypeError):
        wsstream.Request(b"/")  # type: ignore[arg-type]
# -- item 12: errors keep the system's reason and name the address ---------------------


async def free_port() -> int:
    """A port on 127.0.0.1 that nobody listens on."""
    with trio.socket.socket() as sock:
        await sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


async def open_error(url: str, **kwargs: Any) -> str:
    async with wsstream.WebSocketStream(url, **kwargs) as wss:
        with pytest.raises(wsstream.HandshakeError) as info:
            await wss.opened
    return info.value.message


async def test_a_refused_connection_says_so_and_names_the_address() -> None:
    port = await free_port()
    message = await open_error(f"ws://127.0.0.1:{port}/")
    assert f"127.0.0.1:{port}: connection refused" in message
    assert message.count("127.0.0.1") == 1, message  # once, not once per attempt


async def test_a_name_that_does_not_resolve_says_so_and_names_it() -> None:
    message = await open_error("ws://no-such-host.invalid:8080/", open_timeout=30)
    assert "no-such-host.invalid:8080: name not resolved" in message


async def test_a_tls_failure_keeps_the_ssl_error_as_its_cause(
    server: Server, named_tls: tuple[ssl.SSLContext, ssl.SSLContext]
) -> None:
    url = await server.start(Recorder(), ssl_context=named_tls[0])
    port = int(url.rsplit(":", 1)[1])
    tcp = await trio.open_tcp_stream("127.0.0.1", port)
    # The default context does not trust the test CA.
    async with wsstream.WebSocketStream(f"wss://wsstream.test:{port}/", stream=tcp) as wss:
        with pytest.raises(wsstream.HandshakeError) as info:
            await wss.opened
    broken = info.value.__cause__
    assert isinstance(broken, trio.BrokenResourceError)
    assert str(broken).startswith(f"TLS with wsstream.test:{port} failed: ")
    assert isinstance(broken.__cause__, ssl.SSLCertVerificationError)


async def test_a_tls_failure_names_the_address(
    server: Server, named_tls: tuple[ssl.SSLContext, ssl.SSLContext]
) -> None:
    url = await server.start(Recorder(), ssl_context=named_tls[0])
    port = int(url.rsplit(":", 1)[1])
    tcp = await trio.open_tcp_stream("127.0.0.1", port)
    message = await open_error(f"wss://wsstream.test:{port}/", stream=tcp)
    assert f"TLS with wsstream.test:{port} failed" in message


async def test_serve_on_a_busy_port_names_the_address(server: Server) -> None:
    url = await server.start(Recorder())
    port = int(url.rsplit(":", 1)[1])
    with trio.fail_after(10), pytest.raises(OSError) as info:
        await _serve_with(port=port)()
    assert str(info.value) == f"cannot listen on 127.0.0.1:{port}: address already in use"




@pytest.mark.parametrize("url", ["ws://\x00/", "ws://ho\x01st/", "ws://host\x7f/"])
def test_a_control_character_in_the_host_is_a_value_error(url: str) -> None:
    # It used to pass and fail later with websockets' InvalidHeaderValue (Host).
    with pytest.raises(ValueError, match="host"):
        wsstream.WebSocketStream(url)


def test_a_lone_surrogate_in_the_url_becomes_u_fffd_as_in_the_browser() -> None:
    # The browser's USVString conversion, then percent-encoding; it used to
    # raise UnicodeEncodeError.
    assert wsstream.WebSocketStream("ws://h/a\udcffb").url == "ws://h/a%EF%BF%BDb"
