"""process_response: the 101 as the hook sees it, changed or replaced; a hook
that raises or breaks the upgrade answers 500 and is logged by name
(issue 14, item 4)."""

from __future__ import annotations

import logging

import pytest
import trio

import wsstream
import wsstream.testing
from tests.conftest import Server, echo_handler
from tests.server_support import UPGRADE_REQUEST, head_headers, read_head


async def raw_upgrade(url: str, request: bytes = UPGRADE_REQUEST) -> bytes:
    host, port = url.removeprefix("ws://").split("/")[0].split(":")
    async with await trio.open_tcp_stream(host, int(port)) as stream:
        await stream.send_all(request)
        return await read_head(stream)


async def test_the_hook_sees_the_request_and_the_101_about_to_go_out(server: Server) -> None:
    seen: list[tuple[wsstream.Request, wsstream.Response]] = []

    def process_response(
        request: wsstream.Request, response: wsstream.Response
    ) -> wsstream.Response | None:
        seen.append((request, response))
        return None

    url = await server.start(
        echo_handler, process_response=process_response, subprotocols=["chat"],
        response_headers={"X-Mine": "1"},
    )
    async with wsstream.WebSocketStream(url + "/room?x=1", protocols=["chat"]) as wss:
        _, _, extensions, protocol = await wss.opened
    request, response = seen[0]
    assert request.path == "/room?x=1" and request.method == "GET"
    assert request.remote_address is not None
    assert response.status == 101 and response.body == b""
    headers = response.headers
    assert headers["Upgrade"].lower() == "websocket"
    assert "Sec-WebSocket-Accept" in headers and "Date" in headers
    assert headers["Sec-WebSocket-Protocol"] == protocol == "chat"
    assert headers["Sec-WebSocket-Extensions"] == extensions
    assert headers["Server"].startswith("wsstream/") and headers["X-Mine"] == "1"


async def test_headers_added_to_the_101_reach_the_client_and_the_upgrade_holds(
    server: Server,
) -> None:
    async def process_response(
        request: wsstream.Request, response: wsstream.Response
    ) -> wsstream.Response | None:
        await trio.lowlevel.checkpoint()  # an async hook
        headers = [(k, v) for k, v in response.headers.raw_items() if k != "Server"]
        headers += [("Set-Cookie", "session=abc; HttpOnly"), ("Chat-Version", "3")]
        return wsstream.Response(101, headers)

    url = await server.start(echo_handler, process_response=process_response)
    head = await raw_upgrade(url)
    assert head.startswith(b"HTTP/1.1 101 ")
    fields = head_headers(head)
    assert fields["set-cookie"] == ["session=abc; HttpOnly"]
    assert fields["chat-version"] == ["3"]
    assert "server" not in fields
    # A real client opens through the changed 101 and the connection works.
    async with wsstream.WebSocketStream(url + "/") as wss:
        readable, writable, *_ = await wss.opened
        await writable.send("after a changed 101")
        assert await readable.receive() == "after a changed 101"


async def test_another_status_replaces_the_101_and_the_handler_never_runs(
    server: Server,
) -> None:
    ran: list[object] = []

    async def handler(wss: wsstream.WebSocketStream) -> None:
        ran.append(wss)  # pragma: no cover - must not run

    def process_response(
        request: wsstream.Request, response: wsstream.Response
    ) -> wsstream.Response:
        return wsstream.Response(403, {"X-Why": "late no"}, b"not you\n")

    stats = wsstream.ServerStatistics()
    url = await server.start(handler, process_response=process_response, statistics=stats)
    async with wsstream.WebSocketStream(url + "/") as wss:
        with pytest.raises(wsstream.HandshakeError) as caught:
            await wss.opened
    assert caught.value.status == 403
    assert caught.value.headers is not None and caught.value.headers["X-Why"] == "late no"
    assert caught.value.body == b"not you\n"
    assert ran == []
    assert stats.handshakes_failed == 1


def broken_upgrade(name: str, value: str | None):  # type: ignore[no-untyped-def]
    def process_response(
        request: wsstream.Request, response: wsstream.Response
    ) -> wsstream.Response:
        headers = [(k, v) for k, v in response.headers.raw_items() if k.lower() != name.lower()]
        if value is not None:
            headers.append((name, value))
        return wsstream.Response(101, headers)

    return process_response


def raises(request: wsstream.Request, response: wsstream.Response) -> None:
    raise RuntimeError("the hook's own bug")


def returns_a_str(request: wsstream.Request, response: wsstream.Response) -> str:
    return "101"


def returns_a_body(request: wsstream.Request, response: wsstream.Response) -> wsstream.Response:
    return wsstream.Response(101, response.headers, b"a body on a 101")


@pytest.mark.parametrize(
    ("hook", "logged"),
    [
        (raises, "the hook's own bug"),
        (returns_a_str, "must return a wsstream.Response or None"),
        (returns_a_body, "a 101 with a body"),
        (broken_upgrade("Sec-WebSocket-Accept", "bm90IHRoZSBrZXk="), "Sec-WebSocket-Accept"),
        (broken_upgrade("Upgrade", None), "changed Upgrade"),
        (broken_upgrade("Sec-WebSocket-Protocol", "other"), "Sec-WebSocket-Protocol"),
        (broken_upgrade("Sec-WebSocket-Extensions", "permessage-deflate"), "Extensions"),
    ],
)
async def test_a_failing_hook_answers_500_and_is_logged_by_name(
    server: Server, caplog: pytest.LogCaptureFixture, hook: object, logged: str
) -> None:
    ran: list[object] = []

    async def handler(wss: wsstream.WebSocketStream) -> None:
        ran.append(wss)  # pragma: no cover - must not run

    url = await server.start(handler, process_response=hook, compression=None)
    with caplog.at_level(logging.ERROR, logger="wsstream.handshake"):
        head = await raw_upgrade(url)
    assert head.startswith(b"HTTP/1.1 500 "), head
    records = [r for r in caplog.records if r.name == "wsstream.handshake"]
    assert len(records) == 1
    assert records[0].getMessage() == "process_response raised; answering 500"
    assert records[0].exc_info is not None
    assert logged in str(records[0].exc_info[1])
    assert ran == []


async def test_not_called_for_a_request_refused_before(server: Server) -> None:
    called: list[object] = []

    def process_response(
        request: wsstream.Request, response: wsstream.Response
    ) -> None:
        called.append(request)  # pragma: no cover - must not run

    def process_request(request: wsstream.Request) -> wsstream.Response:
        return wsstream.Response(401)

    url = await server.start(
        echo_handler, process_request=process_request, process_response=process_response
    )
    assert (await raw_upgrade(url)).startswith(b"HTTP/1.1 401 ")
    assert (await raw_upgrade(url, UPGRADE_REQUEST.replace(b"GET", b"PUT"))).startswith(
        b"HTTP/1.1 405 "
    )
    assert called == []


async def test_serve_stream_and_the_testing_pair_take_it_too() -> None:
    seen: list[int] = []

    def process_response(
        request: wsstream.Request, response: wsstream.Response
    ) -> None:
        seen.append(response.status)

    async with wsstream.testing.open_pair(
        echo_handler, server_options={"process_response": process_response}
    ) as wss:
        await wss.opened
    assert seen == [101]


async def test_a_bad_hook_is_refused_at_once() -> None:
    with pytest.raises(TypeError, match="process_response"):
        await wsstream.serve(echo_handler, "127.0.0.1", 0, process_response="no")  # type: ignore[arg-type]
