"""The classic ``WebSocket`` interface (wsstream._streams.classic): the browser's rules.

Network cases run against a wsstream server (or a scripted raw peer) on
loopback; protocol corners against tests/peer.py over trio memory streams,
with timeouts on trio's MockClock (``autojump_clock``).
"""

from __future__ import annotations

import struct
import urllib.parse
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
import trio
import trio.testing

import wsstream
from tests.conftest import Server, echo_handler
from tests.peer import BINARY, CLOSE, TEXT, Peer
from tests.wpt_handlers import WptServer, abrupt_close, not_found
from wsstream import CloseEvent, ErrorEvent, MessageEvent, OpenEvent, WebSocket

# -- helpers -------------------------------------------------------------------


async def all_events(ws: WebSocket) -> list[wsstream.WebSocketEvent]:
    return [event async for event in ws.events()]


def memory_client(
    *, lockstep: bool = False, **options: Any
) -> tuple[WebSocket, Peer]:
    """A WebSocket over a memory stream and the scripted server at its other end."""
    if lockstep:
        ours, theirs = trio.testing.lockstep_stream_pair()
    else:
        ours, theirs = trio.testing.memory_stream_pair()
    options.setdefault("ping_interval", None)
    options.setdefault("compression", None)
    return WebSocket("ws://test/", stream=ours, **options), Peer(theirs, is_client=False)


@asynccontextmanager
async def open_memory_client(
    *, lockstep: bool = False, **options: Any
) -> AsyncIterator[tuple[WebSocket, Peer]]:
    """Entered, handshake done, ``OpenEvent`` taken."""
    ws, peer = memory_client(lockstep=lockstep, **options)
    with trio.fail_after(300):  # virtual seconds under autojump_clock
        async with ws:
            await peer.accept()
            assert await anext(ws.events()) == OpenEvent()
            try:
                yield ws, peer
            finally:
                # The server ends TCP first (RFC 6455 7.1.1): don't make the
                # client wait for it until close_timeout.
                await peer.stream.aclose()


async def close_handler(wss: wsstream.WebSocketStream) -> None:
    """Closes with the code and reason in the query: /?4000&reason."""
    await wss.opened
    assert wss.request is not None
    code, _, reason = wss.request.path.partition("?")[2].partition("&")
    wss.close(int(code), urllib.parse.unquote(reason))
    await wss.closed


class Recorder:
    """A server handler that records what the client sent and how it closed."""

    def __init__(self) -> None:
        self.messages: list[str | bytes] = []
        self.closed: wsstream.CloseInfo | wsstream.WebSocketError | None = None
        self.done = trio.Event()

    async def __call__(self, wss: wsstream.WebSocketStream) -> None:
        readable, *_ = await wss.opened
        try:
            async for message in readable:
                self.messages.append(message)
            self.closed = await wss.closed
        except wsstream.WebSocketError as error:
            self.closed = error
        finally:
            self.done.set()


# -- constants and attributes ----------------------------------------------------


def test_ready_state_constants_have_the_browsers_values() -> None:
    assert (WebSocket.CONNECTING, WebSocket.OPEN, WebSocket.CLOSING, WebSocket.CLOSED) == (
        0, 1, 2, 3,
    )
    assert (wsstream.CONNECTING, wsstream.OPEN, wsstream.CLOSING, wsstream.CLOSED) == (
        0, 1, 2, 3,
    )
    assert wsstream.ReadyState(2) is wsstream.CLOSING is WebSocket.CLOSING


def test_constructor_validates_like_websocketstream_and_does_no_io() -> None:
    ws = WebSocket("http://127.0.0.1:9/chat", "chat")
    assert ws.url == "ws://127.0.0.1:9/chat"
    assert ws.ready_state == WebSocket.CONNECTING
    assert (ws.protocol, ws.extensions, ws.buffered_amount) == ("", "", 0)
    with pytest.raises(ValueError):
        WebSocket("ws://example.com/#fragment")
    with pytest.raises(ValueError):
        WebSocket("ws://example.com/", ["a", "a"])
    with pytest.raises(TypeError):
        WebSocket("ws://example.com/", [b"a"])  # type: ignore[list-item]
    with pytest.raises(TypeError):
        WebSocket("ws://example.com/", read_limt=5)


