"""Admission limits and server-wide counts (issue 15, item 3): beyond
max_connections a connection gets 503 with Retry-After before any hook or
handler runs, handshakes in progress count; the per-client recipe of the
server guide; ServerStatistics."""

from __future__ import annotations

import collections
import logging

import pytest
import trio
import trio.testing

import wsstream
from tests.conftest import Server, echo_handler
from tests.server_support import UPGRADE_REQUEST, head_headers, read_all, read_head
from wsstream._endpoints.server import MIN_REFUSALS, REFUSAL_TIMEOUT


def address_of(url: str) -> tuple[str, int]:
    host, port = url.removeprefix("ws://").split("/")[0].split(":")
    return host, int(port)


async def test_the_connection_over_the_limit_gets_503_before_any_hook_or_handler(
    server: Server,
) -> None:
    hooked: list[object] = []
    handled: list[object] = []

    def process_request(request: wsstream.Request) -> None:
        hooked.append(request)

    async def handler(wss: wsstream.WebSocketStream) -> None:
        handled.append(wss)
        await echo_handler(wss)

    stats = wsstream.ServerStatistics()
    url = await server.start(
        handler, max_connections=2, process_request=process_request, statistics=stats
    )
    host, port = address_of(url)
    # Two clients that connected and sent nothing: handshakes in progress.
    pending = [await trio.open_tcp_stream(host, port) for _ in range(2)]
    await trio.testing.wait_all_tasks_blocked()
    assert stats.connections_open == 2
    # The third is refused at once: it has not even sent its request.
    async with await trio.open_tcp_stream(host, port) as third:
        answer = await read_all(third)
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 503 Service Unavailable\r\n")
    fields = head_headers(answer)
    assert fields["retry-after"] == ["1"]
    assert fields["connection"] == ["close"]
    assert int(fields["content-length"][0]) == len(body) > 0
    assert hooked == [] and handled == []
    assert (stats.connections_refused, stats.connections_accepted) == (1, 3)
    # The two pending ones still complete their handshake.
    for stream in pending:
        await stream.send_all(UPGRADE_REQUEST)
        assert (await read_head(stream)).startswith(b"HTTP/1.1 101 ")
        await stream.aclose()


async def test_a_client_over_the_limit_sees_a_handshake_error_with_retry_after(
    server: Server,
) -> None:
    url = await server.start(echo_handler, max_connections=1)
    async with wsstream.WebSocketStream(url + "/") as first:
        await first.opened
        async with wsstream.WebSocketStream(url + "/") as second:
            with pytest.raises(wsstream.HandshakeError) as caught:
                await second.opened
        assert caught.value.status == 503
        assert caught.value.headers is not None and caught.value.headers["Retry-After"] == "1"
        # The first is not disturbed.
        readable, writable, *_ = await first.opened
        await writable.send("still here")
        assert await readable.receive() == "still here"


async def test_a_slot_freed_admits_the_next_connection(server: Server) -> None:
    stats = wsstream.ServerStatistics()
    url = await server.start(echo_handler, max_connections=1, statistics=stats)
    async with wsstream.WebSocketStream(url + "/") as first:
        await first.opened
    await first.closed
    await trio.testing.wait_all_tasks_blocked()
    assert stats.connections_open == 0
    async with wsstream.WebSocketStream(url + "/") as second:
        await second.opened
    assert stats.connections_refused == 0


async def test_a_handshake_that_fails_frees_its_slot(server: Server) -> None:
    stats = wsstream.ServerStatistics()
    url = await server.start(echo_handler, max_connections=1, statistics=stats)
    host, port = address_of(url)
    async with await trio.open_tcp_stream(host, port) as stream:
        await stream.send_all(b"GET / HTTP/1.0\r\n\r\n")
        assert (await read_head(stream)).startswith(b"HTTP/1.1 505 ")
    await trio.testing.wait_all_tasks_blocked()
    async with wsstream.WebSocketStream(url + "/") as wss:
        await wss.opened
    assert (stats.handshakes_failed, stats.connections_refused) == (1, 0)


