"""A reconnecting client: ``connect_forever`` and what it reports.

Why a function that calls a handler, not ``async for wss in connect(url)``:
a WebSocketStream's connection runs in a nursery owned by its ``async
with``, and trio forbids yielding from inside a nursery or a cancel scope in
an async generator (the body of the ``async for`` would run while the
generator is suspended inside the scope, so cancellations and errors reach
the wrong task). Here the user's code runs inside the scope that wsstream
owns, the way ``serve`` runs a server's handler.

Theory of operation: one connection at a time, in the caller's task. Each
turn of the loop enters a fresh WebSocketStream, waits for ``opened``, runs
the handler, and leaves the ``async with``; by then the connection's task
has finished, so ``closed`` has settled and says how the connection ended
(a handshake failure settles it too). That ending, and whether the handler
stopped on its own, decide: return, raise, or sleep and go round again.
No nursery of ours: the only exception groups that can come out are the
handler's own, passed on unchanged.
"""

from __future__ import annotations

import inspect
import logging
import math
import random
import ssl
from collections.abc import Awaitable, Callable
from typing import Unpack

import attrs
import trio

from .._errors import AbortError, HandshakeError, WebSocketError
from .._options import ClientOptions, CloseInfo
from .._streams.stream import WebSocketStream

__all__ = ["ReconnectInfo", "connect_forever", "RETRY_CODES"]

_log = logging.getLogger("wsstream.reconnect")

Handler = Callable[[WebSocketStream], Awaitable[None]]

#: Close codes after which the server may well accept us again: going away
#: (1001), dropped without a closing handshake (1006), internal error (1011:
#: the server's, or our keepalive timeout), service restart (1012), try
#: again later (1013), bad gateway (1014). IANA's registry of RFC 6455 codes.
RETRY_CODES = frozenset({1001, 1006, 1011, 1012, 1013, 1014})

#: A clean close that says "done": 1000, or a Close without a code (1005).
NORMAL_CODES = frozenset({1000, 1005})

#: What the handler raises when the connection ended under it: the
#: connection's WebSocketError (a BrokenResourceError), send() after this
#: side closed, receive() after the end.
_CONNECTION_ENDS = (trio.BrokenResourceError, trio.ClosedResourceError, trio.EndOfChannel)

# A generator of our own: seeding the random module does not make every process
# wait the same (and a test can pin the jitter by replacing it).
_random = random.Random()


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
    **options: Unpack[ClientOptions],
) -> CloseInfo:
    """Keep a connection to ``url`` open: call ``handler`` with each one, reconnect.

    Each connection is a :class:`WebSocketStream` made with ``url`` and
    ``options`` (every option of :class:`WebSocketStream` except ``stream``,
    which can serve one connection only; with the default ``proxy=True``,
    each reads the environment again). ``handler(wss)`` is awaited with
    the stream already open, inside the stream's ``async with``. When the
    connection ends, how it ended decides (the guide has the full table):

    * **Reconnect**: the connection was refused, reset or unreachable, or
      the host name did not resolve (an :class:`OSError` while connecting,
      to the proxy too, or a SOCKS proxy's report of one);
      ``open_timeout`` expired; the server closed or broke the connection
      during the opening handshake; the handshake was answered with a 5xx
      status (a proxy's 502 or 504 too); the connection ended with code
      1001, 1006 (dropped without a closing handshake), 1011, 1012, 1013 or
      1014, cleanly or not.
    * **Return** the :class:`CloseInfo` of a clean close with any other
      code: 1000 and 1005 (a Close without a code) unless
      ``reconnect_on_normal_close`` is true, 1008, 4000, ... Also when the
      handler returns while the connection is still open: your code decided
      to stop, so the connection is closed with 1000 (as the ``async with``
      does) and its :class:`CloseInfo` is returned (its
      :class:`WebSocketError` raised if that closing handshake fails).
    * **Raise** a :class:`HandshakeError` for a handshake answered with any
      other status (4xx: 401, 403, 404, a proxy's 407, ...), a SOCKS proxy's
      refusal by its rules or of the credentials, an invalid handshake response
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
    _check_arguments(handler, initial_delay, backoff_factor, max_delay, reset_after,
                     reconnect_on_normal_close, on_reconnect, options)
    # Validates the URL and every option now, before any I/O; it also makes
    # the first connection.
    wss = WebSocketStream(url, **options)
    attempt = 0
    while True:
        ending = await _run_once(wss, handler)
        if ending.handler_stopped or not _retries(ending.outcome, reconnect_on_normal_close):
            if isinstance(ending.outcome, CloseInfo):
                return ending.outcome
            raise ending.outcome
        if ending.lasted >= reset_after:
            attempt = 0
        attempt += 1
        delay = _random.uniform(0.0, backoff_ceiling(
            attempt, initial_delay, backoff_factor, max_delay
        ))
        _log.info("%s; reconnecting in %.1f s (attempt %d)", _describe(ending.outcome),
                  delay, attempt)
        if on_reconnect is not None:
            on_reconnect(ReconnectInfo(attempt=attempt, delay=delay, cause=ending.outcome))
        await trio.sleep(delay)
        wss = WebSocketStream(url, **options)


def backoff_ceiling(attempt: int, initial: float, factor: float, maximum: float) -> float:
    """The longest delay before reconnection number ``attempt`` (1, 2, ...)."""
    try:
        return min(maximum, initial * factor ** (attempt - 1))
    except OverflowError:
        # A float power past ~1e308 raises instead of giving inf; a client
        # that has retried for days is there.
        return maximum


@attrs.frozen
class _Ending:
    """How one turn went: the connection's outcome, how long it was open,
    and whether the handler returned while it was still open."""

    outcome: CloseInfo | WebSocketError
    lasted: float
    handler_stopped: bool


async def _run_once(wss: WebSocketStream, handler: Handler) -> _Ending:
    opened_at: float | None = None
    handler_stopped = False
    async with wss:
        try:
            await wss.opened
        except WebSocketError:
            pass  # closed raises the same error; it decides below
        else:
            opened_at = trio.current_time()
            try:
                await handler(wss)
            except BaseException as exc:
                if not _is_connection_end(exc, wss):
                    raise  # the async with closes with 1011 (1001 if cancelled)
            else:
                # Returning while the connection is open is the user's
                # choice to stop; the async with closes it with 1000.
                handler_stopped = wss._conn.is_open
    lasted = 0.0 if opened_at is None else trio.current_time() - opened_at
    # The connection's task has finished with the async with: closed is
    # settled, no need to wait (nor a checkpoint: nothing to cancel).
    error = wss.closed.exception()
    if error is not None:
        assert isinstance(error, WebSocketError)
        return _Ending(error, lasted, handler_stopped)
    return _Ending(wss.closed.result(), lasted, handler_stopped)


def _is_connection_end(exc: BaseException, wss: WebSocketStream) -> bool:
    """Whether the handler ended with the connection's own end, not a bug."""
    if wss._conn.is_open:
        return False  # the connection is fine: the handler itself failed
    if isinstance(exc, BaseExceptionGroup):
        # Two tasks of the handler's nursery, both finding the connection
        # gone. Anything else in the group (Cancelled included) is not ours.
        _, rest = exc.split(_CONNECTION_ENDS)
        return rest is None
    return isinstance(exc, _CONNECTION_ENDS)


