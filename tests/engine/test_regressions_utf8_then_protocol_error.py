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
from tests.peer import CLOSE, CONT, TEXT, Peer, build_frame


@pytest.mark.parametrize(
    "after",
    [build_frame(CONT, b""), build_frame(CLOSE, b"\x03\xe8")],
    ids=["orphan-continuation", "close-1000"],
)
async def test_bad_utf8_decides_the_close_code_over_what_follows_in_the_same_read(
    autojump_clock: Any, after: bytes
) -> None:
    # API.md: "we fail the connection: ... bad UTF-8 -> we send 1007, closed
    # raises WebSocketError(close_code=that code)". The frame after the bad
    # text (an orphan continuation: a protocol error; a Close: an echo) comes
    # in the same read and must not be acted on: 1007 on the wire and in
    # closed alike.
    ours, theirs = trio.testing.memory_stream_pair()
    peer = Peer(theirs, is_client=False)
    with trio.fail_after(60):
        async with wsstream.WebSocketStream(
            "ws://test/", stream=ours, compression=None, ping_interval=None
        ) as wss:
            await peer.accept()
            await wss.opened
            await theirs.send_all(build_frame(TEXT, b"\xff") + after)
            code, _ = await peer.expect_close()
            await theirs.aclose()
            with pytest.raises(wsstream.WebSocketError) as info:
                await wss.closed
    assert (code, info.value.close_code) == (1007, 1007)
