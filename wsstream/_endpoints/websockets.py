"""Every import of ``websockets``, in one place.

wsstream uses websockets for the opening handshake only, through its
documented Sans-I/O API (``ClientProtocol`` / ``ServerProtocol`` until the
101, the HTTP request and response types, the permessage-deflate extension
factories for the negotiation), and for one undocumented function that has
not changed since 2013: ``websockets.speedups.apply_mask``, the C masking
routine (the protocol core falls back to pure Python without it). Keeping
them here means a new websockets release can break at most this module,
and there is no upper bound on the version.
"""

from __future__ import annotations

from collections.abc import Callable

from websockets.client import ClientProtocol
from websockets.datastructures import Headers as CoreHeaders
from websockets.extensions.permessage_deflate import (
    ClientPerMessageDeflateFactory,
    ServerPerMessageDeflateFactory,
)
from websockets.http11 import Request as CoreRequest
from websockets.http11 import Response as CoreResponse
from websockets.protocol import State
from websockets.server import ServerProtocol
from websockets.uri import WebSocketURI

c_apply_mask: Callable[[bytes | bytearray | memoryview, bytes], bytes] | None
try:  # C, when websockets was built with its extension (the wheels are)
    from websockets.speedups import apply_mask as c_apply_mask
except ImportError:  # pragma: no cover - a pure-Python websockets
    c_apply_mask = None

__all__ = [
    "ClientPerMessageDeflateFactory",
    "ClientProtocol",
    "CoreHeaders",
    "CoreRequest",
    "CoreResponse",
    "ServerPerMessageDeflateFactory",
    "ServerProtocol",
    "State",
    "WebSocketURI",
    "c_apply_mask",
]
