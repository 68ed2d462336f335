"""The engine over trio memory streams, against a hand-scripted peer.

Each test controls the exact bytes on the wire; timeouts run on trio's
MockClock (``autojump_clock``), so no test waits in real time.
"""

from __future__ import annotations

import struct
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
import trio
import trio.testing

import wsstream
from tests.peer import BINARY, CLOSE, CONT, PING, PONG, TEXT, Peer, build_frame


@asynccontextmanager
async def open_client(
    *, lockstep: bool = False, **options: Any
) -> AsyncIterator[tuple[wsstream.WebSocketStream, Peer]]:
    if lockstep:
        ours, theirs = trio.testing.lockstep_stream_pair()
    else:
        ours, theirs = trio.testing.memory_stream_pair()
    peer = Peer(theirs, is_client=False)
    options.setdefault("ping_interval", None)
    options.setdefault("compression", None)
    with trio.fail_after(300):  # virtual seconds under autojump_clock
        async with wsstream.WebSocketStream("ws://test/", stream=ours, **options) as wss:
            await peer.accept()
            await wss.opened
            try:
                yield wss, peer
            finally:
                # The server ends TCP first (RFC 6455 7.1.1): don't make the
                # client wait for it until close_timeout.
                await theirs.aclose()


async def test_close_timeout_drops_a_silent_peer_with_1006(autojump_clock: Any) -> None:
    async with open_client(close_timeout=7) as (wss, peer):
        start = trio.current_time()
        wss.close(1000)
        assert await peer.expect_close() == (1000, "")
        with pytest.raises(wsstream.WebSocketError) as info:
            await wss.closed
        assert info.value.close_code == 1006
        assert trio.current_time() - start == pytest.approx(7)


async def test_open_timeout_gives_handshake_error(autojump_clock: Any) -> None:
    ours, _theirs = trio.testing.memory_stream_pair()
    async with wsstream.WebSocketStream("ws://test/", stream=ours, open_timeout=3) as wss:
        with pytest.raises(wsstream.HandshakeError) as info:
            await wss.opened
        assert info.value.close_code == 1006
        assert "timed out" in str(info.value)
        assert trio.current_time() == pytest.approx(3)
        with pytest.raises(wsstream.HandshakeError) as again:
            await wss.closed
        assert again.value is info.value


async def test_invalid_utf8_fails_with_1007_and_every_call_raises_the_same_error() -> None:
    async with open_client() as (wss, peer):
        readable, writable, *_ = await wss.opened
        await peer.send(TEXT, b"ok")
        await peer.send(TEXT, b"\xff")
        assert await readable.receive() == "ok"
        assert (await peer.expect_close())[0] == 1007
        await peer.send_close(1007)
        await peer.stream.aclose()
        with pytest.raises(wsstream.WebSocketError) as info:
            await wss.closed
        assert info.value.close_code == 1007
        with pytest.raises(wsstream.WebSocketError) as on_receive:
            await readable.receive()
        with pytest.raises(wsstream.WebSocketError) as on_send:
            await writable.send("x")
        assert on_receive.value is info.value is on_send.value


async def test_invalid_utf8_in_the_first_fragment_fails_before_the_message_ends() -> None:
    async with open_client() as (wss, peer):
        await peer.send(TEXT, "κ".encode() + b"\xff", fin=False)
        # No continuation is ever sent: the failure must come from the first frame.
        assert (await peer.expect_close())[0] == 1007


async def test_utf8_split_across_fragments_is_reassembled() -> None:
    async with open_client() as (wss, peer):
        readable, *_ = await wss.opened
        data = "héllo wörld ✓".encode()
        await peer.send(TEXT, data[:2], fin=False)
        for i in range(2, len(data)):
            await peer.send(CONT, data[i : i + 1], fin=i == len(data) - 1)
        assert await readable.receive() == "héllo wörld ✓"
        await peer.send(BINARY, b"ab", fin=False)
        await peer.send(CONT, b"", fin=False)
        await peer.send(CONT, b"cd", fin=True)
        assert await readable.receive() == b"abcd"


async def test_message_over_max_message_size_fails_with_1009() -> None:
    async with open_client(max_message_size=100) as (wss, peer):
        readable, *_ = await wss.opened
        await peer.send(BINARY, b"x" * 60, fin=False)
        await peer.send(CONT, b"x" * 60, fin=True)
        # Held until the next read decides (docs/large-messages.md): a
        # receive() cannot take it whole, so it fails the connection.
        with pytest.raises(wsstream.WebSocketError) as read_error:
            await readable.receive()
        assert read_error.value.close_code == 1009
        assert (await peer.expect_close())[0] == 1009
        await peer.send_close(1009)
        await peer.stream.aclose()
        with pytest.raises(wsstream.WebSocketError) as info:
            await wss.closed
        assert info.value.close_code == 1009


