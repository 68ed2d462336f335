"""The server's opening handshake as a client sees it: the hooks see who is
connecting, and a hook that raises answers 500 and is logged by name
(issue 13, items 2-4)."""

from __future__ import annotations

import logging
from collections.abc import Sequence

import pytest
import trio

import wsstream
from tests.conftest import Server, echo_handler


async def raw_request(url: str, request: bytes) -> bytes:
    host, port = url.removeprefix("ws://").split("/")[0].split(":")
    stream = await trio.open_tcp_stream(host, int(port))
    async with stream:
        await stream.send_all(request)
        response = b""
        with trio.fail_after(10):
            while b"\r\n\r\n" not in response:
                chunk = await stream.receive_some(65536)
                if not chunk:
                    break
                response += chunk
    return response


UPGRADE = (
    b"Host: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
)


@pytest.mark.parametrize(
    ("line", "status"),
    [
        (b"POST /chat HTTP/1.1", b"405"),
        (b"DELETE /chat HTTP/1.1", b"405"),
        (b"GET /chat HTTP/1.0", b"505"),
        (b"GET * HTTP/1.1", b"400"),
    ],
)
async def test_what_cannot_open_a_websocket_gets_its_http_status_and_no_handler(
    server: Server, line: bytes, status: bytes
) -> None:
    ran = []

    async def handler(wss: wsstream.WebSocketStream) -> None:
        ran.append(wss)  # pragma: no cover - must not run

    url = await server.start(handler)
    response = await raw_request(url, line + b"\r\n" + UPGRADE)
    assert response.startswith(b"HTTP/1.1 " + status), response
    if status == b"405":
        assert b"\r\nAllow: GET\r\n" in response
    assert ran == []


async def test_a_request_without_host_gets_400(server: Server) -> None:
    url = await server.start(echo_handler)
    response = await raw_request(url, b"GET / HTTP/1.1\r\n" + UPGRADE.replace(b"Host: x\r\n", b""))
    assert response.startswith(b"HTTP/1.1 400")


async def test_process_request_sees_method_and_the_peer_address(server: Server) -> None:
    seen: list[wsstream.Request] = []
    addresses: list[object] = []

    def process_request(request: wsstream.Request) -> None:
        seen.append(request)

    async def handler(wss: wsstream.WebSocketStream) -> None:
        addresses.append(wss.remote_address)
        await wss.opened

    url = await server.start(handler, process_request=process_request)
    async with wsstream.WebSocketStream(url + "/x?y=1") as wss:
        await wss.opened
        wss.close(1000)
        await wss.closed
    (request,) = seen
    assert request.method == "GET"
    assert request.path == "/x?y=1"
    assert isinstance(request.remote_address, tuple)
    assert request.remote_address[0] == "127.0.0.1"
    assert addresses == [request.remote_address]


async def test_a_raising_process_request_answers_500_and_is_logged_by_name(
    server: Server, caplog: pytest.LogCaptureFixture
) -> None:
    def process_request(request: wsstream.Request) -> None:
        raise RuntimeError("bug in the hook")

    url = await server.start(echo_handler, process_request=process_request)
    with caplog.at_level(logging.ERROR, logger="wsstream"):
        async with wsstream.WebSocketStream(url) as wss:
            with pytest.raises(wsstream.HandshakeError) as error:
                await wss.opened
    assert error.value.status == 500
    assert any(
        "process_request" in record.getMessage() and record.exc_info for record in caplog.records
    )


@pytest.mark.parametrize("chosen", ["not-offered", RuntimeError("bug")])
async def test_a_bad_select_subprotocol_is_the_servers_500(
    server: Server, caplog: pytest.LogCaptureFixture, chosen: object
) -> None:
    def select(request: wsstream.Request, offered: Sequence[str]) -> str | None:
        if isinstance(chosen, Exception):
            raise chosen
        return str(chosen)

    url = await server.start(echo_handler, select_subprotocol=select)
    with caplog.at_level(logging.ERROR, logger="wsstream"):
        async with wsstream.WebSocketStream(url, protocols=["a", "b"]) as wss:
            with pytest.raises(wsstream.HandshakeError) as error:
                await wss.opened
    assert error.value.status == 500
    assert any("select_subprotocol" in record.getMessage() for record in caplog.records)


async def test_no_log_line_shows_a_credential(
    server: Server, caplog: pytest.LogCaptureFixture
) -> None:
    url = await server.start(echo_handler)
    secret = "s3cr3t-token"
    with caplog.at_level(logging.DEBUG, logger="wsstream"):
        async with wsstream.WebSocketStream(
            url.replace("ws://", f"ws://user:{secret}@") + f"/feed?token={secret}",
            headers={"Authorization": f"Bearer {secret}", "Cookie": f"session={secret}"},
        ) as wss:
            readable, writable, *_ = await wss.opened
            await writable.send(f"message {secret}")
            assert await readable.receive() == f"message {secret}"
    assert caplog.records, "DEBUG logging produced nothing to check"
    for record in caplog.records:
        assert secret not in record.getMessage()
