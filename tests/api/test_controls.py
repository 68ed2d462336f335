"""The controls beyond the browser: TLS, compression limits, handshake hooks,
headers, statistics. Real TCP (and TLS) on 127.0.0.1."""

from __future__ import annotations

from functools import partial
from typing import Any

import pytest
import trio

import wsstream
from tests.conftest import Server, echo_handler
from tests.peer import Peer
from tests.wpt_handlers import TlsContexts


async def _tls_server(nursery: trio.Nursery, tls: TlsContexts) -> int:
    listeners = await nursery.start(
        lambda task_status: wsstream.serve(
            echo_handler, "127.0.0.1", 0, ssl_context=tls.server, task_status=task_status
        )
    )
    return int(listeners[0].socket.getsockname()[1])


async def test_wss_with_a_trusted_certificate_echoes(
    nursery: trio.Nursery, tls_contexts: TlsContexts
) -> None:
    port = await _tls_server(nursery, tls_contexts)
    async with wsstream.WebSocketStream(
        f"wss://127.0.0.1:{port}/", ssl_context=tls_contexts.client
    ) as wss:
        readable, writable, *_ = await wss.opened
        await writable.send("over TLS")
        assert await readable.receive() == "over TLS"


async def test_an_untrusted_certificate_fails_the_handshake(
    nursery: trio.Nursery, tls_contexts: TlsContexts
) -> None:
    port = await _tls_server(nursery, tls_contexts)
    with trio.fail_after(10):
        # The default context trusts the system store only, not our test CA.
        async with wsstream.WebSocketStream(f"wss://127.0.0.1:{port}/") as wss:
            with pytest.raises(wsstream.HandshakeError) as info:
                await wss.opened
    assert "certificate" in str(info.value).lower()
    assert info.value.close_code == 1006


async def test_a_certificate_for_another_host_fails_the_handshake(
    nursery: trio.Nursery, tls_contexts: TlsContexts
) -> None:
    port = await _tls_server(nursery, tls_contexts)
    with trio.fail_after(10):
        # The certificate names 127.0.0.1; "localhost" is another name.
        async with wsstream.WebSocketStream(
            f"wss://localhost:{port}/", ssl_context=tls_contexts.client
        ) as wss:
            with pytest.raises(wsstream.HandshakeError) as info:
                await wss.opened
    assert "localhost" in str(info.value) or "mismatch" in str(info.value).lower()


@pytest.mark.parametrize("side", ["client", "server"])
async def test_a_deflate_bomb_is_refused_with_1009(server: Server, side: str) -> None:
    bomb = b"\0" * 2**20  # compresses to about 1 KiB

    async def handler(wss: wsstream.WebSocketStream) -> None:
        readable, writable, *_ = await wss.opened
        if side == "client":
            await writable.send(bomb)
        async for _ in readable:
            pass

    server_limit = 1000 if side == "server" else 2**20
    client_limit = 1000 if side == "client" else 2**20
    url = await server.start(handler, max_message_size=server_limit)
    async with wsstream.WebSocketStream(url, max_message_size=client_limit) as wss:
        readable, writable, extensions, _ = await wss.opened
        assert extensions.startswith("permessage-deflate")
        if side == "server":
            await writable.send(bomb)
        with trio.fail_after(10):
            if side == "client":
                # The message over the limit is held until the next read
                # decides (receive_stream() would stream it): receive() fails
                # the connection with 1009.
                with pytest.raises(wsstream.WebSocketError) as info:
                    await readable.receive()
                assert info.value.close_code == 1009
                with pytest.raises(wsstream.WebSocketError) as closed_info:
                    await wss.closed
                assert closed_info.value is info.value
            else:
                closed = await wss.closed
                assert closed.close_code == 1009
        assert wss.statistics().bytes_received < 100_000


async def test_compression_none_negotiates_no_extension(server: Server) -> None:
    url = await server.start(echo_handler)
    async with wsstream.WebSocketStream(url, compression=None) as wss:
        assert (await wss.opened).extensions == ""


async def test_origins_allow_list_rejects_others_with_403(server: Server) -> None:
    url = await server.start(echo_handler, origins=["https://good.example"])
    async with wsstream.WebSocketStream(url, origin="https://evil.example") as wss:
        with pytest.raises(wsstream.HandshakeError) as info:
            await wss.opened
    assert info.value.status == 403
    async with wsstream.WebSocketStream(url, origin="https://good.example") as wss:
        await wss.opened