async def test_reserved_opcode_fails_with_1002() -> None:
    async with open_client() as (wss, peer):
        await peer.send(0x3, b"")
        assert (await peer.expect_close())[0] == 1002


async def test_close_in_the_middle_of_a_fragmented_message_closes_cleanly() -> None:
    # Control frames may come between fragments (RFC 6455 5.4); a Close ends
    # the connection and the unfinished message is dropped (Autobahn 7.1.5).
    async with open_client() as (wss, peer):
        readable, *_ = await wss.opened
        await peer.send(TEXT, b"done")
        await peer.send(TEXT, b"part", fin=False)
        await peer.send_close(1000, "bye")
        assert await peer.expect_close() == (1000, "bye")
        await peer.stream.aclose()
        assert await wss.closed == (1000, "bye")
        assert await readable.receive() == "done"
        with pytest.raises(trio.EndOfChannel):
            await readable.receive()


async def test_pings_already_read_are_answered_while_the_user_does_not_read() -> None:
    async with open_client(read_limit=10) as (wss, peer):
        # The message fills the readable, so reading pauses after this chunk;
        # the ping came in the same chunk, so it is answered all the same.
        await peer.stream.send_all(build_frame(BINARY, b"x" * 100) + build_frame(PING, b"p1"))
        opcode, payload, _ = await peer.receive_frame()
        assert (opcode, payload) == (PONG, b"p1")


async def test_missing_pongs_do_not_count_while_reading_is_paused(autojump_clock: Any) -> None:
    async with open_client(read_limit=10, ping_interval=5, ping_timeout=5) as (wss, peer):
        readable, writable, *_ = await wss.opened
        await peer.send(BINARY, b"x" * 100)
        await trio.testing.wait_all_tasks_blocked()
        opcode, payload, _ = await peer.receive_frame()  # our keepalive ping
        assert opcode == PING
        await peer.send(PONG, payload)  # sits unread behind our backpressure
        await trio.sleep(30)
        assert await readable.receive() == b"x" * 100
        await writable.send("still open")
        opcode, payload, _ = await peer.receive_frame()
        while opcode == PING:
            await peer.send(PONG, payload)
            opcode, payload, _ = await peer.receive_frame()
        assert (opcode, payload) == (TEXT, b"still open")


async def test_keepalive_fails_a_silent_peer_with_1011(autojump_clock: Any) -> None:
    async with open_client(ping_interval=5, ping_timeout=3, close_timeout=2) as (wss, peer):
        assert (await peer.receive_frame())[0] == PING
        assert (await peer.expect_close())[0] == 1011
        with pytest.raises(wsstream.WebSocketError) as info:
            await wss.closed
        assert info.value.close_code == 1011
        assert trio.current_time() == pytest.approx(5 + 3 + 2)


async def test_ping_returns_the_round_trip_and_sets_latency(autojump_clock: Any) -> None:
    async with open_client() as (wss, peer):

        async def answer() -> None:
            opcode, payload, _ = await peer.receive_frame()
            assert opcode == PING
            await trio.sleep(0.25)
            await peer.send(PONG, payload)

        async with trio.open_nursery() as nursery:
            nursery.start_soon(answer)
            rtt = await wss.ping()
        assert rtt == pytest.approx(0.25)
        assert wss.latency == rtt
        assert wss.statistics().pongs_received == 1


async def test_a_peer_flooding_pings_without_reading_is_failed_with_1008(
    autojump_clock: Any,
) -> None:
    async with open_client(lockstep=True, close_timeout=1) as (wss, peer):
        # Never read our pongs: the flusher stays blocked on the first one,
        # and 2,000 pongs of 131 bytes are more than the 128 KiB allowed.
        for _ in range(2000):
            await peer.send(PING, b"p" * 125)
        with pytest.raises(wsstream.WebSocketError) as info:
            await wss.closed
        assert info.value.close_code == 1008