def _retries(outcome: CloseInfo | WebSocketError, on_normal_close: bool) -> bool:
    if isinstance(outcome, AbortError):
        return False
    if isinstance(outcome, HandshakeError):
        return _handshake_retries(outcome)
    if outcome.close_code in RETRY_CODES:
        return True
    return on_normal_close and outcome.close_code in NORMAL_CODES


def _handshake_retries(error: HandshakeError) -> bool:
    if error.status is not None:
        return 500 <= error.status <= 599
    cause = error.__cause__
    if isinstance(cause, (OSError, trio.TooSlowError, EOFError)):
        return True
    if isinstance(cause, trio.BrokenResourceError):
        # A reset during the handshake passes; a certificate that failed
        # verification will fail the same way next time.
        return not _caused_by(cause, ssl.SSLCertVerificationError)
    return False  # an invalid response: the server is not what we expect


def _caused_by(exc: BaseException, kind: type[BaseException]) -> bool:
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, kind):
            return True
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return False


def _describe(outcome: CloseInfo | WebSocketError) -> str:
    if isinstance(outcome, CloseInfo):
        return f"closed with {outcome.close_code} {outcome.reason!r}"
    return f"{type(outcome).__name__}: {outcome.message} (code {outcome.close_code})"


def _check_number(name: str, value: object) -> float:
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        raise TypeError(f"{name} must be a number, not {type(value).__name__}")
    if math.isnan(value):
        raise ValueError(f"{name} must not be NaN")
    return float(value)


def _check_arguments(
    handler: object,
    initial_delay: object,
    backoff_factor: object,
    max_delay: object,
    reset_after: object,
    reconnect_on_normal_close: object,
    on_reconnect: object,
    options: ClientOptions,
) -> None:
    if not callable(handler):
        raise TypeError("handler must be an async function taking a WebSocketStream")
    if on_reconnect is not None and (
        not callable(on_reconnect) or inspect.iscoroutinefunction(on_reconnect)
    ):
        raise TypeError("on_reconnect must be a plain (not async) callable or None")
    if not isinstance(reconnect_on_normal_close, bool):
        raise TypeError("reconnect_on_normal_close must be a bool")
    if "stream" in options:
        raise TypeError("connect_forever dials each connection: stream= can serve one only")
    initial = _check_number("initial_delay", initial_delay)
    factor = _check_number("backoff_factor", backoff_factor)
    maximum = _check_number("max_delay", max_delay)
    reset = _check_number("reset_after", reset_after)
    if not 0 < initial < math.inf:
        raise ValueError(f"initial_delay must be positive and finite, not {initial}")
    if not 1 <= factor < math.inf:
        raise ValueError(f"backoff_factor must be at least 1 and finite, not {factor}")
    if not initial <= maximum < math.inf:
        raise ValueError(
            f"max_delay must be finite and at least initial_delay ({initial}), not {maximum}"
        )
    if reset < 0:
        raise ValueError(f"reset_after must not be negative, not {reset}")
