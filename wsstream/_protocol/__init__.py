"""The protocol core: wsstream's own Sans-I/O WebSocket data phase.

No trio, no sockets: bytes in, messages and bytes out (RFC 6455 frames,
masking, fragments, UTF-8, control frames, the closing handshake; RFC 7692
permessage-deflate), and the lifecycle that decides how a connection ended.
"""

from .core import BIG_FRAME, Core, shared_frame, wire_limit
from .deflate import DeflateParams
from .lifecycle import Event, Lifecycle, Phase, Verdict

__all__ = [
    "BIG_FRAME",
    "Core",
    "DeflateParams",
    "Event",
    "Lifecycle",
    "Phase",
    "Verdict",
    "shared_frame",
    "wire_limit",
]