async def test_reading_pauses_at_read_limit_and_memory_stays_bounded() -> None:
    async with open_client(read_limit=1000) as (wss, peer):
        readable, *_ = await wss.opened
        for i in range(200):
            await peer.send(BINARY, bytes([i % 256]) * 100)
        await trio.testing.wait_all_tasks_blocked()
        buffered = wss.statistics().buffered_in
        assert 1000 <= buffered <= 1000 + 4096 + 100
        for i in range(200):
            assert await readable.receive() == bytes([i % 256]) * 100
        assert wss.statistics().buffered_in == 0


async def test_close_with_a_full_readable_still_completes_the_closing_handshake(
    autojump_clock: Any,
) -> None:
    async with open_client(read_limit=10, close_timeout=10) as (wss, peer):
        for _ in range(4):
            await peer.send(BINARY, b"z" * 100)
        await trio.testing.wait_all_tasks_blocked()
        start = trio.current_time()
        wss.close(3000, "bye")
        assert await peer.expect_close() == (3000, "bye")
        await peer.send(BINARY, b"late" * 10)  # in flight when our Close arrived
        await peer.send_close(3000, "bye")
        await peer.stream.aclose()
        assert await wss.closed == (3000, "bye")
        assert trio.current_time() - start < 10
        readable, *_ = await wss.opened
        assert await readable.receive() == b"z" * 100  # what was buffered is kept
        stats = wss.statistics()
        assert stats.messages_discarded >= 1  # what came over the limit was not


async def test_send_blocks_over_write_limit_until_the_peer_reads() -> None:
    async with open_client(lockstep=True, write_limit=1000) as (wss, peer):
        _, writable, *_ = await wss.opened
        await writable.send(b"a" * 2000)  # queued: the buffer was under the limit
        done = trio.Event()

        async def second() -> None:
            await writable.send(b"b")
            done.set()

        async with trio.open_nursery() as nursery:
            nursery.start_soon(second)
            await trio.testing.wait_all_tasks_blocked()
            assert not done.is_set()
            assert wss.statistics().buffered_out >= 2000
            assert await peer.receive_frame() == (BINARY, b"a" * 2000, True)
            assert await peer.receive_frame() == (BINARY, b"b", True)
        assert done.is_set()


async def test_a_cancelled_send_queues_nothing() -> None:
    async with open_client(lockstep=True, write_limit=10) as (wss, peer):
        _, writable, *_ = await wss.opened
        await writable.send(b"first" * 10)
        with trio.move_on_after(0.01) as scope:
            await writable.send(b"never")
        assert scope.cancelled_caught
        async with trio.open_nursery() as nursery:
            nursery.start_soon(writable.send, b"third")
            assert (await peer.receive_frame())[1] == b"first" * 10
            assert (await peer.receive_frame())[1] == b"third"


async def test_a_cancelled_receive_loses_no_message() -> None:
    async with open_client() as (wss, peer):
        readable, *_ = await wss.opened
        with trio.move_on_after(0.01):
            await readable.receive()
        await peer.send(TEXT, b"kept")
        assert await readable.receive() == "kept"


async def test_leaving_the_block_with_a_full_readable_closes_without_hanging() -> None:
    ours, theirs = trio.testing.memory_stream_pair()
    peer = Peer(theirs, is_client=False)
    seen: list[tuple[int | None, str]] = []

    async def answer_close() -> None:
        seen.append(await peer.expect_close())
        await peer.send_close(1000)
        await theirs.aclose()

    with trio.fail_after(5):
        async with trio.open_nursery() as nursery:
            async with wsstream.WebSocketStream(
                "ws://test/", stream=ours, read_limit=10, compression=None, ping_interval=None
            ) as wss:
                await peer.accept()
                await wss.opened
                for _ in range(50):
                    await peer.send(BINARY, b"y" * 100)
                await trio.testing.wait_all_tasks_blocked()
                assert wss.statistics().buffered_in >= 100
                nursery.start_soon(answer_close)
            # Unread messages were discarded, so our reader got to the reply.
            assert await wss.closed == (1000, "")
    assert seen == [(1000, "")]


async def test_server_answers_a_plain_http_request_with_an_error_response() -> None:
    ours, theirs = trio.testing.memory_stream_pair()
    called = []

    async def handler(wss: wsstream.WebSocketStream) -> None:
        called.append(wss)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(wsstream.serve_stream, handler, ours)
        await theirs.send_all(b"GET / HTTP/1.1\r\nHost: test\r\n\r\n")
        peer = Peer(theirs, is_client=True)
        status, headers = await peer.read_http()
        assert status.startswith("HTTP/1.1 426")
        assert headers["upgrade"].lower() == "websocket"
    assert called == []