def test_binary_type_is_bytes_and_other_values_are_refused() -> None:
    ws = WebSocket("ws://example.com/")
    assert ws.binary_type == "bytes"
    ws.binary_type = "bytes"
    for value in ("arraybuffer", "blob", "bytearray", "memoryview"):
        with pytest.raises(ValueError):
            ws.binary_type = value
    with pytest.raises(TypeError):
        ws.binary_type = bytes  # type: ignore[assignment]
    assert ws.binary_type == "bytes"


def test_callbacks_must_be_callable_or_none() -> None:
    ws = WebSocket("ws://example.com/")
    assert (ws.on_open, ws.on_message, ws.on_error, ws.on_close) == (None, None, None, None)
    with pytest.raises(TypeError):
        ws.on_message = "print"
    ws.on_message = print
    assert ws.on_message is print
    ws.on_message = None
    assert ws.on_message is None


def test_send_before_entering_raises_invalid_state_error() -> None:
    ws = WebSocket("ws://example.com/")
    with pytest.raises(wsstream.InvalidStateError):
        ws.send("too early")
    assert isinstance(wsstream.InvalidStateError(), RuntimeError)


@pytest.mark.parametrize(
    ("code", "reason", "error"),
    [
        (999, "", ValueError),
        (1001, "", ValueError),
        (1005, "", ValueError),
        (1006, "", ValueError),
        (2999, "", ValueError),
        (5000, "", ValueError),
        (1000, "x" * 124, ValueError),
        (1000, "\u00e9" * 62, ValueError),  # 124 UTF-8 bytes
        (True, "", TypeError),
        (1000.0, "", TypeError),
        ("1000", "", TypeError),
        (1000, b"bye", TypeError),
    ],
)
async def test_close_validates_code_and_reason_like_the_browser_before_anything_else(
    code: Any, reason: Any, error: type[Exception]
) -> None:
    ws, _peer = memory_client()
    async with ws:
        with pytest.raises(error):
            ws.close(code, reason)
        assert ws.ready_state == WebSocket.CONNECTING  # nothing happened


# -- events in the browser's order, on loopback ------------------------------------


async def test_clean_close_by_the_client_gives_open_messages_close_in_order(
    echo_url: str,
) -> None:
    seen: list[tuple[wsstream.WebSocketEvent, int]] = []
    origin = "ws://" + echo_url.split("/")[2]
    async with WebSocket(echo_url) as ws:
        async for event in ws.events():
            seen.append((event, ws.ready_state))
            if isinstance(event, OpenEvent):
                ws.send("hello")
                ws.send(b"\x00\xff")
            elif event == MessageEvent(b"\x00\xff", origin):
                ws.close(3000, "bye")
                assert ws.ready_state == WebSocket.CLOSING
    assert seen == [
        (OpenEvent(), WebSocket.OPEN),
        (MessageEvent("hello", origin), WebSocket.OPEN),
        (MessageEvent(b"\x00\xff", origin), WebSocket.OPEN),
        (CloseEvent(3000, "bye", True), WebSocket.CLOSED),
    ]
    assert ws.ready_state == WebSocket.CLOSED


async def test_close_without_code_gives_1005_and_a_reason_alone_gives_1000(
    echo_url: str,
) -> None:
    async with WebSocket(echo_url) as ws:
        assert await anext(ws.events()) == OpenEvent()
        ws.close()
        assert await all_events(ws) == [CloseEvent(1005, "", True)]
    async with WebSocket(echo_url) as ws:
        assert await anext(ws.events()) == OpenEvent()
        ws.close(reason="done")
        assert await all_events(ws) == [CloseEvent(1000, "done", True)]