@pytest.mark.parametrize(("value", "error"), [(0, ValueError), (-1, ValueError),
                                              (1.5, TypeError), (True, TypeError)])
async def test_bad_max_connections_raise_before_listening(
    value: object, error: type[Exception]
) -> None:
    with pytest.raises(error, match="max_connections"):
        await wsstream.serve(echo_handler, "127.0.0.1", 0, max_connections=value)  # type: ignore[arg-type]


async def test_refusals_are_quiet_in_the_log(
    server: Server, caplog: pytest.LogCaptureFixture
) -> None:
    url = await server.start(echo_handler, max_connections=1)
    host, port = address_of(url)
    with caplog.at_level(logging.INFO, logger="wsstream"):
        async with await trio.open_tcp_stream(host, port):  # holds the one slot
            await trio.testing.wait_all_tasks_blocked()
            for _ in range(3):
                async with await trio.open_tcp_stream(host, port) as refused:
                    await refused.send_all(UPGRADE_REQUEST)
                    assert (await read_all(refused)).startswith(b"HTTP/1.1 503 ")
    assert [r for r in caplog.records if r.levelno >= logging.INFO] == []


# -- the per-client recipe of docs/server.md ---------------------------------------


async def test_the_per_client_limit_recipe_refuses_the_extra_connection(
    server: Server,
) -> None:
    per_client_limit = 2
    per_client: collections.Counter[str] = collections.Counter()

    def client_of(address: object) -> str:
        return address[0] if isinstance(address, tuple) else str(address)

    def process_request(request: wsstream.Request) -> wsstream.Response | None:
        if per_client[client_of(request.remote_address)] >= per_client_limit:
            return wsstream.Response(
                429, {"Retry-After": "10"}, b"too many connections from your address\n"
            )
        return None

    async def handler(wss: wsstream.WebSocketStream) -> None:
        client = client_of(wss.remote_address)
        per_client[client] += 1
        try:
            await echo_handler(wss)
        finally:
            per_client[client] -= 1
            if not per_client[client]:
                del per_client[client]

    url = await server.start(handler, process_request=process_request) + "/"
    async with wsstream.WebSocketStream(url) as one, wsstream.WebSocketStream(url) as two:
        await one.opened
        await two.opened
        await trio.testing.wait_all_tasks_blocked()
        async with wsstream.WebSocketStream(url) as three:
            with pytest.raises(wsstream.HandshakeError) as caught:
                await three.opened
        assert caught.value.status == 429
    await trio.testing.wait_all_tasks_blocked()
    assert per_client == {}


# -- ServerStatistics ---------------------------------------------------------------


async def test_statistics_count_connections_messages_and_bytes(server: Server) -> None:
    stats = wsstream.ServerStatistics()
    url = await server.start(echo_handler, statistics=stats, compression=None) + "/"
    assert (stats.connections_open, stats.messages_received, stats.bytes_sent) == (0, 0, 0)
    async with wsstream.WebSocketStream(url) as wss:
        readable, writable, *_ = await wss.opened
        for message in ("one", b"two", "three"):
            await writable.send(message)
            await readable.receive()
        # Read while the connection is open: its counts are in.
        assert stats.connections_open == 1
        assert (stats.messages_received, stats.messages_sent) == (3, 3)
        client = wss.statistics()
        assert stats.bytes_received == client.bytes_sent
        assert stats.bytes_sent == client.bytes_received
    await wss.closed
    await trio.testing.wait_all_tasks_blocked()
    # Finished: its counts stay in the totals (the Close frames included).
    assert stats.connections_open == 0
    assert (stats.messages_received, stats.messages_sent) == (3, 3)
    assert stats.bytes_received == wss.statistics().bytes_sent
    assert stats.bytes_sent == wss.statistics().bytes_received
    assert (stats.connections_accepted, stats.handshakes_failed) == (1, 0)
    assert "connections_open=0" in repr(stats)


