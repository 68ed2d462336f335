"""The classic interface's values: the ready states and the four events,
as the browser's ``WebSocket`` has them (see :mod:`.classic`)."""

from __future__ import annotations

import enum
from typing import Literal

import attrs

from .._errors import WebSocketError

__all__ = [
    "CLOSED",
    "CLOSING",
    "CONNECTING",
    "OPEN",
    "CloseEvent",
    "ErrorEvent",
    "MessageEvent",
    "OpenEvent",
    "ReadyState",
    "WebSocketEvent",
]


class ReadyState(enum.IntEnum):
    """The browser's ``readyState`` values; they compare equal to 0-3."""

    CONNECTING = 0
    OPEN = 1
    CLOSING = 2
    CLOSED = 3


CONNECTING = ReadyState.CONNECTING
OPEN = ReadyState.OPEN
CLOSING = ReadyState.CLOSING
CLOSED = ReadyState.CLOSED


@attrs.frozen
class OpenEvent:
    """The connection opened: ``protocol`` and ``extensions`` are known."""

    @property
    def type(self) -> Literal["open"]:
        """The browser's event type name."""
        return "open"


@attrs.frozen
class MessageEvent:
    """A message arrived: ``data`` is ``str`` for text and ``bytes`` for binary.

    ``origin`` is the origin of the WebSocket's URL, as the browser gives it
    (``"ws://host:port"``, the port omitted when it is the default).
    """

    data: str | bytes
    origin: str

    @property
    def type(self) -> Literal["message"]:
        """The browser's event type name."""
        return "message"


@attrs.frozen
class ErrorEvent:
    """The connection failed or closed uncleanly; a :class:`CloseEvent` follows.

    The browser's error event carries nothing; ``error`` is wsstream's
    :class:`WebSocketError` that says what happened (for example a
    :class:`HandshakeError` with the HTTP status, or the 1009 we sent for an
    oversized message).
    """

    error: WebSocketError

    @property
    def type(self) -> Literal["error"]:
        """The browser's event type name."""
        return "error"


@attrs.frozen
class CloseEvent:
    """The connection is closed; always the last event.

    After a clean close (Close frames exchanged), ``code`` and ``reason`` are
    those of the Close frame received from the peer (1005 for one without a
    body) and ``was_clean`` is true. After anything else they are 1006 and
    ``""`` and ``was_clean`` is false, as in the browser; the preceding
    :class:`ErrorEvent` says why.
    """

    code: int
    reason: str
    was_clean: bool

    @property
    def type(self) -> Literal["close"]:
        """The browser's event type name."""
        return "close"


#: Any event of the classic interface.
WebSocketEvent = OpenEvent | MessageEvent | ErrorEvent | CloseEvent