async def test_close_by_the_server_gives_its_code_and_utf8_reason_and_closing_state(
    server: Server,
) -> None:
    reason = "\u30ed\u30dc\u30c3\u30c8"
    url = await server.start(close_handler) + "/?4001&" + urllib.parse.quote(reason)
    async with WebSocket(url) as ws:
        events = await all_events(ws)
        assert ws.ready_state == WebSocket.CLOSED
    assert events == [OpenEvent(), CloseEvent(4001, reason, True)]


async def test_failed_handshake_gives_error_then_close_1006_and_no_open_event(
    server: Server,
) -> None:
    url = await server.start(echo_handler, process_request=not_found)
    async with WebSocket(url) as ws:
        error, close = await all_events(ws)
        assert ws.ready_state == WebSocket.CLOSED
    assert isinstance(error, ErrorEvent)
    assert isinstance(error.error, wsstream.HandshakeError)
    assert error.error.status == 404
    assert close == CloseEvent(1006, "", False)


async def test_connection_refused_gives_error_then_close_1006() -> None:
    with trio.socket.socket() as sock:
        await sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    async with WebSocket(f"ws://127.0.0.1:{port}/") as ws:
        events = await all_events(ws)
    assert [e.type for e in events] == ["error", "close"]
    assert events[1] == CloseEvent(1006, "", False)


async def test_tcp_dropped_without_close_gives_error_then_close_1006(
    wpt_ws: WptServer,
) -> None:
    raw = await wpt_ws.raw(abrupt_close())
    async with WebSocket(raw.url) as ws:
        open_, error, close = await all_events(ws)
    assert open_ == OpenEvent()
    assert isinstance(error, ErrorEvent)
    assert error.error.close_code == 1006
    assert close == CloseEvent(1006, "", False)


async def test_protocol_is_negotiated_and_a_single_string_is_one_protocol(
    server: Server,
) -> None:
    url = await server.start(echo_handler, subprotocols=["chat"])
    async with WebSocket(url, "chat") as ws:
        assert ws.protocol == ""
        assert await anext(ws.events()) == OpenEvent()
        assert ws.protocol == "chat"
        assert ws.extensions.startswith("permessage-deflate")
    async with WebSocket(url, ["v2", "chat"], compression=None) as ws:
        assert await anext(ws.events()) == OpenEvent()
        assert (ws.protocol, ws.extensions) == ("chat", "")


async def test_send_while_connecting_raises_invalid_state_error(echo_url: str) -> None:
    async with WebSocket(echo_url) as ws:
        assert ws.ready_state == WebSocket.CONNECTING
        with pytest.raises(wsstream.InvalidStateError):
            ws.send("too early")
        assert ws.buffered_amount == 0
        assert await anext(ws.events()) == OpenEvent()
        ws.send("now")
        assert await anext(ws.events()) == MessageEvent("now", "ws://" + echo_url.split("/")[2])


async def test_send_rejects_other_types_with_type_error(echo_url: str) -> None:
    async with WebSocket(echo_url) as ws:
        assert await anext(ws.events()) == OpenEvent()
        for value in (42, None, ["a"], 1.5):
            with pytest.raises(TypeError):
                ws.send(value)  # type: ignore[arg-type]
        assert ws.buffered_amount == 0


async def test_send_copies_buffers_and_replaces_lone_surrogates(echo_url: str) -> None:
    async with WebSocket(echo_url) as ws:
        assert await anext(ws.events()) == OpenEvent()
        buffer = bytearray(b"abc")
        ws.send(buffer)
        buffer[:] = b"xyz"
        ws.send(memoryview(b"\x01\x02\x03\x04").cast("H"))
        ws.send("a\ud800b\ud83d\ude00")  # a lone surrogate, then a pair
        got = [(await anext(ws.events())).data for _ in range(3)]  # type: ignore[union-attr]
    assert got == [b"abc", b"\x01\x02\x03\x04", "a\ufffdb\U0001f600"]


async def test_send_after_close_discards_and_grows_buffered_amount(server: Server) -> None:
    recorder = Recorder()
    url = await server.start(recorder)
    async with WebSocket(url) as ws:
        assert await anext(ws.events()) == OpenEvent()
        ws.send("kept")
        ws.close(1000)
        ws.send("12345")  # CLOSING: discarded, counted
        ws.send(b"\xe9")
        assert await all_events(ws) == [CloseEvent(1000, "", True)]
        ws.send("\u00e9")  # CLOSED: 2 UTF-8 bytes
        assert ws.buffered_amount == 5 + 1 + 2
    await recorder.done.wait()
    assert recorder.messages == ["kept"]