async def test_one_statistics_object_counts_for_several_servers(server: Server) -> None:
    stats = wsstream.ServerStatistics()
    urls = [await server.start(echo_handler, statistics=stats) + "/" for _ in range(2)]
    for url in urls:
        async with wsstream.WebSocketStream(url) as wss:
            readable, writable, *_ = await wss.opened
            await writable.send("x")
            await readable.receive()
    assert stats.connections_accepted == 2
    assert stats.messages_received == 2


async def test_failed_handshakes_are_counted(server: Server) -> None:
    stats = wsstream.ServerStatistics()

    def process_request(request: wsstream.Request) -> wsstream.Response | None:
        return wsstream.Response(404) if request.path == "/missing" else None

    url = await server.start(
        echo_handler, statistics=stats, process_request=process_request, origins=["https://a"]
    )
    host, port = address_of(url)
    for request in (
        UPGRADE_REQUEST.replace(b"/chat", b"/missing"),
        UPGRADE_REQUEST.replace(b"Host:", b"Origin: https://evil\r\nHost:"),
        b"not http at all\r\n\r\n",
    ):
        async with await trio.open_tcp_stream(host, port) as stream:
            await stream.send_all(request)
            await read_head(stream)
    # A client that leaves in the middle of its request.
    async with await trio.open_tcp_stream(host, port) as stream:
        await stream.send_all(UPGRADE_REQUEST[:20])
    await trio.testing.wait_all_tasks_blocked()
    assert stats.handshakes_failed == 4
    assert (stats.connections_accepted, stats.connections_open) == (4, 0)
    assert stats.messages_received == stats.bytes_received == 0


async def test_serve_stream_counts_too() -> None:
    stats = wsstream.ServerStatistics()
    server_stream, client_stream = trio.testing.memory_stream_pair()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(
            lambda: wsstream.serve_stream(echo_handler, server_stream, statistics=stats)
        )
        async with wsstream.WebSocketStream("ws://localhost/", stream=client_stream) as wss:
            readable, writable, *_ = await wss.opened
            await writable.send("hi")
            await readable.receive()
    assert (stats.connections_accepted, stats.connections_open) == (1, 0)
    assert stats.messages_sent == 1


async def test_statistics_must_be_a_server_statistics() -> None:
    with pytest.raises(TypeError, match="ServerStatistics"):
        await wsstream.serve(echo_handler, "127.0.0.1", 0, statistics={})  # type: ignore[arg-type]


async def test_refusals_linger_a_bounded_time_and_are_bounded_in_number(
    server: Server, mock_clock: trio.testing.MockClock
) -> None:
    # Trio's clock stands still unless the test moves it: lingering refusals
    # last until it does.
    url = await server.start(echo_handler, max_connections=1)
    host, port = address_of(url)
    held = await trio.open_tcp_stream(host, port)
    await trio.testing.wait_all_tasks_blocked()
    # Clients that read their 503 but never close: each refusal lingers.
    lingering = []
    for _ in range(MIN_REFUSALS):
        stream = await trio.open_tcp_stream(host, port)
        assert (await read_head(stream)).startswith(b"HTTP/1.1 503 ")
        lingering.append(stream)
    await trio.testing.wait_all_tasks_blocked()
    # One more: too many refusals in progress, closed with no answer.
    async with await trio.open_tcp_stream(host, port) as extra:
        assert await read_all(extra) == b""
    # Once the refusals' time is up, they end, and a refusal answers again.
    mock_clock.jump(REFUSAL_TIMEOUT)
    await trio.testing.wait_all_tasks_blocked()
    async with await trio.open_tcp_stream(host, port) as again:
        assert (await read_all(again)).startswith(b"HTTP/1.1 503 ")
    for stream in [held, *lingering]:
        await stream.aclose()
