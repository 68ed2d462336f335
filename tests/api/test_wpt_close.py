"""WPT websockets/stream/tentative/close.any.js, translated (K1-K27).

Network cases run over ws:// and wss:// (``?default`` and ``?wss``). The
server is /echo unless noted; its engine echoes the client's Close code and
reason. DOMException names map as API.md says: SyntaxError and
InvalidAccessError -> ValueError, WebIDL conversion -> TypeError.
K14 asserts an ordering (``aclose()`` has not returned while the peer holds
its Close echo back, returns after) instead of a duration.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest
import trio
import trio.testing

import wsstream
from tests.wpt_handlers import (
    ECHO_OPTIONS,
    HandshakeGate,
    WptServer,
    delayed_passive_close,
    echo,
    passive_close_abort,
)


async def _echo_url(wpt: WptServer) -> str:
    return await wpt.serve(echo, **ECHO_OPTIONS) + "/echo"


async def test_K1_close_code_should_be_sent_to_server_and_reflected_back(
    wpt: WptServer,
) -> None:
    async with wpt.client(await _echo_url(wpt)) as wss:
        await wss.opened
        wss.close(close_code=3456, reason="pizza")
        assert await wss.closed == (3456, "pizza")


async def test_K2_no_close_argument_should_send_empty_close_frame(wpt: WptServer) -> None:
    async with wpt.client(await _echo_url(wpt)) as wss:
        await wss.opened
        wss.close()
        assert await wss.closed == (1005, "")


async def test_K3_unspecified_close_code_should_send_empty_close_frame(
    wpt: WptServer,
) -> None:
    async with wpt.client(await _echo_url(wpt)) as wss:
        await wss.opened
        wss.close(close_code=None)
        assert await wss.closed == (1005, "")


async def test_K4_unspecified_close_code_with_empty_reason_should_send_empty_close_frame(
    wpt: WptServer,
) -> None:
    async with wpt.client(await _echo_url(wpt)) as wss:
        await wss.opened
        wss.close(reason="")
        assert await wss.closed == (1005, "")


async def test_K5_unspecified_close_code_with_non_empty_reason_should_set_code_to_1000(
    wpt: WptServer,
) -> None:
    async with wpt.client(await _echo_url(wpt)) as wss:
        await wss.opened
        wss.close(reason="non-empty")
        assert await wss.closed == (1000, "non-empty")


async def test_K6_close_true_should_throw_a_type_error(wpt: WptServer) -> None:
    async with wpt.client(await _echo_url(wpt)) as wss:
        readable, writable, *_ = await wss.opened
        close: Any = wss.close
        with pytest.raises(TypeError):
            close(True)
        # Validation came first: nothing was closed.
        await writable.send("still open")
        assert await readable.receive() == "still open"


async def test_K7_close_with_an_overlong_reason_should_throw(wpt: WptServer) -> None:
    async with wpt.client(await _echo_url(wpt)) as wss:
        readable, writable, *_ = await wss.opened
        with pytest.raises(ValueError):
            wss.close(close_code=1000, reason="." * 124)
        await writable.send("still open")
        assert await readable.receive() == "still open"


async def test_K8_close_during_handshake_should_work(wpt: WptServer) -> None:
    gate = HandshakeGate()
    url = await wpt.serve(echo, process_request=gate) + "/handshake_sleep_2"
    async with wpt.client(url) as wss:
        wss.close()
        with pytest.raises(wsstream.WebSocketError):
            await wss.opened
        with pytest.raises(wsstream.WebSocketError):
            await wss.closed
    gate.release.set()


@pytest.mark.parametrize("code", [999, 1001, 2999, 5000])
async def test_K9_to_K12_close_with_invalid_code_should_throw(
    wpt: WptServer, code: int
) -> None:
    async with wpt.client(await _echo_url(wpt)) as wss:
        readable, writable, *_ = await wss.opened
        with pytest.raises(ValueError):  # InvalidAccessError
            wss.close(close_code=code)
        await writable.send("still open")
        assert await readable.receive() == "still open"


async def test_K13_closing_the_writable_should_result_in_a_clean_close(
    wpt: WptServer,
) -> None:
    async with wpt.client(await _echo_url(wpt)) as wss:
        _, writable, *_ = await wss.opened
        await writable.aclose()
        assert await wss.closed == (1005, "")


async def test_K14_writer_close_promise_should_not_resolve_until_handshake_completes(
    wpt: WptServer,
) -> None:
    close_seen, release = trio.Event(), trio.Event()
    peer = await wpt.raw(delayed_passive_close(close_seen, release))
    returned = trio.Event()
    async with wpt.client(peer.url + "/delayed-passive-close") as wss:
        _, writable, *_ = await wss.opened

        async def close_writable() -> None:
            await writable.aclose()
            returned.set()

        async with trio.open_nursery() as nursery:
            nursery.start_soon(close_writable)
            await close_seen.wait()
            # The peer holds the Close echo: let everything that can run, run.
            await trio.testing.wait_all_tasks_blocked(cushion=0.05)
            assert not returned.is_set()
            assert not wss.closed.settled
            release.set()
            with trio.fail_after(10):
                await returned.wait()
        assert wss.closed.settled
        assert await wss.closed == (1005, "")


async def test_K15_incomplete_closing_handshake_should_be_considered_unclean_close(
    wpt: WptServer,
) -> None:
    peer = await wpt.raw(passive_close_abort())
    async with wpt.client(peer.url + "/passive-close-abort") as wss:
        await wss.opened
        wss.close(close_code=4000, reason="because")
        with pytest.raises(wsstream.WebSocketError) as error:
            await wss.closed
        assert type(error.value) is wsstream.WebSocketError
        assert error.value.close_code == 1006


class _NotAWebSocketError(Exception):
    """The DOMException('yes', 'DataCloneError') of K21/K27, with the
    attributes a WebSocketError has, set by hand."""

    def __init__(self) -> None:
        super().__init__("yes")
        self.close_code = 1000
        self.reason = "should be ignored"


async def _abort_writable(info: wsstream.OpenInfo, reason: object) -> None:
    await info.writable.abort(reason)


async def _cancel_readable(info: wsstream.OpenInfo, reason: object) -> None:
    await info.readable.cancel(reason)


_ENDERS: list[Any] = [
    pytest.param(_abort_writable, id="abort_writable"),
    pytest.param(_cancel_readable, id="cancel_readable"),
]

Ender = Callable[[wsstream.OpenInfo, object], Awaitable[None]]


async def _end_and_get_closed(wpt: WptServer, end: Ender, reason: object) -> Any:
    async with wpt.client(await _echo_url(wpt)) as wss:
        info = await wss.opened
        await end(info, reason)
        return await wss.closed


@pytest.mark.parametrize("end", _ENDERS)
async def test_K16_K22_aborting_the_writable_or_canceling_the_readable_should_result_in_a_clean_close(  # noqa: E501
    wpt: WptServer, end: Ender
) -> None:
    assert await _end_and_get_closed(wpt, end, None) == (1005, "")


@pytest.mark.parametrize("end", _ENDERS)
async def test_K17_K23_attributes_not_wrapped_in_a_websocket_error_should_be_ignored(
    wpt: WptServer, end: Ender
) -> None:
    reason = {"close_code": 3333, "reason": "obsolete"}
    assert await _end_and_get_closed(wpt, end, reason) == (1005, "")


@pytest.mark.parametrize("end", _ENDERS)
async def test_K18_K24_a_websocket_error_with_a_code_should_send_that_code(
    wpt: WptServer, end: Ender
) -> None:
    reason = wsstream.WebSocketError("", close_code=3333)
    assert await _end_and_get_closed(wpt, end, reason) == (3333, "")


@pytest.mark.parametrize("end", _ENDERS)
async def test_K19_K25_a_websocket_error_with_a_code_and_reason_should_use_them(
    wpt: WptServer, end: Ender
) -> None:
    reason = wsstream.WebSocketError("", close_code=3456, reason="set")
    assert await _end_and_get_closed(wpt, end, reason) == (3456, "set")


@pytest.mark.parametrize("end", _ENDERS)
async def test_K20_K26_a_websocket_error_with_a_reason_but_no_code_should_default_the_close_code(
    wpt: WptServer, end: Ender
) -> None:
    reason = wsstream.WebSocketError("", reason="specified")
    assert await _end_and_get_closed(wpt, end, reason) == (1000, "specified")


@pytest.mark.parametrize("end", _ENDERS)
async def test_K21_K27_another_exception_does_not_set_code_or_reason(
    wpt: WptServer, end: Ender
) -> None:
    assert await _end_and_get_closed(wpt, end, _NotAWebSocketError()) == (1005, "")
