"""WPT websockets/stream/tentative/constructor.any.js, translated (C1-C8).

Each case runs over ws:// and wss:// (the ``?wss`` variant) where it touches
the network; the h2 and worker variants do not apply.
"""

from __future__ import annotations

from typing import Any

import pytest
import trio

import wsstream
from tests.wpt_handlers import (
    ECHO_OPTIONS,
    PROTOCOL_ARRAY_OPTIONS,
    WptServer,
    echo,
    not_found,
    protocol_array,
)


def test_C1_constructing_with_no_url_should_throw() -> None:
    make: Any = wsstream.WebSocketStream
    with pytest.raises(TypeError):
        make()


@pytest.mark.parametrize("url", ["invalid:", "ftp://example.com/", "ws://", "not a url"])
def test_C2_constructing_with_an_invalid_url_should_throw(url: str) -> None:
    # The browser's SyntaxError DOMException maps to ValueError.
    with pytest.raises(ValueError):
        wsstream.WebSocketStream(url)


def test_C3_constructing_with_invalid_options_should_throw() -> None:
    # new WebSocketStream(url, true): options are keyword-only in Python.
    make: Any = wsstream.WebSocketStream
    with pytest.raises(TypeError):
        make("ws://127.0.0.1/", True)
    with pytest.raises(TypeError):
        make("ws://127.0.0.1/", {"protocols": ["x"]})


def test_C4_protocols_should_be_required_to_be_a_list() -> None:
    with pytest.raises(TypeError):
        wsstream.WebSocketStream("ws://127.0.0.1/", protocols="hi")


async def test_C5_constructing_with_a_valid_url_should_work(wpt: WptServer) -> None:
    echo_url = await wpt.serve(echo, **ECHO_OPTIONS) + "/echo"
    async with wpt.client(echo_url) as wss:
        await wss.opened
        assert wss.url == echo_url
        wss.close()
        assert await wss.closed == (1005, "")


async def test_C6_setting_a_protocol_in_the_constructor_should_work(wpt: WptServer) -> None:
    url = await wpt.serve(protocol_array, **PROTOCOL_ARRAY_OPTIONS) + "/protocol_array"
    async with wpt.client(url, protocols=["alpha", "beta"]) as wss:
        readable, writable, extensions, protocol = await wss.opened
        assert protocol == "alpha"
        assert await readable.receive() == "alpha"


async def test_C7_connection_failure_should_reject_the_promises(wpt: WptServer) -> None:
    url = await wpt.serve(echo, process_request=not_found) + "/404"
    async with wpt.client(url) as wss:
        with pytest.raises(wsstream.WebSocketError) as opened_error:
            await wss.opened
        with pytest.raises(wsstream.WebSocketError) as closed_error:
            await wss.closed
    assert isinstance(opened_error.value, wsstream.HandshakeError)
    assert opened_error.value.status == 404
    assert closed_error.value is opened_error.value
    assert closed_error.value.close_code == 1006


async def test_C7_connection_refused_should_reject_the_promises(wpt: WptServer) -> None:
    # No handler at all: nobody listens on the port.
    listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
    port = listeners[0].socket.getsockname()[1]
    await listeners[0].aclose()
    async with wpt.client(f"{wpt.scheme}://127.0.0.1:{port}/") as wss:
        with pytest.raises(wsstream.WebSocketError) as opened_error:
            await wss.opened
        with pytest.raises(wsstream.WebSocketError) as closed_error:
            await wss.closed
    assert closed_error.value is opened_error.value
    assert opened_error.value.close_code == 1006


async def test_C8_wss_opened_should_resolve_to_the_right_types(wpt: WptServer) -> None:
    echo_url = await wpt.serve(echo, **ECHO_OPTIONS) + "/echo"
    async with wpt.client(echo_url) as wss:
        info = await wss.opened
        assert isinstance(info, wsstream.OpenInfo)
        assert isinstance(info.readable, trio.abc.ReceiveChannel)
        assert isinstance(info.readable, wsstream.Readable)
        assert isinstance(info.writable, trio.abc.SendChannel)
        assert isinstance(info.writable, wsstream.Writable)
        assert type(info.protocol) is str
        assert type(info.extensions) is str
        assert info.protocol == ""
