"""wsstream: the browser's WebSocketStream API for trio.

The guide is in docs/; the public names are exactly those in ``__all__``.
"""

from ._broadcast import BroadcastResult, broadcast
from ._channels import Message, OpenInfo, Readable, Writable
from ._classic import (
    CLOSED,
    CLOSING,
    CONNECTING,
    OPEN,
    CloseEvent,
    ErrorEvent,
    MessageEvent,
    OpenEvent,
    ReadyState,
    WebSocket,
    WebSocketEvent,
)
from ._errors import AbortError, HandshakeError, InvalidStateError, WebSocketError
from ._http import Headers, Request, Response
from ._large import MessageReader, MessageWriter
from ._options import CloseInfo, Statistics
from ._reconnect import ReconnectInfo, connect_forever
from ._server import serve, serve_stream
from ._stream import WebSocketStream
from ._version import __version__

__all__ = [
    "CLOSED",
    "CLOSING",
    "CONNECTING",
    "OPEN",
    "AbortError",
    "BroadcastResult",
    "CloseEvent",
    "CloseInfo",
    "ErrorEvent",
    "HandshakeError",
    "Headers",
    "InvalidStateError",
    "Message",
    "MessageEvent",
    "MessageReader",
    "MessageWriter",
    "OpenEvent",
    "OpenInfo",
    "ReadyState",
    "Readable",
    "ReconnectInfo",
    "Request",
    "Response",
    "Statistics",
    "WebSocket",
    "WebSocketError",
    "WebSocketEvent",
    "WebSocketStream",
    "Writable",
    "__version__",
    "broadcast",
    "connect_forever",
    "serve",
    "serve_stream",
]
