"""Regression: the first violation in a read decides the close code.

Invalid UTF-8 followed, in the same read, by a protocol error or a Close:
the core used to act on the later frames (1002 or a clean echo on the
wire) while ``closed`` said 1007. Text is now decoded as the core parses,
so it stops at the bad frame (found by the hostile-peer work).
"""
from typing import Any

import pytest
import trio
import trio.testing

import wsstream
from tests.peer import CONT, TEXT, Peer, build_frame


async def test_first_violation_decides_the_close_code_on_the_wire_and_in_closed(
    autojump_clock: Any,
) -> None:
    # Expected (API.md: "we fail the connection: ... bad UTF-8 -> we send 1007,
    # closed raises WebSocketError(close_code=that code)"): 1007 on the wire
    # and in closed. Actual: websockets parses the whole read first and fails
    # on the orphan continuation with 1002 (that goes on the wire), then the
    # adapter decodes the text frame and records 1007: the peer sees 1002,
    # `closed` says 1007.
    ours, theirs = trio.testing.memory_stream_pair()
    peer = Peer(theirs, is_client=False)
    with trio.fail_after(60):
        async with wsstream.WebSocketStream(
            "ws://test/", stream=ours, compression=None, ping_interval=None
        ) as wss:
            await peer.accept()
            await wss.opened
            await theirs.send_all(build_frame(TEXT, b"\xff") + build_frame(CONT, b""))
            code, _ = await peer.expect_close()
            await theirs.aclose()
            with pytest.raises(wsstream.WebSocketError) as info:
                await wss.closed
    assert (code, info.value.close_code) == (1007, 1007)


async def test_bad_utf8_then_a_close_in_the_same_read_is_not_echoed_as_clean(
    autojump_clock: Any,
) -> None:
    # Expected: we fail with 1007 (the bad text came first). Actual: websockets
    # already echoed the peer's Close(1000) while parsing the read, so the
    # peer sees a clean 1000 close while `closed` raises 1007.
    from tests.peer import CLOSE
    ours, theirs = trio.testing.memory_stream_pair()
    peer = Peer(theirs, is_client=False)
    with trio.fail_after(60):
        async with wsstream.WebSocketStream(
            "ws://test/", stream=ours, compression=None, ping_interval=None
        ) as wss:
            await peer.accept()
            await wss.opened
            await theirs.send_all(build_frame(TEXT, b"\xff") + build_frame(CLOSE, b"\x03\xe8"))
            code, _ = await peer.expect_close()
            await theirs.aclose()
            with pytest.raises(wsstream.WebSocketError) as info:
                await wss.closed
    assert (code, info.value.close_code) == (1007, 1007)
