"""Regression: frames pipelined behind the opening request.

A client that does not wait for the 101 used to have its frames handled by
the core before the 101 went out: a pong on the wire before the response, a
Close never answered, a protocol error reported as a clean close. The server
now keeps what follows the request until the 101 is written (found by the
hostile-peer work).
"""
from typing import Any

import trio
import trio.testing

import wsstream
from tests.hostile import client_request, new_key
from tests.peer import CLOSE, PING, Peer, build_frame


async def _serve(data: bytes) -> tuple[str, list[tuple[int, bytes]]]:
    ours, theirs = trio.testing.memory_stream_pair()
    seen: list[tuple[int, bytes]] = []
    errors: list[wsstream.WebSocketError] = []

    async def handler(wss: wsstream.WebSocketStream) -> None:
        readable, *_ = await wss.opened
        try:
            async for _ in readable:
                pass
        except wsstream.WebSocketError as exc:
            errors.append(exc)

    with trio.fail_after(60):  # virtual seconds; close_timeout is 5
        async with trio.open_nursery() as nursery:
            nursery.start_soon(lambda: wsstream.serve_stream(
                handler, ours, compression=None, ping_interval=None, close_timeout=5))
            await theirs.send_all(data)  # request and frame in ONE write
            peer = Peer(theirs, is_client=True)
            status, _ = await peer.read_http()
            while True:
                try:
                    opcode, payload, _ = await peer.receive_frame()
                except EOFError:
                    break
                seen.append((opcode, payload))
                if opcode == CLOSE:
                    break
            await peer.expect_eof()
            await theirs.aclose()
    print("handler saw", errors)
    return status, seen


async def test_close_pipelined_behind_the_request_is_echoed(autojump_clock: Any) -> None:
    # Expected: 101, then the Close echo (1000), then EOF, within close_timeout.
    # Actual: the core records the Close while CONNECTING and never echoes it;
    # the engine believes the connection is open, arms no close deadline, and
    # both sides wait forever (fail_after fires); the cancellation then makes
    # close_forcefully() hit websockets' `assert self.close_rcvd is None`,
    # and that AssertionError escapes serve_stream.
    status, seen = await _serve(
        client_request(new_key()) + build_frame(CLOSE, b"\x03\xe8", mask=True))
    assert status.startswith("HTTP/1.1 101")
    assert seen == [(CLOSE, b"\x03\xe8")]


async def test_ping_pipelined_behind_the_request_is_answered_after_the_101(
    autojump_clock: Any,
) -> None:
    # Expected: "HTTP/1.1 101 ..." first, then a Pong. Actual: the core
    # queues the Pong while CONNECTING, so it goes on the wire before the 101.
    ours, theirs = trio.testing.memory_stream_pair()

    async def handler(wss: wsstream.WebSocketStream) -> None:
        await trio.sleep(1)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(lambda: wsstream.serve_stream(
            handler, ours, compression=None, ping_interval=None))
        await theirs.send_all(client_request(new_key()) + build_frame(PING, b"p", mask=True))
        await trio.testing.wait_all_tasks_blocked()
        first = await theirs.receive_some(65536)
        assert first.startswith(b"HTTP/1.1 101"), first[:40]
        nursery.cancel_scope.cancel()


async def test_protocol_error_pipelined_behind_the_request_fails_with_1002(
    autojump_clock: Any,
) -> None:
    status, seen = await _serve(client_request(new_key()) + build_frame(0x3, b"", mask=True))
    assert status.startswith("HTTP/1.1 101")
    assert seen[-1][0] == CLOSE and seen[-1][1][:2] == b"\x03\xea"
