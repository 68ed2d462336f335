"""API.md section 1, "Rules taken from the browser": the rules the WPT
translations (tests/api/test_wpt_*.py) do not already pin.

Network cases run over ws:// and wss:// through the ``wpt`` fixture.
"""

from __future__ import annotations

import traceback
from typing import Any

import pytest
import trio
import trio.testing

import wsstream
from tests.wpt_handlers import (
    ECHO_OPTIONS,
    HandshakeGate,
    MiB,
    WptServer,
    abrupt_close,
    echo,
    not_found,
)

# -- URL ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "normalised"),
    [
        ("ws://127.0.0.1:8765/chat", "ws://127.0.0.1:8765/chat"),
        ("http://127.0.0.1:8765/chat", "ws://127.0.0.1:8765/chat"),
        ("https://127.0.0.1:8765/chat", "wss://127.0.0.1:8765/chat"),
        ("wss://example.com", "wss://example.com/"),
        ("HTTP://Example.COM:80/a?b=c", "ws://example.com/a?b=c"),
        ("https://example.com:443/", "wss://example.com/"),
        ("ws://example.com:443/", "ws://example.com:443/"),
        ("ws://[::1]:9000/x", "ws://[::1]:9000/x"),
        ("ws://example.com/path?q=1&r=%20", "ws://example.com/path?q=1&r=%20"),
    ],
)
def test_url_is_normalised_and_http_schemes_map_to_ws(url: str, normalised: str) -> None:
    assert wsstream.WebSocketStream(url).url == normalised


@pytest.mark.parametrize(
    "url",
    [
        "ws://example.com/#fragment",
        "ws://example.com/#",
        "wss://example.com/path?q#f",
        "ftp://example.com/",
        "file:///etc/passwd",
        "example.com/chat",
        "",
        "ws://",
        "ws://example.com:port/",
        "ws://[::1/",
        "ws://exa mple.com/",
    ],
)
def test_fragment_other_scheme_or_garbage_url_raises_value_error(url: str) -> None:
    with pytest.raises(ValueError):
        wsstream.WebSocketStream(url)


def test_constructor_does_no_io() -> None:
    # Nothing listens on port 9; construction outside trio must still work.
    wss = wsstream.WebSocketStream("ws://127.0.0.1:9/")
    assert not wss.opened.settled
    assert not wss.closed.settled


# -- protocols -----------------------------------------------------------------


@pytest.mark.parametrize("protocols", ["chat", b"chat", 42, None])
def test_protocols_not_a_sequence_of_str_raise_type_error(protocols: Any) -> None:
    with pytest.raises(TypeError):
        wsstream.WebSocketStream("ws://127.0.0.1/", protocols=protocols)


def test_protocols_with_a_non_str_item_raise_type_error() -> None:
    with pytest.raises(TypeError):
        wsstream.WebSocketStream("ws://127.0.0.1/", protocols=["chat", 1])  # type: ignore[list-item]


@pytest.mark.parametrize(
    "protocols",
    [["chat", "chat"], ["a b"], [""], ["a,b"], ["caf\u00e9"], ["x\r\n"], ["(paren)"]],
)
def test_protocols_duplicate_or_not_a_token_raise_value_error(protocols: list[str]) -> None:
    with pytest.raises(ValueError):
        wsstream.WebSocketStream("ws://127.0.0.1/", protocols=protocols)


@pytest.mark.parametrize("protocols", [["v1", "v2.chat"], ("a", "b"), []])
def test_protocols_as_list_or_tuple_of_tokens_are_accepted(protocols: Any) -> None:
    wsstream.WebSocketStream("ws://127.0.0.1/", protocols=protocols)


