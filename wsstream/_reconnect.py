"""A reconnecting client: ``connect_forever`` and what it reports.

Why a function that calls a handler, not ``async for wss in connect(url)``:
a WebSocketStream's connection runs in a nursery owned by its ``async
with``, and trio forbids yielding from inside a nursery or a cancel scope in
an async generator (the body of the ``async for`` would run while the
generator is suspended inside the scope, so cancellations and errors reach
the wrong task). Here the user's code runs inside the scope that wsstream
owns, the way ``serve`` runs a server's handler.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import attrs

from ._errors import WebSocketError
from ._options import CloseInfo
from ._stream import WebSocketStream

__all__ = ["ReconnectInfo", "connect_forever"]

Handler = Callable[[WebSocketStream], Awaitable[None]]


@attrs.frozen
class ReconnectInfo:
    """What :func:`connect_forever` tells ``on_reconnect`` before each reconnection.

    ``attempt`` counts the reconnections since the last connection that
    stayed open ``reset_after`` seconds (1 for the first); ``delay`` is the
    number of seconds about to be slept before it; ``cause`` is why the
    previous connection ended: its :class:`CloseInfo` for a clean close with
    a code that retries, else the error (a :class:`HandshakeError` when it
    never opened, a :class:`WebSocketError` when it ended abnormally).
    """

    attempt: int
    delay: float
    cause: WebSocketError | CloseInfo


async def connect_forever(
    url: str,
    handler: Handler,
    *,
    initial_delay: float = 5.0,
    backoff_factor: float = 1.618,
    max_delay: float = 90.0,
    reset_after: float = 60.0,
    reconnect_on_normal_close: bool = False,
    on_reconnect: Callable[[ReconnectInfo], object] | None = None,
    **options: Any,
) -> CloseInfo:
    """Keep a connection to ``url`` open: call ``handler`` with each one, reconnect.

    Each connection is a :class:`WebSocketStream` made with ``url`` and
    ``options`` (every option of :class:`WebSocketStream` except ``stream``,
    which can serve one connection only). ``handler(wss)`` is awaited with
    the stream already open, inside the stream's ``async with``. When the
    connection ends, how it ended decides (the guide has the full table):

    * **Reconnect**: the connection was refused, reset or unreachable, or
      the host name did not resolve (an :class:`OSError` while connecting);
      ``open_timeout`` expired; the server closed or broke the connection
      during the opening handshake; the handshake was answered with a 5xx
      status; the connection ended with code 1001, 1006 (dropped without a
      closing handshake), 1011, 1012, 1013 or 1014, cleanly or not.
    * **Return** the :class:`CloseInfo` of a clean close with any other
      code: 1000 and 1005 (a Close without a code) unless
      ``reconnect_on_normal_close`` is true, 1008, 4000, ... Also when the
      handler returns while the connection is still open: your code decided
      to stop, so the connection is closed with 1000 (as the ``async with``
      does) and its :class:`CloseInfo` is returned.
    * **Raise** a :class:`HandshakeError` for a handshake answered with any
      other status (4xx: 401, 403, 404, ...), an invalid handshake response
      or a TLS certificate that fails verification; an :class:`AbortError`
      when ``signal`` is set; the connection's :class:`WebSocketError` for
      an abnormal end with a code not listed above (this side failed the
      connection with 1002, 1007, 1008 or 1009); and anything the handler
      raises, unchanged, after the connection was closed with 1011. The
      connection's own errors reaching the handler
      (:class:`trio.BrokenResourceError`, :class:`trio.ClosedResourceError`,
      :class:`trio.EndOfChannel`, or an exception group of nothing else)
      once the connection is no longer open are not the handler failing:
      they mean the connection ended, and that ending decides.

    Before reconnection number ``attempt`` (1, 2, ...) it sleeps
    ``random.uniform(0, min(max_delay, initial_delay * backoff_factor **
    (attempt - 1)))`` seconds: exponential backoff with full jitter. The
    count starts again at 1 after a connection that stayed open at least
    ``reset_after`` seconds; there is a delay even then (RFC 6455 7.2.3), so
    that the clients of a restarted server do not all return at once.

    Defaults, against websockets' reconnecting ``connect()`` (its
    ``WEBSOCKETS_BACKOFF_*`` settings): ``initial_delay=5`` (websockets'
    first delay is random between 0 and 5 s, the range RFC 6455 7.2.3
    suggests), ``backoff_factor=1.618`` and ``max_delay=90`` (websockets'
    factor and cap), so the delays grow within the same envelope as
    websockets' (whose delays after the first are the envelope itself).
    ``reset_after=60``: websockets resets after every successful handshake,
    which retries a server that fails each connection right after opening
    every 0-5 s forever; 60 s is longer than keepalive needs to find a
    dead connection (``ping_interval`` + ``ping_timeout`` = 40 s).

    ``on_reconnect(info)``, a plain (not async) callable, is called with a
    :class:`ReconnectInfo` before each sleep; what it raises propagates and
    ends ``connect_forever`` (a way to give up after some attempts). Each
    reconnection is also logged at INFO on the ``wsstream.reconnect`` logger.

    Bad arguments raise :class:`TypeError` or :class:`ValueError` at once,
    before any I/O: those of :class:`WebSocketStream`, a ``handler`` or
    ``on_reconnect`` that is not callable (or an async ``on_reconnect``),
    ``stream=``, delays that are not finite positive numbers (``reset_after``
    may be 0 or infinite), ``backoff_factor`` below 1, ``max_delay`` below
    ``initial_delay``.

    Cancellation ends it at once, wherever it is: during a sleep; during a
    handshake (the socket is closed); in the handler (the connection closes
    forcefully, as when an ``async with`` is left by a cancellation: the
    Close frame, 1001, goes out if it can at once, then the socket is
    closed). :class:`trio.Cancelled` propagates, and ``on_reconnect`` is not
    called.
    """
    raise NotImplementedError("designed in docs/reconnecting.md; being built")
