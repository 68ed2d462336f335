"""wsstream: the browser's WebSocketStream API for trio.

The guide is in docs/; the public names are exactly those in ``__all__``.
"""

from ._channels import Message, OpenInfo, Readable, Writable
from ._connection import CloseInfo, Statistics
from ._errors import AbortError, HandshakeError, InvalidStateError, WebSocketError
from ._http import Headers, Request, Response
from ._server import serve, serve_stream
from ._stream import WebSocketStream
from ._version import __version__

__all__ = [
    "AbortError",
    "CloseInfo",
    "HandshakeError",
    "Headers",
    "InvalidStateError",
    "Message",
    "OpenInfo",
    "Readable",
    "Request",
    "Response",
    "Statistics",
    "WebSocketError",
    "WebSocketStream",
    "Writable",
    "__version__",
    "serve",
    "serve_stream",
]
