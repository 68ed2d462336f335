"""WPT websockets/stream/tentative/websocket-error.any.js, translated (E1-E10).

The DOMException's ``code`` and ``name`` have no Python meaning; the class
and the ``message``, ``close_code`` and ``reason`` attributes do.
InvalidAccessError and SyntaxError map to ValueError.
"""

from __future__ import annotations

import pytest
import trio

import wsstream


def test_E1_websocket_error_defaults_should_be_correct() -> None:
    error = wsstream.WebSocketError()
    assert type(error).__name__ == "WebSocketError"
    assert error.message == ""
    assert str(error) == ""
    assert error.close_code is None
    assert error.reason == ""
    assert isinstance(error, trio.BrokenResourceError)


def test_E2_websocket_error_should_be_initialised_from_arguments() -> None:
    error = wsstream.WebSocketError("message", close_code=3456, reason="reason")
    assert error.message == "message"
    assert error.close_code == 3456
    assert error.reason == "reason"


@pytest.mark.parametrize("code", [999, 1001, 2999, 5000])
def test_E3_to_E6_new_websocket_error_with_invalid_code_should_throw(code: int) -> None:
    with pytest.raises(ValueError):
        wsstream.WebSocketError("", close_code=code)


def test_E7_passing_only_close_code_to_websocket_error_should_work() -> None:
    error = wsstream.WebSocketError(close_code=3333)
    assert error.close_code == 3333
    assert error.reason == ""


def test_E8_passing_a_non_empty_reason_should_cause_the_close_code_to_be_set_to_1000() -> None:
    error = wsstream.WebSocketError(reason="specified")
    assert error.close_code == 1000
    assert error.reason == "specified"


def test_E9_overlong_reason_should_throw() -> None:
    with pytest.raises(ValueError):
        wsstream.WebSocketError(close_code=1000, reason="x" * 124)
    # 123 bytes is the limit, inclusive.
    assert wsstream.WebSocketError(close_code=1000, reason="x" * 123).reason == "x" * 123


def test_E10_reason_should_be_rejected_based_on_utf8_bytes_not_character_count() -> None:
    reason = "\N{ELECTRIC PLUG}" * 32  # 32 characters, 128 UTF-8 bytes
    assert len(reason) == 32
    with pytest.raises(ValueError):
        wsstream.WebSocketError(reason=reason)


def test_E_websocket_error_rejects_non_int_code_and_non_str_reason() -> None:
    with pytest.raises(TypeError):
        wsstream.WebSocketError(close_code=True)
    with pytest.raises(TypeError):
        wsstream.WebSocketError(close_code="3000")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        wsstream.WebSocketError(reason=b"bytes")  # type: ignore[arg-type]