async def test_server_process_request_rejects_with_the_users_response() -> None:
    ours, theirs = trio.testing.memory_stream_pair()

    def process_request(request: wsstream.Request) -> wsstream.Response | None:
        if request.headers.get("Authorization") != "Bearer ok":
            return wsstream.Response(401, {"WWW-Authenticate": "Bearer"}, b"no")
        return None

    async def handler(wss: wsstream.WebSocketStream) -> None:
        raise AssertionError("must not run")

    async with trio.open_nursery() as nursery:
        nursery.start_soon(
            lambda: wsstream.serve_stream(handler, ours, process_request=process_request)
        )
        peer = Peer(theirs, is_client=True)
        status = await peer.handshake("/")
        assert status.startswith("HTTP/1.1 401")
        assert await peer.read_exact(2) == b"no"


async def test_handler_return_closes_1000_and_exception_closes_1011(
    caplog: pytest.LogCaptureFixture,
) -> None:
    for fails, code in [(False, 1000), (True, 1011)]:
        ours, theirs = trio.testing.memory_stream_pair()

        async def handler(wss: wsstream.WebSocketStream, fails: bool = fails) -> None:
            readable, *_ = await wss.opened
            assert await readable.receive() == "hi"
            assert wss.request is not None and wss.request.path == "/p?q=1"
            if fails:
                raise RuntimeError("handler bug")

        async with trio.open_nursery() as nursery:
            nursery.start_soon(
                lambda stream=ours: wsstream.serve_stream(handler, stream, compression=None)
            )
            peer = Peer(theirs, is_client=True)
            assert (await peer.handshake("/p?q=1")).startswith("HTTP/1.1 101")
            await peer.send(TEXT, b"hi")
            assert await peer.expect_close() == (code, "")
            await peer.send_close(code)
            await peer.expect_eof()  # the server ends TCP first
            await theirs.aclose()
    assert "handler bug" in caplog.text


async def test_close_frame_with_a_one_byte_body_is_a_protocol_error() -> None:
    async with open_client() as (wss, peer):
        await peer.send(CLOSE, b"\x03")
        assert (await peer.expect_close())[0] == 1002


async def test_close_with_invalid_code_from_peer_is_a_protocol_error() -> None:
    async with open_client() as (wss, peer):
        await peer.send(CLOSE, struct.pack("!H", 1005))
        assert (await peer.expect_close())[0] == 1002


async def test_send_after_the_peer_dropped_right_after_the_handshake_raises_1006() -> None:
    ours, theirs = trio.testing.memory_stream_pair()
    peer = Peer(theirs, is_client=False)
    async with wsstream.WebSocketStream(
        "ws://test/", stream=ours, compression=None, ping_interval=None
    ) as wss:
        await peer.accept()
        await theirs.aclose()  # no Close frame: the TCP connection just ends
        _, writable, *_ = await wss.opened
        await trio.testing.wait_all_tasks_blocked()
        with pytest.raises(wsstream.WebSocketError) as on_send:
            await writable.send("too late")
        with pytest.raises(wsstream.WebSocketError) as on_closed:
            await wss.closed
        assert on_send.value is on_closed.value
        assert on_closed.value.close_code == 1006


async def test_outside_cancellation_sends_1001_even_if_the_body_pauses_while_unwinding() -> None:
    ours, theirs = trio.testing.memory_stream_pair()
    peer = Peer(theirs, is_client=False)
    with trio.CancelScope() as scope:
        async with wsstream.WebSocketStream(
            "ws://test/", stream=ours, compression=None, ping_interval=None
        ) as wss:
            await peer.accept()
            await wss.opened
            # The engine's task sees the cancellation before our __aexit__ runs.
            async with trio.open_nursery() as inner:
                inner.start_soon(trio.sleep_forever)
                scope.cancel()
    assert await peer.expect_close() == (1001, "")
    with pytest.raises(wsstream.WebSocketError):
        await wss.closed


async def test_server_answers_a_malformed_request_with_400() -> None:
    ours, theirs = trio.testing.memory_stream_pair()

    async def handler(wss: wsstream.WebSocketStream) -> None:
        raise AssertionError("must not run")

    async with trio.open_nursery() as nursery:
        nursery.start_soon(wsstream.serve_stream, handler, ours)
        await theirs.send_all(b"NOT HTTP AT ALL\r\n\r\n")
        status, headers = await Peer(theirs, is_client=True).read_http()
        assert status.startswith("HTTP/1.1 400")
        assert headers["connection"] == "close"