# -- close() -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "error"),
    [
        ((True,), TypeError),
        ((1000.0,), TypeError),
        (("1000",), TypeError),
        ((1000, b"bytes"), TypeError),
        ((1001,), ValueError),
        ((1005,), ValueError),
        ((1006,), ValueError),
        ((1015,), ValueError),
        ((5000,), ValueError),
        ((1000, "x" * 124), ValueError),
        ((1000, "\N{ELECTRIC PLUG}" * 31), ValueError),  # 31 chars, 124 bytes
        ((1000, "\ud800"), ValueError),  # not encodable as UTF-8
    ],
)
async def test_close_validates_before_anything_else(
    wpt: WptServer, args: tuple[Any, ...], error: type[Exception]
) -> None:
    url = await wpt.serve(echo, **ECHO_OPTIONS) + "/echo"
    async with wpt.client(url) as wss:
        close: Any = wss.close
        # Before the handshake: a bad call does not abandon the connection.
        with pytest.raises(error):
            close(*args)
        readable, writable, *_ = await wss.opened
        # While open: nothing is closed either.
        with pytest.raises(error):
            close(*args)
        await writable.send("still open")
        assert await readable.receive() == "still open"
        wss.close(4000, "done")
        # Once closing, bad arguments still raise: validation comes first.
        with pytest.raises(error):
            close(*args)
        assert await wss.closed == (4000, "done")


def test_close_accepts_the_boundary_codes_and_a_123_byte_reason() -> None:
    for code in (1000, 3000, 4999):
        wsstream.WebSocketStream("ws://127.0.0.1/").close(code, "x" * 123)


class _RecordingEcho:
    """/echo that records what its own ``closed`` gave: the Close the client sent."""

    def __init__(self) -> None:
        self.outcome: Any = None
        self.done = trio.Event()

    async def __call__(self, wss: wsstream.WebSocketStream) -> None:
        readable, writable, *_ = await wss.opened
        async for message in readable:
            await writable.send(message)
        try:
            self.outcome = await wss.closed
        except wsstream.WebSocketError as exc:
            self.outcome = exc
        self.done.set()


@pytest.mark.parametrize(
    ("kwargs", "on_the_wire"),
    [
        ({}, (1005, "")),
        ({"reason": "bye"}, (1000, "bye")),
        ({"close_code": 3001}, (3001, "")),
        ({"close_code": 4000, "reason": "\u30ed\u30dc\u30c3\u30c8 \N{SLICE OF PIZZA}"},
         (4000, "\u30ed\u30dc\u30c3\u30c8 \N{SLICE OF PIZZA}")),
    ],
)
async def test_close_sends_the_code_and_reason_the_peer_sees(
    wpt: WptServer, kwargs: dict[str, Any], on_the_wire: tuple[int, str]
) -> None:
    server = _RecordingEcho()
    url = await wpt.serve(server) + "/echo"
    async with wpt.client(url) as wss:
        await wss.opened
        wss.close(**kwargs)
        assert await wss.closed == on_the_wire
    with trio.fail_after(10):
        await server.done.wait()
    assert server.outcome == on_the_wire


async def test_close_before_the_handshake_finished_rejects_both_with_the_same_error(
    wpt: WptServer,
) -> None:
    gate = HandshakeGate()
    url = await wpt.serve(echo, process_request=gate) + "/"
    async with wpt.client(url) as wss:
        await gate.request_seen.wait()  # the handshake is under way
        wss.close(1000, "never mind")
        with trio.fail_after(10):
            with pytest.raises(wsstream.WebSocketError) as opened_error:
                await wss.opened
            with pytest.raises(wsstream.WebSocketError) as closed_error:
                await wss.closed
    assert closed_error.value is opened_error.value
    assert not isinstance(opened_error.value, wsstream.AbortError)
    gate.release.set()


async def test_server_close_may_use_rfc6455_endpoint_codes(wpt: WptServer) -> None:
    async def going_away(wss: wsstream.WebSocketStream) -> None:
        await wss.opened
        with pytest.raises(ValueError):
            wss.close(1005)
        wss.close(1001, "going away")
        await wss.closed

    url = await wpt.serve(going_away) + "/"
    async with wpt.client(url) as wss:
        await wss.opened
        assert await wss.closed == (1001, "going away")