@pytest.mark.parametrize(
    ("allowed", "sent", "ok"),
    [
        ("https://Example.COM", "https://example.com:443", True),  # RFC 6454 6.2
        ("https://example.com", "HTTPS://EXAMPLE.com", True),
        ("https://example.com", "http://example.com", False),
        ("https://example.com", "https://example.com:8443", False),
        ("https://example.com", "null", False),
    ],
)
async def test_origins_compare_as_rfc_6454_says(
    server: Server, allowed: str, sent: str, ok: bool
) -> None:
    url = await server.start(echo_handler, origins=[allowed])
    async with wsstream.WebSocketStream(url, origin=sent) as wss:
        if ok:
            await wss.opened
        else:
            with pytest.raises(wsstream.HandshakeError) as info:
                await wss.opened
            assert info.value.status == 403


async def test_a_request_with_two_origins_is_refused(server: Server) -> None:
    url = await server.start(echo_handler, origins=["https://a.example", "https://b.example"])
    host, port = url.removeprefix("ws://").split(":")
    stream = await trio.open_tcp_stream(host, int(port))
    async with stream:
        await stream.send_all(
            b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
            b"Origin: https://a.example\r\nOrigin: https://b.example\r\n\r\n"
        )
        with trio.fail_after(10):
            response = await stream.receive_some(65536)
    assert response.startswith(b"HTTP/1.1 400")


async def test_tls_to_a_plain_port_is_refused_at_once(
    server: Server, tls_contexts: TlsContexts
) -> None:
    # A ClientHello is no HTTP request: the server says so at once, instead
    # of waiting open_timeout (10 s) for a blank line that never comes.
    url = await server.start(echo_handler)
    with trio.fail_after(5):
        async with wsstream.WebSocketStream(
            url.replace("ws://", "wss://"), ssl_context=tls_contexts.client
        ) as wss:
            with pytest.raises(wsstream.HandshakeError):
                await wss.opened


@pytest.mark.parametrize("status", [401, 403, 404])
async def test_async_process_request_rejects_with_any_status(server: Server, status: int) -> None:
    async def process_request(request: wsstream.Request) -> wsstream.Response | None:
        await trio.lowlevel.checkpoint()
        if request.path.startswith("/private"):
            return wsstream.Response(status, {"X-Why": "test"}, b"go away")
        return None

    url = await server.start(echo_handler, process_request=process_request)
    async with wsstream.WebSocketStream(url + "/private?x=1") as wss:
        with pytest.raises(wsstream.HandshakeError) as info:
            await wss.opened
    assert (info.value.status, info.value.body) == (status, b"go away")
    assert info.value.headers is not None and info.value.headers["x-why"] == "test"
    async with wsstream.WebSocketStream(url + "/public") as wss:
        await wss.opened


async def test_handler_sees_path_query_headers_and_peer_address(server: Server) -> None:
    seen: dict[str, Any] = {}

    async def handler(wss: wsstream.WebSocketStream) -> None:
        await wss.opened
        assert wss.request is not None
        seen["path"] = wss.request.path
        seen["auth"] = wss.request.headers["authorization"]
        seen["ua"] = wss.request.headers.get("User-Agent")
        seen["multi"] = wss.request.headers.get_all("X-Multi")
        seen["peer"] = wss.remote_address

    url = await server.start(handler)
    async with wsstream.WebSocketStream(
        url + "/room?id=7",
        headers=[("Authorization", "Bearer t"), ("X-Multi", "a"), ("X-Multi", "b")],
        user_agent="tester/1",
    ) as wss:
        await wss.opened
        await wss.closed
    assert seen["path"] == "/room?id=7"
    assert seen["auth"] == "Bearer t"
    assert seen["ua"] == "tester/1"
    assert seen["multi"] == ["a", "b"]
    assert seen["peer"][0] == "127.0.0.1"


async def test_subprotocol_is_the_first_client_offer_the_server_supports(server: Server) -> None:
    url = await server.start(echo_handler, subprotocols=["chat", "superchat"])
    async with wsstream.WebSocketStream(url, protocols=["superchat", "chat"]) as wss:
        assert (await wss.opened).protocol == "superchat"
    async with wsstream.WebSocketStream(url, protocols=["other"]) as wss:
        assert (await wss.opened).protocol == ""


async def test_select_subprotocol_hook_decides(server: Server) -> None:
    def select(request: wsstream.Request, offered: Any) -> str | None:
        return offered[-1] if request.path == "/last" else None

    url = await server.start(echo_handler, select_subprotocol=select)
    async with wsstream.WebSocketStream(url + "/last", protocols=["a", "b"]) as wss:
        assert (await wss.opened).protocol == "b"


