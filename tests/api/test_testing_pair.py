"""wsstream.testing: the in-memory client/server pair for users' handler tests.

Every test runs under autojump_clock, as a user's would: what takes time
takes virtual time, and the assertions are on trio's clock.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any

import pytest
import trio
import trio.testing

import wsstream
import wsstream.testing
from wsstream.testing import open_pair


async def echo(wss: wsstream.WebSocketStream) -> None:
    readable, writable, *_ = await wss.opened
    async for message in readable:
        await writable.send(message)


class HandlerBug(Exception):
    pass


# -- options -----------------------------------------------------------------


async def test_default_options_echo_over_permessage_deflate(autojump_clock: Any) -> None:
    async with open_pair(echo) as wss:
        readable, writable, extensions, protocol = await wss.opened
        assert extensions.startswith("permessage-deflate")
        assert protocol == ""
        await writable.send("hello")
        await writable.send(b"\x00\xff" * 1000)
        assert await readable.receive() == "hello"
        assert await readable.receive() == b"\x00\xff" * 1000
    assert await wss.closed == (1000, "")
    assert trio.current_time() == 0


@pytest.mark.parametrize("side", ["client", "server"])
async def test_compression_off_on_either_side_negotiates_no_extension(
    autojump_clock: Any, side: str
) -> None:
    client_options: dict[str, Any] = {"compression": None} if side == "client" else {}
    server_options = {"compression": None} if side == "server" else {}
    pair = open_pair(echo, server_options=server_options, **client_options)
    async with pair as wss:
        _, writable, extensions, _ = await wss.opened
        assert extensions == ""
        assert (await (await pair.server).opened).extensions == ""
        await writable.send("plain")


async def test_subprotocols_are_chosen_by_the_servers_rule(autojump_clock: Any) -> None:
    pair = open_pair(
        echo, protocols=["v2", "v1"], server_options={"subprotocols": ["v1", "v2"]}
    )
    async with pair as wss:
        # The client's preference wins among those the server supports.
        assert (await wss.opened).protocol == "v2"
        assert (await (await pair.server).opened).protocol == "v2"


async def test_the_servers_max_message_size_fails_the_handlers_connection_with_1009(
    autojump_clock: Any,
) -> None:
    seen: list[int | None] = []

    async def handler(wss: wsstream.WebSocketStream) -> None:
        readable, *_ = await wss.opened
        try:
            await readable.receive()
        except wsstream.WebSocketError as exc:
            seen.append(exc.close_code)

    async with open_pair(handler, server_options={"max_message_size": 100}) as wss:
        _, writable, *_ = await wss.opened
        await writable.send(b"x" * 101)
        closed = await wss.closed
    assert closed.close_code == 1009
    assert seen == [1009]


async def test_the_servers_read_limit_bounds_what_the_handler_has_not_read(
    autojump_clock: Any,
) -> None:
    release = trio.Event()
    received: list[wsstream.Message] = []

    async def handler(wss: wsstream.WebSocketStream) -> None:
        readable, *_ = await wss.opened
        await release.wait()
        async for message in readable:
            received.append(message)

    options = {"compression": None, "read_limit": 1000}
    pair = open_pair(handler, server_options=options, compression=None)
    async with pair as wss:
        _, writable, *_ = await wss.opened
        for _ in range(50):
            await writable.send(b"y" * 100)
        await trio.testing.wait_all_tasks_blocked()
        server = await pair.server
        # Reading stopped at the limit (1000 bytes of payload) plus at most
        # one message; the rest waits in the memory stream.
        assert 10 <= server.statistics().messages_received <= 11
        release.set()
        while len(received) < 50:
            await trio.testing.wait_all_tasks_blocked()
            await trio.sleep(1)
    assert received == [b"y" * 100] * 50


async def test_the_request_reaches_the_handler_with_the_chosen_remote_address(
    autojump_clock: Any,
) -> None:
    pair = open_pair(
        echo, "/chat?room=1", remote_address=("203.0.113.7", 4242),
        headers={"Authorization": "Bearer t"}, origin="https://app.example",
    )
    async with pair as wss:
        await wss.opened
        server = await pair.server
        assert server.request is not None
        assert server.request.path == "/chat?room=1"
        assert server.request.headers["authorization"] == "Bearer t"
        assert server.request.headers["Origin"] == "https://app.example"
        assert server.request.remote_address == ("203.0.113.7", 4242)
        assert server.remote_address == ("203.0.113.7", 4242)
        assert server.url == wss.url == "ws://localhost/chat?room=1"
        assert wss.remote_address is None  # the client's stream has no socket


async def test_the_default_remote_address_has_a_tcp_peers_shape(autojump_clock: Any) -> None:
    pair = open_pair(echo)
    async with pair as wss:
        await wss.opened
        host, port = (await pair.server).remote_address  # type: ignore[misc]
    assert (host, port) == wsstream.testing.DEFAULT_REMOTE_ADDRESS


async def test_a_handshake_refused_by_the_server_never_runs_the_handler(
    autojump_clock: Any,
) -> None:
    async def handler(wss: wsstream.WebSocketStream) -> None:
        raise AssertionError("must not run")

    def process_request(request: wsstream.Request) -> wsstream.Response:
        return wsstream.Response(401, {"WWW-Authenticate": "Bearer"}, b"who are you?")

    pair = open_pair(handler, server_options={"process_request": process_request})
    async with pair as wss:
        with pytest.raises(wsstream.HandshakeError) as info:
            await wss.opened
        assert (info.value.status, info.value.body) == (401, b"who are you?")
        with pytest.raises(wsstream.HandshakeError) as on_server:
            await pair.server
        assert on_server.value is info.value


# -- how the handler ends ----------------------------------------------------


async def test_a_handler_that_returns_closes_cleanly_with_1000(autojump_clock: Any) -> None:
    async def handler(wss: wsstream.WebSocketStream) -> None:
        _, writable, *_ = await wss.opened
        await writable.send("bye")

    async with open_pair(handler) as wss:
        readable, *_ = await wss.opened
        assert [message async for message in readable] == ["bye"]
        assert await wss.closed == (1000, "")


async def test_a_handler_that_raises_closes_1011_and_the_block_raises_its_exception(
    autojump_clock: Any, caplog: pytest.LogCaptureFixture
) -> None:
    async def handler(wss: wsstream.WebSocketStream) -> None:
        readable, *_ = await wss.opened
        raise HandlerBug(await readable.receive())

    with pytest.raises(HandlerBug, match="boom") as info:
        async with open_pair(handler) as wss:
            _, writable, *_ = await wss.opened
            await writable.send("boom")
            # What the client sees first: the server's 1011.
            assert await wss.closed == (1011, "")
    # The handler's own traceback, not one of the pair's.
    assert info.traceback[-1].name == "handler"
    assert "the handler raised; closing with 1011" in caplog.text


async def test_a_handler_ended_by_the_connections_end_has_not_failed(
    autojump_clock: Any, caplog: pytest.LogCaptureFixture
) -> None:
    ended: list[BaseException] = []

    async def handler(wss: wsstream.WebSocketStream) -> None:
        _, writable, *_ = await wss.opened
        try:
            while True:  # a feed that only stops when sending fails
                await writable.send("tick")
                await trio.sleep(1)
        except BaseException as exc:
            ended.append(exc)
            raise

    async with open_pair(handler) as wss:
        readable, writable, *_ = await wss.opened
        assert await readable.receive() == "tick"
        await writable.abort()  # the client leaves abruptly (1006 for both)
    assert len(ended) == 1 and isinstance(ended[0], trio.BrokenResourceError)
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


async def test_when_the_body_raises_the_handler_is_cancelled_and_the_body_error_wins(
    autojump_clock: Any,
) -> None:
    cancelled: list[bool] = []

    async def handler(wss: wsstream.WebSocketStream) -> None:
        await wss.opened
        try:
            await trio.sleep_forever()
        except trio.Cancelled:
            cancelled.append(True)
            raise

    error = AssertionError("the test failed")
    with pytest.raises(AssertionError) as info:
        async with open_pair(handler) as wss:
            await wss.opened
            raise error
    assert info.value is error
    assert not hasattr(info.value, "__notes__")  # the handler did not fail
    assert cancelled == [True]
    assert trio.current_time() == 0


async def test_when_both_the_body_and_the_handler_fail_the_body_error_notes_the_handlers(
    autojump_clock: Any,
) -> None:
    async def handler(wss: wsstream.WebSocketStream) -> None:
        await wss.opened
        raise HandlerBug("the cause")

    with pytest.raises(AssertionError) as info:
        async with open_pair(handler) as wss:
            readable, *_ = await wss.opened
            assert [m async for m in readable] == ["a message the handler never sent"]
    assert "HandlerBug('the cause')" in "\n".join(info.value.__notes__)


async def test_a_handler_that_does_not_return_fails_after_handler_timeout(
    autojump_clock: Any,
) -> None:
    cancelled: list[float] = []

    async def handler(wss: wsstream.WebSocketStream) -> None:
        await wss.opened
        try:
            await trio.sleep_forever()
        finally:
            cancelled.append(trio.current_time())

    with pytest.raises(trio.TooSlowError, match="did not return within 3 s"):
        async with open_pair(handler, handler_timeout=3) as wss:
            await wss.opened
    assert cancelled == [3]


async def test_handler_timeout_none_waits_as_long_as_the_handler_takes(
    autojump_clock: Any,
) -> None:
    done: list[float] = []

    async def handler(wss: wsstream.WebSocketStream) -> None:
        await wss.closed
        await trio.sleep(3600)  # clean-up that takes an hour
        done.append(trio.current_time())

    async with open_pair(handler, handler_timeout=None) as wss:
        await wss.opened
    assert done == [3600]


# -- cancellation ------------------------------------------------------------


async def test_cancelling_the_block_cancels_the_handler_and_ends_both_sides(
    autojump_clock: Any,
) -> None:
    handler_saw: list[str] = []

    async def handler(wss: wsstream.WebSocketStream) -> None:
        readable, *_ = await wss.opened
        try:
            await readable.receive()
        except trio.Cancelled:
            handler_saw.append("cancelled")
            raise

    with trio.move_on_after(5) as scope:
        async with open_pair(handler) as wss:
            await wss.opened
            await trio.sleep_forever()
    assert scope.cancelled_caught
    assert handler_saw == ["cancelled"]
    with pytest.raises(wsstream.WebSocketError):
        await wss.closed
    assert trio.current_time() == 5


async def test_a_pre_aborted_signal_ends_the_pair_at_once(autojump_clock: Any) -> None:
    signal = trio.Event()
    signal.set()
    pair = open_pair(echo, signal=signal)
    async with pair as wss:
        with pytest.raises(wsstream.AbortError):
            await wss.opened
    with pytest.raises(wsstream.AbortError):
        await pair.server
    assert trio.current_time() == 0


# -- virtual time ------------------------------------------------------------


async def test_keepalive_runs_in_virtual_time(autojump_clock: Any) -> None:
    # Seventy seconds of keepalive: pings at 20, 40 and 60 each way, no
    # real time.
    options = {"ping_interval": 20, "ping_timeout": 5}
    pair = open_pair(echo, server_options=options, **options)
    async with pair as wss:
        readable, writable, *_ = await wss.opened
        server = await pair.server
        await trio.sleep(70)
        assert trio.current_time() == 70
        assert wss.statistics().pings_sent == 3
        assert wss.statistics().pongs_received == 3
        assert server.statistics().pings_sent == 3
        await writable.send("still open")
        assert await readable.receive() == "still open"


async def test_close_timeout_runs_in_virtual_time(autojump_clock: Any) -> None:
    # The server's reading is paused by its read_limit (its handler does not
    # read), so the client's Close stays unread: the client gives up after
    # its close_timeout, 5 virtual seconds.
    release = trio.Event()

    async def handler(wss: wsstream.WebSocketStream) -> None:
        readable, *_ = await wss.opened
        await release.wait()
        async for _ in readable:
            pass

    options = {"compression": None, "read_limit": 100}
    async with open_pair(
        handler, server_options=options, close_timeout=5, compression=None
    ) as wss:
        _, writable, *_ = await wss.opened
        for _ in range(5):
            await writable.send(b"z" * 100)
        wss.close(1000)
        with pytest.raises(wsstream.WebSocketError) as info:
            await wss.closed
        assert info.value.close_code == 1006
        assert trio.current_time() == 5
        release.set()


# -- arguments ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"path": "chat"}, ValueError),
        ({"path": b"/"}, TypeError),
        ({"path": "/#fragment"}, ValueError),
        ({"handler_timeout": 0}, ValueError),
        ({"handler_timeout": "10"}, TypeError),
        ({"stream": trio.testing.memory_stream_pair()[0]}, TypeError),
        ({"protocols": "chat"}, TypeError),
        ({"read_limit": -1}, ValueError),
        ({"server_options": {"no_such_option": 1}}, TypeError),
        ({"server_options": {"stream": None}}, TypeError),
        ({"server_options": {"read_limit": -1}}, ValueError),
        ({"server_options": {"compression": "brotli"}}, ValueError),
    ],
)
def test_bad_arguments_raise_at_once(kwargs: dict[str, Any], error: type[Exception]) -> None:
    with pytest.raises(error):
        open_pair(echo, **kwargs)


def test_a_handler_must_be_callable() -> None:
    with pytest.raises(TypeError):
        open_pair("not a handler")  # type: ignore[arg-type]


async def test_a_bad_server_handshake_option_is_raised_by_the_block(
    autojump_clock: Any,
) -> None:
    with pytest.raises(TypeError, match="subprotocols"):
        async with open_pair(echo, server_options={"subprotocols": "chat"}) as wss:
            await wss.opened


async def test_a_pair_is_entered_once_and_its_server_awaited_inside(
    autojump_clock: Any,
) -> None:
    pair = open_pair(echo)
    assert isinstance(pair.client, wsstream.WebSocketStream)
    with pytest.raises(wsstream.InvalidStateError):
        await pair.server
    async with pair as wss:
        assert wss is pair.client
        with pytest.raises(RuntimeError):
            await pair.__aenter__()


# -- the guide ---------------------------------------------------------------


def test_the_guides_tests_pass() -> None:
    """docs/testing.md's Python blocks, in order, are one test module; each
    of its tests passes with a MockClock that autojumps, as pytest-trio's
    ``autojump_clock`` runs it."""
    path = Path(__file__).resolve().parent.parent.parent / "docs" / "testing.md"
    text = path.read_text()
    # Each block at its own line, so that a failure points into the page.
    lines = [""] * text.count("\n")
    for match in re.finditer(r"^```python\n(.*?)^```", text, re.MULTILINE | re.DOTALL):
        first = text.count("\n", 0, match.start(1))
        for offset, line in enumerate(match.group(1).splitlines()):
            lines[first + offset] = line
    namespace: dict[str, Any] = {"__name__": "testing_guide"}
    exec(compile("\n".join(lines), str(path), "exec"), namespace)
    tests = {name: f for name, f in namespace.items() if name.startswith("test_")}
    assert len(tests) == 6
    for test in tests.values():
        clock = trio.testing.MockClock(autojump_threshold=0)
        trio.run(test, clock, clock=clock)