# -- how a connection ends -------------------------------------------------------


async def test_abrupt_drop_gives_1006_to_pending_receive_and_send_as_one_object(
    wpt: WptServer,
) -> None:
    peer = await wpt.raw(abrupt_close())
    errors: list[BaseException] = []
    async with wpt.client(peer.url + "/") as wss:
        readable, writable, *_ = await wss.opened

        async def pending_receive() -> None:
            try:
                await readable.receive()
            except wsstream.WebSocketError as exc:
                errors.append(exc)

        with trio.fail_after(10):
            async with trio.open_nursery() as nursery:
                nursery.start_soon(pending_receive)
                with pytest.raises(wsstream.WebSocketError) as closed_error:
                    await wss.closed
        with pytest.raises(wsstream.WebSocketError) as send_error:
            await writable.send("x")
        with pytest.raises(wsstream.WebSocketError) as receive_error:
            await readable.receive()
    assert closed_error.value.close_code == 1006
    assert errors == [closed_error.value]
    assert errors[0] is closed_error.value
    assert send_error.value is closed_error.value
    assert receive_error.value is closed_error.value
    assert isinstance(closed_error.value, trio.BrokenResourceError)


async def test_clean_close_ends_async_for_on_the_readable(wpt: WptServer) -> None:
    url = await wpt.serve(echo, **ECHO_OPTIONS) + "/echo"
    async with wpt.client(url) as wss:
        readable, writable, *_ = await wss.opened
        for text in ("a", "b", "Goodbye"):
            await writable.send(text)
        received = [message async for message in readable]  # server returns after Goodbye
        assert received == ["a", "b", "Goodbye"]
        assert await wss.closed == (1000, "")
        with pytest.raises(trio.EndOfChannel):
            await readable.receive()


async def test_send_after_this_side_closed_raises_closed_resource_error(
    wpt: WptServer,
) -> None:
    url = await wpt.serve(echo, **ECHO_OPTIONS) + "/echo"
    async with wpt.client(url) as wss:
        _, writable, *_ = await wss.opened
        wss.close()
        with pytest.raises(trio.ClosedResourceError):
            await writable.send("closing")
        assert await wss.closed == (1005, "")
        with pytest.raises(trio.ClosedResourceError):
            await writable.send("closed")


async def test_send_after_readable_cancel_raises_closed_resource_error(
    wpt: WptServer,
) -> None:
    url = await wpt.serve(echo, **ECHO_OPTIONS) + "/echo"
    async with wpt.client(url) as wss:
        readable, writable, *_ = await wss.opened
        await readable.aclose()
        with pytest.raises(trio.ClosedResourceError):
            await writable.send("x")
        with pytest.raises(trio.ClosedResourceError):
            await readable.receive()
        assert await wss.closed == (1005, "")


@pytest.mark.parametrize(
    "reason",
    [wsstream.AbortError(), wsstream.HandshakeError()],
    ids=["AbortError_1006", "HandshakeError_1006"],
)
@pytest.mark.parametrize("half", ["readable", "writable"])
async def test_websocket_error_with_reserved_code_as_reason_sends_close_without_body(
    wpt: WptServer, reason: wsstream.WebSocketError, half: str
) -> None:
    assert reason.close_code == 1006
    server = _RecordingEcho()
    url = await wpt.serve(server) + "/echo"
    async with wpt.client(url) as wss:
        readable, writable, *_ = await wss.opened
        if half == "readable":
            await readable.cancel(reason)
        else:
            await writable.abort(reason)
        assert await wss.closed == (1005, "")
    with trio.fail_after(10):
        await server.done.wait()
    assert server.outcome == (1005, "")


# -- opened / closed are promises ---------------------------------------------------


