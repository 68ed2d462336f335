"""The opening handshake module over memory streams: both sides, the
negotiation, and the failures a client must report."""

from __future__ import annotations

import pytest
import trio
import trio.testing

from wsstream._endpoints.compression import DEFAULT_DEFLATE, Deflate
from wsstream._endpoints.handshake import (
    ClientHandshake,
    Handshake,
    HandshakeFailure,
    ServerHandshake,
    ServerHooks,
)
from wsstream._endpoints.http import Headers, Request, Response
from wsstream._endpoints.url import parse_url


def _settings(compression: str | Deflate | None) -> Deflate | None:
    return DEFAULT_DEFLATE if compression == "deflate" else compression  # type: ignore[return-value]


def client_side(compression: str | Deflate | None = None, url: str = "ws://example.com/path?q=1",
                subprotocols: tuple[str, ...] = ("b", "a")) -> ClientHandshake:
    return ClientHandshake(
        parse_url(url), subprotocols=subprotocols, compression=_settings(compression),
        origin=None, headers=Headers({"X-Test": "1"}), user_agent="t",
    )


def server_side(
    compression: str | Deflate | None = None, response: Response | None = None
) -> ServerHandshake:
    async def process(request: Request) -> Response | None:
        return response

    def select(request: Request, offered: list[str] | tuple[str, ...]) -> str | None:
        return "a" if "a" in offered else None

    return ServerHandshake(ServerHooks(
        select_subprotocol=select, process_request=process,  # type: ignore[arg-type]
        response_headers=Headers({"Server": "unit"}), origins=None,
        compression=_settings(compression),
    ))


async def both(
    client: ClientHandshake, server: ServerHandshake
) -> tuple[Handshake | BaseException, Handshake | HandshakeFailure | BaseException]:
    left, right = trio.testing.memory_stream_pair()
    results: dict[str, object] = {}

    async def run(name: str, side: ClientHandshake | ServerHandshake, stream: object) -> None:
        try:
            results[name] = await side.run(stream)  # type: ignore[arg-type]
        except Exception as exc:
            results[name] = exc
        if name == "server":
            await right.aclose()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(run, "client", client, left)
        nursery.start_soon(run, "server", server, right)
    return results["client"], results["server"]  # type: ignore[return-value]


async def test_the_handshake_negotiates_subprotocol_and_compression() -> None:
    client, server = await both(client_side("deflate"), server_side("deflate"))
    assert isinstance(client, Handshake) and isinstance(server, Handshake)
    assert client.subprotocol == server.subprotocol == "a"
    assert client.extensions.startswith("permessage-deflate")
    assert server.extensions == client.extensions
    assert client.deflate is not None and server.deflate is not None
    # The server offers 12-bit windows both ways (memory, see COMPRESS_*).
    assert server.deflate.local_max_window_bits == client.deflate.remote_max_window_bits == 12
    assert server.request is not None
    assert server.request.path == "/path?q=1"
    assert server.request.headers["x-test"] == "1"


async def test_a_client_that_offers_no_compression_gets_none() -> None:
    client, server = await both(client_side(None), server_side("deflate"))
    assert isinstance(client, Handshake) and isinstance(server, Handshake)
    assert client.deflate is None and server.deflate is None and client.extensions == ""


async def test_a_rejection_gives_the_status_and_body() -> None:
    reply = Response(404, Headers({"X-Why": "gone"}), b"nope")
    client, server = await both(client_side(), server_side(response=reply))
    assert isinstance(server, HandshakeFailure) and server.status == 404
    assert isinstance(client, HandshakeFailure)
    assert (client.status, client.body) == (404, b"nope")
    assert client.headers is not None and client.headers["x-why"] == "gone"
    assert str(client) == "the server refused the WebSocket connection with HTTP 404"


async def raw_server(reply: bytes) -> Handshake | BaseException:
    left, right = trio.testing.memory_stream_pair()
    result: list[Handshake | BaseException] = []

    async def client_task() -> None:
        try:
            result.append(await client_side().run(left))
        except Exception as exc:
            result.append(exc)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(client_task)
        await right.receive_some(65536)
        await right.send_all(reply)
        await right.aclose()
    return result[0]


async def test_a_bad_accept_key_fails_the_handshake() -> None:
    result = await raw_server(
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
        b"Connection: Upgrade\r\nSec-WebSocket-Accept: wrong\r\n\r\n"
    )
    assert isinstance(result, HandshakeFailure)
    assert "Sec-WebSocket-Accept" in str(result)


async def test_bytes_behind_the_101_are_kept_for_the_core() -> None:
    left, right = trio.testing.memory_stream_pair()
    client, server = client_side(), server_side()
    async with trio.open_nursery() as nursery:
        done: list[Handshake | HandshakeFailure] = []

        async def serve() -> None:
            done.append(await server.run(right))
            await right.send_all(b"\x81\x02hi")

        nursery.start_soon(serve)
        await left.send_all(b"")  # nothing: the client's request comes from run()
        result = await client.run(left)
    assert isinstance(result, Handshake)
    # The frame may have come in the same read as the 101 or after it.
    assert result.rest in (b"", b"\x81\x02hi")


async def test_a_request_without_upgrade_gets_426() -> None:
    left, right = trio.testing.memory_stream_pair()
    async with trio.open_nursery() as nursery:
        outcome: list[object] = []

        async def serve() -> None:
            outcome.append(await server_side().run(right))

        nursery.start_soon(serve)
        await left.send_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        response = await left.receive_some(65536)
    assert response.startswith(b"HTTP/1.1 426")
    assert isinstance(outcome[0], HandshakeFailure)


async def request_outcome(request: bytes) -> tuple[bytes, object]:
    """What a server answers to ``request``, and what its run() gave."""
    left, right = trio.testing.memory_stream_pair()
    outcome: list[object] = []
    async with trio.open_nursery() as nursery:

        async def serve() -> None:
            try:
                outcome.append(await server_side().run(right))
            except HandshakeFailure as exc:
                outcome.append(exc)

        nursery.start_soon(serve)
        await left.send_all(request)
        response = await left.receive_some(65536)
    return response, outcome[0]


@pytest.mark.parametrize(
    ("request_line", "status"),
    [
        (b"hello", b"400"),
        (b"POST / HTTP/1.1", b"405"),
        (b"DELETE /x HTTP/1.1", b"405"),
        (b"GET / HTTP/1.0", b"505"),
        (b"GET http://h/ HTTP/1.1", b"400"),
    ],
)
async def test_requests_that_cannot_open_a_websocket_get_their_http_error(
    request_line: bytes, status: bytes
) -> None:
    # RFC 6455 4.2.1: a GET, HTTP/1.1, a path; the answer says which.
    headers = (
        b"Host: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
    )
    response, outcome = await request_outcome(request_line + b"\r\n" + headers + b"\r\n")
    assert response.startswith(b"HTTP/1.1 " + status)
    assert isinstance(outcome, HandshakeFailure)
    if status == b"405":
        assert b"\r\nAllow: GET\r\n" in response


async def test_a_request_without_host_gets_400() -> None:
    response, outcome = await request_outcome(
        b"GET / HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    assert response.startswith(b"HTTP/1.1 400")
    assert isinstance(outcome, HandshakeFailure)
