"""WPT websockets/stream/tentative/remote-close.any.js, translated (R1-R7).

Runs over ws:// and wss:// (``?default`` and ``?wss``). The browser's
``writer.ready`` rejecting with InvalidStateError after the peer closed is,
in Python, ``send()`` raising the ``BrokenResourceError``-derived
:class:`wsstream.WebSocketError` (API.md: "after a clean close, send()
raises ... else the BrokenResourceError-derived error").
"""

from __future__ import annotations

import urllib.parse

import pytest
import trio

import wsstream
from tests.wpt_handlers import (
    MiB,
    WptServer,
    abrupt_close,
    remote_close,
    stalling_remote_close,
)


async def test_R1_clean_close_should_be_clean(wpt: WptServer) -> None:
    url = await wpt.serve(remote_close()) + "/remote-close?code=1000"
    async with wpt.client(url) as wss:
        readable, writable, *_ = await wss.opened
        assert await wss.closed == (1000, "")
        with pytest.raises(trio.EndOfChannel):
            await readable.receive()
        with pytest.raises(trio.BrokenResourceError) as error:
            await writable.send("too late")
        assert isinstance(error.value, wsstream.WebSocketError)


async def test_R2_close_frame_with_no_body_should_result_in_status_code_1005(
    wpt: WptServer,
) -> None:
    url = await wpt.serve(remote_close()) + "/remote-close"
    async with wpt.client(url) as wss:
        await wss.opened
        assert await wss.closed == (1005, "")


async def test_R3_reason_should_be_passed_through(wpt: WptServer) -> None:
    url = await wpt.serve(remote_close()) + "/remote-close?code=4000&reason=robot"
    async with wpt.client(url) as wss:
        await wss.opened
        assert await wss.closed == (4000, "robot")


async def test_R4_utf8_reason_should_work(wpt: WptServer) -> None:
    reason = "\u30ed\u30dc\u30c3\u30c8"  # "robot" in katakana
    query = urllib.parse.urlencode({"code": 4000, "reason": reason})
    url = await wpt.serve(remote_close()) + "/remote-close?" + query
    async with wpt.client(url) as wss:
        await wss.opened
        assert await wss.closed == (4000, reason)


async def test_R5_close_with_unwritten_data_should_not_be_considered_clean(
    wpt: WptServer,
) -> None:
    # The peer closes with 4567 once the client queued 20 MiB and reads
    # nothing more until `drain`: the Close arrives with most of the 20 MiB
    # unwritten. send() returns once queued, so the browser's rejected write
    # is, in Python, the next send(), parked on write_limit when the Close
    # arrives.
    gate, drain = trio.Event(), trio.Event()
    peer = await wpt.raw(stalling_remote_close(4567, "", gate, drain))
    async with wpt.client(peer.url + "/remote-close?code=4567", compression=None) as wss:
        _, writable, *_ = await wss.opened
        await writable.send(b" " * (20 * MiB))  # returns once queued
        gate.set()
        with trio.fail_after(10):
            with pytest.raises(wsstream.WebSocketError) as send_error:
                await writable.send("word")
        drain.set()
        with trio.fail_after(10):
            with pytest.raises(wsstream.WebSocketError) as error:
                await wss.closed
        assert error.value.close_code == 4567
        assert send_error.value is error.value


async def test_R6_remote_code_and_reason_should_be_used(wpt: WptServer) -> None:
    close_sent = trio.Event()
    url = await wpt.serve(remote_close(close_sent))
    async with wpt.client(url + "/remote-close?code=4222&reason=remote") as wss:
        await wss.opened
        await close_sent.wait()  # the server's Close is committed first
        wss.close(close_code=4111, reason="local")
        assert await wss.closed == (4222, "remote")


async def test_R7_abrupt_close_should_give_an_error(wpt: WptServer) -> None:
    peer = await wpt.raw(abrupt_close())
    async with wpt.client(peer.url + "/remote-close?code=1000&abrupt=1") as wss:
        readable, writable, *_ = await wss.opened
        with pytest.raises(wsstream.WebSocketError) as error:
            await wss.closed
        assert type(error.value) is wsstream.WebSocketError
        assert error.value.close_code == 1006
        with pytest.raises(wsstream.WebSocketError) as read_error:
            await readable.receive()
        with pytest.raises(wsstream.WebSocketError) as write_error:
            await writable.send("x")
        assert read_error.value is error.value
        assert write_error.value is error.value