async def test_leaving_the_block_sends_queued_messages_then_closes_with_1000(
    server: Server,
) -> None:
    recorder = Recorder()
    url = await server.start(recorder)
    async with WebSocket(url) as ws:
        assert await anext(ws.events()) == OpenEvent()
        for i in range(3):
            ws.send(f"m{i}")
    assert ws.ready_state == WebSocket.CLOSED
    await recorder.done.wait()
    assert recorder.messages == ["m0", "m1", "m2"]
    assert recorder.closed == (1000, "")
    # The close event was kept for events(); the messages were not.
    assert await all_events(ws) == [CloseEvent(1000, "", True)]


async def test_a_body_exception_propagates_unchanged_and_the_server_sees_1011(
    server: Server,
) -> None:
    recorder = Recorder()
    url = await server.start(recorder)
    with pytest.raises(KeyError) as info:
        async with WebSocket(url) as ws:
            assert await anext(ws.events()) == OpenEvent()
            raise KeyError("mine")
    assert info.value.args == ("mine",)
    assert ws.ready_state == WebSocket.CLOSED
    await recorder.done.wait()
    assert recorder.closed == (1011, "")


# -- callbacks ---------------------------------------------------------------------


async def test_sync_and_async_callbacks_get_the_events_in_order(echo_url: str) -> None:
    log: list[tuple[str, int]] = []
    done = trio.Event()
    ws = WebSocket(echo_url)

    def on_open(event: OpenEvent) -> None:
        log.append(("open", ws.ready_state))
        ws.send("ping")

    async def on_message(event: MessageEvent) -> None:
        await trio.lowlevel.checkpoint()
        log.append((f"message {event.data!r}", ws.ready_state))
        ws.close(3001)

    def on_close(event: CloseEvent) -> None:
        log.append((f"close {event.code} {event.was_clean}", ws.ready_state))
        done.set()

    ws.on_open = on_open
    ws.on_message = on_message
    ws.on_close = on_close
    async with ws:
        await done.wait()
    assert log == [
        ("open", WebSocket.OPEN),
        ("message 'ping'", WebSocket.OPEN),
        ("close 3001 True", WebSocket.CLOSED),
    ]


async def test_an_event_with_a_callback_is_not_yielded_by_events(echo_url: str) -> None:
    messages: list[str | bytes] = []
    async with WebSocket(echo_url) as ws:
        def on_message(event: MessageEvent) -> None:
            messages.append(event.data)
            if event.data == "b":
                ws.close()

        ws.on_message = on_message
        assert await anext(ws.events()) == OpenEvent()
        ws.send("a")
        ws.send("b")
        assert await all_events(ws) == [CloseEvent(1005, "", True)]
    assert messages == ["a", "b"]


async def test_on_error_and_on_close_are_called_for_a_failed_handshake(
    server: Server,
) -> None:
    url = await server.start(echo_handler, process_request=not_found)
    log: list[str] = []
    ws = WebSocket(url)
    ws.on_error = lambda event: log.append(f"error {event.error.close_code}")
    ws.on_close = lambda event: log.append(f"close {event.code} {event.was_clean}")
    ws.on_open = lambda event: log.append("open")
    async with ws:
        assert await all_events(ws) == []
    assert log == ["error 1006", "close 1006 False"]


async def test_a_callback_exception_is_raised_by_the_block_and_closes_with_1011(
    server: Server,
) -> None:
    recorder = Recorder()
    url = await server.start(recorder)

    def on_open(event: OpenEvent) -> None:
        raise ZeroDivisionError("in a callback")

    with pytest.raises(ZeroDivisionError, match="in a callback"):
        async with WebSocket(url) as ws:
            ws.on_open = on_open
            await trio.sleep_forever()  # cancelled by the callback's failure
    await recorder.done.wait()
    assert recorder.closed == (1011, "")
    assert ws.ready_state == WebSocket.CLOSED


