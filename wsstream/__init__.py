"""wsstream: the browser's WebSocketStream API for trio.

The guide is in docs/; the public names are exactly those in ``__all__``.
"""

from ._endpoints.compression import Deflate
from ._endpoints.http import Headers, Request, Response
from ._endpoints.listen import serve, serve_unix
from ._endpoints.reconnect import ReconnectInfo, connect_forever
from ._endpoints.server import serve_listeners, serve_stream
from ._endpoints.serverstats import ServerStatistics
from ._errors import AbortError, HandshakeError, InvalidStateError, WebSocketError
from ._options import CloseInfo, Statistics
from ._streams.broadcast import BroadcastResult, broadcast
from ._streams.channels import Message, OpenInfo, Readable, Writable
from ._streams.classic import (
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
from ._streams.large import MessageReader, MessageWriter
from ._streams.stream import WebSocketStream
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
    "Deflate",
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
    "ServerStatistics",
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
    "serve_listeners",
    "serve_stream",
    "serve_unix",
]