async def test_opened_and_closed_give_the_same_value_to_many_tasks_many_times(
    wpt: WptServer,
) -> None:
    url = await wpt.serve(echo, **ECHO_OPTIONS) + "/echo"
    seen: list[object] = []
    async with wpt.client(url) as wss:

        async def wait_both() -> None:
            for _ in range(3):
                seen.append(await wss.opened)
            for _ in range(3):
                seen.append(await wss.closed)

        async with trio.open_nursery() as nursery:
            for _ in range(5):
                nursery.start_soon(wait_both)  # awaiting before either settles
            info = await wss.opened
            wss.close(3000, "x")
        closed = await wss.closed
    assert seen.count(info) == 15 and seen.count(closed) == 15
    assert all(value is info or value is closed for value in seen)
    assert await wss.opened is info  # after the block, too
    assert await wss.closed is closed


async def test_rejected_opened_and_closed_raise_the_same_object_without_growing_tracebacks(
    wpt: WptServer,
) -> None:
    url = await wpt.serve(echo, process_request=not_found) + "/404"
    caught: list[BaseException] = []
    depths: list[int] = []
    async with wpt.client(url) as wss:

        async def wait_both() -> None:
            for promise in (wss.opened, wss.closed) * 3:
                try:
                    await promise
                except wsstream.HandshakeError as exc:
                    caught.append(exc)
                    depths.append(len(traceback.extract_tb(exc.__traceback__)))

        async with trio.open_nursery() as nursery:
            for _ in range(4):
                nursery.start_soon(wait_both)
    assert len(caught) == 24
    assert all(exc is caught[0] for exc in caught)
    assert max(depths) == min(depths)


# -- the async with ------------------------------------------------------------------


async def test_leaving_the_block_with_unread_messages_does_not_hang(wpt: WptServer) -> None:
    flooded = trio.Event()

    async def flood(wss: wsstream.WebSocketStream) -> None:
        _, writable, *_ = await wss.opened
        try:
            for _ in range(32):
                await writable.send(bytes(MiB))
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass
        flooded.set()
        await wss.closed

    url = await wpt.serve(flood, compression=None) + "/"
    async with wpt.client(url) as wss:
        await wss.opened
        # Let the readable fill up to read_limit and the reader pause.
        await trio.testing.wait_all_tasks_blocked(cushion=0.05)
        assert wss.statistics().buffered_in >= MiB
    # Left well within close_timeout (10 s): nothing was stuck behind backpressure.
    with trio.fail_after(5):
        assert await wss.closed == (1000, "")
        await flooded.wait()


async def test_body_exception_propagates_unchanged(wpt: WptServer) -> None:
    url = await wpt.serve(echo, **ECHO_OPTIONS) + "/echo"
    boom = ValueError("boom")
    with pytest.raises(ValueError) as error:
        async with wpt.client(url) as wss:
            await wss.opened
            raise boom
    assert error.value is boom
    assert not isinstance(error.value, BaseExceptionGroup)


async def test_body_exception_propagates_unchanged_after_a_failed_handshake(
    wpt: WptServer,
) -> None:
    url = await wpt.serve(echo, process_request=not_found) + "/404"
    boom = KeyError("boom")
    with pytest.raises(KeyError) as error:
        async with wpt.client(url) as wss:
            with pytest.raises(wsstream.HandshakeError):
                await wss.opened
            raise boom
    assert error.value is boom


async def test_connection_error_is_not_raised_by_the_block(wpt: WptServer) -> None:
    # The connection's own failure is reported through opened/closed only.
    url = await wpt.serve(echo, process_request=not_found) + "/404"
    async with wpt.client(url) as wss:
        await trio.testing.wait_all_tasks_blocked()
    # Whether the 404 or the close on leaving came first, closed tells.
    with pytest.raises(wsstream.WebSocketError):
        await wss.closed
    with pytest.raises(wsstream.WebSocketError):
        await wss.opened