async def test_a_callback_exception_while_leaving_the_block_is_raised_by_it(
    echo_url: str,
) -> None:
    def on_close(event: CloseEvent) -> None:
        raise LookupError(event.code)

    with pytest.raises(LookupError) as info:
        async with WebSocket(echo_url) as ws:
            ws.on_close = on_close
            assert await anext(ws.events()) == OpenEvent()
    assert info.value.args == (1000,)
    assert ws.ready_state == WebSocket.CLOSED


# -- over memory streams ----------------------------------------------------------


async def test_buffered_amount_rises_with_send_and_falls_as_the_peer_reads() -> None:
    async with open_memory_client(lockstep=True, write_limit=0) as (ws, peer):
        assert ws.buffered_amount == 0
        ws.send(b"x" * 1000)
        assert ws.buffered_amount == 1000  # queued at once, nothing written
        ws.send("\u00e9" * 500)
        assert ws.buffered_amount == 2000
        await trio.testing.wait_all_tasks_blocked()
        # The first is in the engine (with its frame header and mask key, 8
        # bytes), blocked on the socket; the second waits in our queue.
        assert ws.buffered_amount == 2008
        assert await peer.receive_frame() == (BINARY, b"x" * 1000, True)
        await trio.testing.wait_all_tasks_blocked()
        assert ws.buffered_amount == 1008
        assert await peer.receive_frame() == (TEXT, "\u00e9".encode() * 500, True)
        await trio.testing.wait_all_tasks_blocked()
        assert ws.buffered_amount == 0
        ws.close()
        assert await peer.expect_close() == (None, "")
        await peer.send_close(None)
        await peer.stream.aclose()
        assert await all_events(ws) == [CloseEvent(1005, "", True)]


async def test_close_waits_for_queued_messages_at_most_close_timeout(
    autojump_clock: Any,
) -> None:
    async with open_memory_client(lockstep=True, write_limit=0, close_timeout=5) as (ws, peer):
        ws.send(b"a" * 100)
        ws.send(b"b" * 200)  # stuck behind the first: the peer reads nothing
        start = trio.current_time()
        ws.close(1000)
        error, close = await all_events(ws)
        assert isinstance(error, ErrorEvent)
        assert error.error.close_code == 1006
        assert close == CloseEvent(1006, "", False)
        # close_timeout for our queue, then close_timeout for the Close frame.
        assert trio.current_time() - start == pytest.approx(10)
        assert ws.buffered_amount == 200  # discarded, and it stays counted


async def test_close_while_connecting_gives_error_then_close_1006() -> None:
    ws, peer = memory_client()
    async with ws:
        await peer.read_http()  # the request arrived; no answer
        ws.close(1000)
        assert ws.ready_state == WebSocket.CLOSING
        ws.close(3000)  # does nothing
        error, close = await all_events(ws)
        assert ws.ready_state == WebSocket.CLOSED
    assert isinstance(error, ErrorEvent)
    assert error.error.close_code == 1006
    assert close == CloseEvent(1006, "", False)


async def test_a_failure_we_detect_gives_error_with_its_code_then_close_1006() -> None:
    async with open_memory_client() as (ws, peer):
        await peer.send(TEXT, b"\xff")
        code, reason = await peer.expect_close()
        assert (code, reason) == (1007, "invalid UTF-8: invalid start byte")
        await peer.send_close(1007)
        await peer.stream.aclose()
        error, close = await all_events(ws)
    assert isinstance(error, ErrorEvent)
    assert error.error.close_code == 1007
    assert close == CloseEvent(1006, "", False)


async def test_a_close_without_body_from_the_peer_gives_1005_and_closing_state() -> None:
    async with open_memory_client() as (ws, peer):
        await peer.send(TEXT, b"last")
        await peer.send_close(None)
        assert (await anext(ws.events())).data == "last"  # type: ignore[union-attr]
        assert await peer.expect_close() == (None, "")
        assert ws.ready_state in (WebSocket.CLOSING, WebSocket.CLOSED)
        await peer.stream.aclose()
        assert await all_events(ws) == [CloseEvent(1005, "", True)]


