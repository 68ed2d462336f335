"""WPT websockets/stream/tentative/abort.any.js, translated (A1-A3).

The AbortSignal is a ``trio.Event`` passed as ``signal=``; the DOMException
AbortError is :class:`wsstream.AbortError`. Runs over ws:// and wss://.
A1 checks that no connection was made by counting the TCP connections the
server accepted (the WPT checks a stash key instead).
"""

from __future__ import annotations

import pytest
import trio
import trio.testing

import wsstream
from tests.wpt_handlers import ECHO_OPTIONS, HandshakeGate, RawPeer, WptServer, echo


async def test_A1_abort_before_constructing_should_prevent_connection(
    wpt: WptServer,
) -> None:
    async def never_used(peer: RawPeer) -> None:
        raise AssertionError("no connection should be made")

    server = await wpt.raw(never_used)
    signal = trio.Event()
    signal.set()
    async with wpt.client(server.url + "/handshake_sleep_2", signal=signal) as wss:
        with pytest.raises(wsstream.AbortError) as opened_error:
            await wss.opened
        with pytest.raises(wsstream.AbortError) as closed_error:
            await wss.closed
    assert closed_error.value is opened_error.value
    # Give a connection attempt every chance to show up, then count.
    await trio.testing.wait_all_tasks_blocked(cushion=0.05)
    assert server.accepted == 0


async def test_A2_abort_during_handshake_should_work(wpt: WptServer) -> None:
    gate = HandshakeGate()
    url = await wpt.serve(echo, process_request=gate) + "/handshake_sleep_2"
    signal = trio.Event()
    async with wpt.client(url, signal=signal) as wss:
        await gate.request_seen.wait()  # the handshake is under way
        signal.set()
        with trio.fail_after(10):
            with pytest.raises(wsstream.AbortError) as opened_error:
                await wss.opened
            with pytest.raises(wsstream.AbortError) as closed_error:
                await wss.closed
    assert closed_error.value is opened_error.value
    assert gate.requests == 1
    gate.release.set()


async def test_A3_abort_after_connect_should_do_nothing(wpt: WptServer) -> None:
    url = await wpt.serve(echo, **ECHO_OPTIONS) + "/echo"
    signal = trio.Event()
    async with wpt.client(url, signal=signal) as wss:
        readable, writable, *_ = await wss.opened
        signal.set()
        await writable.send("connected")
        assert await readable.receive() == "connected"
        wss.close(1000)
        assert await wss.closed == (1000, "")
