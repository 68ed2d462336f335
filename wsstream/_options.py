"""Values: connection options, the close outcome, statistics."""

from __future__ import annotations

import math
import os
import ssl
from typing import Literal, NamedTuple, TypedDict

import attrs
import trio

from ._endpoints.compression import DEFAULT_DEFLATE, Deflate
from ._endpoints.http import HeadersLike

__all__ = [
    "ClientOptions",
    "CloseInfo",
    "ConnectionOptions",
    "Options",
    "Statistics",
    "options_from",
]


class CloseInfo(NamedTuple):
    """How a connection ended cleanly: the code and reason of the Close
    frame received from the peer (1005 and ``""`` for a Close without body)."""

    close_code: int
    reason: str


@attrs.frozen
class Statistics:
    """Counters of one connection, from :meth:`WebSocketStream.statistics`.

    ``buffered_in`` is what waits to be read by the user, as counted against
    ``read_limit``: the payload (characters for text) plus 64 per message;
    ``buffered_out`` encoded bytes not yet written to the socket.
    ``latency`` is the last ping round trip in seconds, ``None`` before the
    first pong. ``messages_discarded`` counts messages received
    but never offered to the user: after the readable was closed or the
    ``async with`` was left, or, once this side sent its Close, those that
    found the buffer over ``read_limit``.
    """

    messages_sent: int
    messages_received: int
    messages_discarded: int
    bytes_sent: int
    bytes_received: int
    buffered_in: int
    buffered_out: int
    pings_sent: int
    pongs_received: int
    latency: float | None


class ConnectionOptions(TypedDict, total=False):
    """The connection options every endpoint takes as keyword arguments
    (``WebSocketStream``, ``serve``, ``serve_stream``, ``WebSocket``,
    ``connect_forever``, ``testing.open_pair``), typed so that ``mypy
    --strict`` checks callers. Their defaults live in one place:
    :class:`Options`."""

    open_timeout: float | None
    close_timeout: float | None
    read_limit: int
    write_limit: int
    max_message_size: int | None
    max_streamed_size: int | None
    compression: str | Deflate | None
    ping_interval: float | None
    ping_timeout: float | None


class ClientOptions(ConnectionOptions, total=False):
    """:class:`ConnectionOptions` and the client's own (``WebSocketStream``'s
    keyword arguments besides ``protocols``)."""

    signal: trio.Event | None
    headers: HeadersLike | None
    origin: str | None
    user_agent: str | None
    ssl_context: ssl.SSLContext | None
    stream: trio.abc.Stream | None
    proxy: str | Literal[True] | None
    proxy_ssl_context: ssl.SSLContext | None
    unix_socket_path: str | os.PathLike[str] | None


def options_from(options: ConnectionOptions) -> Options:
    """Checked :class:`Options` from keyword arguments; an unknown name is a
    :class:`TypeError`, as Python's own for an unexpected keyword."""
    unknown = set(options) - _OPTION_NAMES
    if unknown:
        raise TypeError(f"unexpected option {sorted(unknown)[0]!r}")
    return Options(**options)


@attrs.frozen
class Options:
    """Connection options shared by the client and the server; see the
    docs of :class:`~wsstream.WebSocketStream` for each default and why."""

    open_timeout: float | None = 10.0
    close_timeout: float | None = 10.0
    read_limit: int = 2**20
    write_limit: int = 2**16
    max_message_size: int | None = 2**20
    max_streamed_size: int | None = None
    compression: str | Deflate | None = "deflate"
    ping_interval: float | None = 20.0
    ping_timeout: float | None = 20.0

    def __attrs_post_init__(self) -> None:
        for name in ("open_timeout", "close_timeout", "ping_interval", "ping_timeout"):
            value = getattr(self, name)
            if value is not None:
                if not isinstance(value, (int, float)) or isinstance(value, bool):
                    raise TypeError(f"{name} must be a number or None")
                if not value > 0 or math.isnan(value):
                    raise ValueError(f"{name} must be positive, not {value}")
        for name in ("read_limit", "write_limit"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool):
                raise TypeError(f"{name} must be an int")
            if value < 0:
                raise ValueError(f"{name} must not be negative")
        if self.max_message_size is not None:
            if not isinstance(self.max_message_size, int) or isinstance(
                self.max_message_size, bool
            ):
                raise TypeError("max_message_size must be an int or None")
            if self.max_message_size <= 0:
                raise ValueError("max_message_size must be positive")
        if self.max_streamed_size is not None:
            if not isinstance(self.max_streamed_size, int) or isinstance(
                self.max_streamed_size, bool
            ):
                raise TypeError("max_streamed_size must be an int or None")
            if self.max_streamed_size <= 0:
                raise ValueError("max_streamed_size must be positive")
        compression = self.compression
        if not (compression is None or isinstance(compression, Deflate)):
            if not isinstance(compression, str):
                raise TypeError("compression must be 'deflate', a wsstream.Deflate or None")
            if compression != "deflate":
                raise ValueError(f"compression must be 'deflate' or None, not {compression!r}")

    @property
    def deflate(self) -> Deflate | None:
        """The permessage-deflate settings, ``None`` without compression."""
        compression = self.compression
        if compression is None or isinstance(compression, Deflate):
            return compression
        return DEFAULT_DEFLATE


_OPTION_NAMES = frozenset(attrs.fields_dict(Options))
assert frozenset(ConnectionOptions.__annotations__) == _OPTION_NAMES