async def test_unconsumed_message_events_keep_the_readables_backpressure() -> None:
    sent = 0

    async def flood(peer: Peer) -> None:
        nonlocal sent
        for i in range(100):
            await peer.send(BINARY, bytes([i]) * 1000)
            sent += 1

    async with open_memory_client(lockstep=True, read_limit=4000) as (ws, peer):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(flood, peer)
            await trio.testing.wait_all_tasks_blocked()
            # Nobody iterates: the pump holds one event, the engine stops
            # reading at read_limit, and TCP (here: lockstep) stops the peer.
            assert sent < 20
            received = [(await anext(ws.events())).data for _ in range(100)]  # type: ignore[union-attr]
        assert received == [bytes([i]) * 1000 for i in range(100)]
        ws.close()
        await peer.expect_close()
        await peer.send_close(None)
        await peer.stream.aclose()


async def test_setting_on_message_takes_the_message_waiting_for_events() -> None:
    async with open_memory_client() as (ws, peer):
        got = trio.Event()
        await peer.send(TEXT, b"waiting")
        await trio.testing.wait_all_tasks_blocked()  # offered to events()

        def on_message(event: MessageEvent) -> None:
            assert event.data == "waiting"
            got.set()

        ws.on_message = on_message
        await got.wait()


async def test_events_left_unconsumed_do_not_hold_up_leaving_the_block() -> None:
    ws, peer = memory_client()
    closes: list[tuple[int | None, str]] = []

    async def answer_close() -> None:
        closes.append(await peer.expect_close())
        await peer.send_close(4000, "ok")
        await peer.stream.aclose()

    async with trio.open_nursery() as nursery, ws:
        await peer.accept()
        for i in range(3):
            await peer.send(TEXT, str(i).encode())
        await trio.testing.wait_all_tasks_blocked()
        nursery.start_soon(answer_close)
        # Leaving with three messages unread: the Close goes out at once.
    assert closes == [(1000, "")]
    assert ws.ready_state == WebSocket.CLOSED
    # What events() gives after the block: the events that are not messages.
    assert await all_events(ws) == [OpenEvent(), CloseEvent(4000, "ok", True)]


async def test_leaving_while_connecting_abandons_the_handshake() -> None:
    ws, peer = memory_client()
    async with ws:
        await peer.read_http()
    assert ws.ready_state == WebSocket.CLOSED
    error, close = await all_events(ws)
    assert isinstance(error, ErrorEvent)
    assert close == CloseEvent(1006, "", False)


async def test_leaving_by_cancellation_closes_forcefully_with_1001() -> None:
    ws, peer = memory_client()
    with trio.CancelScope() as scope:
        async with ws:
            await peer.accept()
            assert await anext(ws.events()) == OpenEvent()
            ws.send("queued")
            scope.cancel()
            await trio.sleep_forever()
    assert scope.cancelled_caught
    assert ws.ready_state == WebSocket.CLOSED
    assert await peer.expect_close() == (1001, "")


async def test_events_allows_one_waiting_task_at_a_time() -> None:
    async with open_memory_client() as (ws, peer):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(anext, ws.events())
            await trio.testing.wait_all_tasks_blocked()
            with pytest.raises(trio.BusyResourceError):
                await anext(ws.events())
            await peer.send(TEXT, b"x")
        ws.close()
        await peer.expect_close()
        await peer.send(CLOSE, struct.pack("!H", 1000))
        await peer.stream.aclose()
        assert await all_events(ws) == [CloseEvent(1000, "", True)]


async def test_a_cancelled_wait_on_events_takes_no_event() -> None:
    async with open_memory_client() as (ws, peer):
        with trio.move_on_after(0) as scope:
            await anext(ws.events())
        assert scope.cancelled_caught
        await peer.send(TEXT, b"kept")
        assert (await anext(ws.events())).data == "kept"  # type: ignore[union-attr]