async def _raw_response(url: str, request: bytes) -> tuple[str, dict[str, str]]:
    port = int(url.rsplit(":", 1)[1].split("/")[0])
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    async with stream:
        await stream.send_all(request)
        return await Peer(stream, is_client=True).read_http()


async def test_server_header_is_sent_and_can_be_turned_off(server: Server) -> None:
    request = (
        b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    url = await server.start(echo_handler, response_headers={"X-Extra": "1"})
    status, headers = await _raw_response(url, request)
    assert status.startswith("HTTP/1.1 101")
    assert headers["server"].startswith("wsstream/")
    assert headers["x-extra"] == "1"
    url = await server.start(echo_handler, server_header=None)
    status, headers = await _raw_response(url, request)
    assert status.startswith("HTTP/1.1 101")
    assert "server" not in headers


async def test_oversized_request_line_and_headers_get_414_and_431(server: Server) -> None:
    url = await server.start(echo_handler)
    status, _ = await _raw_response(url, b"GET /" + b"a" * 10_000 + b" HTTP/1.1\r\n\r\n")
    assert status.startswith("HTTP/1.1 414")
    headers = b"".join(b"X-H%d: v\r\n" % i for i in range(200))
    status, _ = await _raw_response(url, b"GET / HTTP/1.1\r\n" + headers + b"\r\n")
    assert status.startswith("HTTP/1.1 431")
    # The server still serves others.
    async with wsstream.WebSocketStream(url) as wss:
        await wss.opened


async def test_statistics_count_messages_and_bytes(server: Server) -> None:
    url = await server.start(echo_handler)
    async with wsstream.WebSocketStream(url, compression=None) as wss:
        readable, writable, *_ = await wss.opened
        for _ in range(10):
            await writable.send(b"x" * 100)
        for _ in range(10):
            await readable.receive()
        await wss.ping()
        stats = wss.statistics()
    assert stats.messages_sent == 10
    assert stats.messages_received == 10
    assert stats.bytes_sent >= 10 * 106  # payload plus client frame headers
    assert stats.bytes_received >= 10 * 102
    assert stats.pings_sent == 1 and stats.pongs_received == 1
    assert stats.latency is not None and stats.latency > 0
    assert stats.buffered_in == 0


@pytest.mark.parametrize("compression", ["deflate", None])
async def test_binary_messages_are_bytes_with_and_without_compression(
    server: Server, compression: str | None
) -> None:
    url = await server.start(echo_handler, compression=compression)
    async with wsstream.WebSocketStream(url, compression=compression) as wss:
        readable, writable, *_ = await wss.opened
        await writable.send(bytearray(b"\x01\x02"))
        message = await readable.receive()
        assert type(message) is bytes and message == b"\x01\x02"


async def test_connection_refused_is_a_handshake_error() -> None:
    listener = await trio.open_tcp_listeners(0, host="127.0.0.1")
    port = listener[0].socket.getsockname()[1]
    await listener[0].aclose()  # nothing listens there any more
    async with wsstream.WebSocketStream(f"ws://127.0.0.1:{port}/") as wss:
        with pytest.raises(wsstream.HandshakeError) as info:
            await wss.opened
    assert info.value.close_code == 1006 and info.value.status is None


async def test_close_timeout_resets_the_connection_so_a_stalled_peer_learns_at_once(
    nursery: trio.Nursery, autojump_clock: Any
) -> None:
    # A peer that completed the handshake, then stopped reading. When our
    # close_timeout expires, a FIN would wait behind the bytes it has not
    # read; a reset reaches it at once (its next read fails).
    accepted: list[trio.SocketStream] = []
    ready = trio.Event()

    async def stalled_peer(stream: trio.SocketStream) -> None:
        await Peer(stream, is_client=False).accept()
        accepted.append(stream)
        ready.set()
        await trio.sleep_forever()

    listeners = await nursery.start(partial(trio.serve_tcp, stalled_peer, 0, host="127.0.0.1"))
    port = listeners[0].socket.getsockname()[1]
    async with wsstream.WebSocketStream(
        f"ws://127.0.0.1:{port}/", compression=None, ping_interval=None, close_timeout=5
    ) as wss:
        _, writable, *_ = await wss.opened
        await ready.wait()
        with trio.move_on_after(1):  # fill every buffer on the way
            while True:
                await writable.send(b"x" * 65536)
        wss.close(1000)
        with pytest.raises(wsstream.WebSocketError) as info:
            await wss.closed
        assert info.value.close_code == 1006
    with pytest.raises(trio.BrokenResourceError) as reset:
        while await accepted[0].receive_some(1 << 20):
            pass
    assert isinstance(reset.value.__cause__, ConnectionResetError)
