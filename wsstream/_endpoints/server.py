"""The server: ``serve_listeners`` on any listeners, ``serve_stream`` for one stream.

``serve`` and ``serve_unix`` (``listen``) open listeners and call
:func:`serve_listeners`; every accepted connection goes through
:meth:`_Server.handle`, which admits it (``max_connections``) or refuses it
with a 503, and :func:`_serve_connection` serves it from the handshake to
the close. ``serve_stream`` is :func:`_serve_connection` alone.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, NoReturn, Unpack, cast

import attrs
import trio

from .._engine.connection import RUN_TASK_NAME, Connection
from .._errors import collapse
from .._options import ConnectionOptions, Options, options_from
from .._streams.channels import open_info
from .._streams.stream import WebSocketStream
from .._version import __version__
from .handshake import ServerHandshake, ServerHooks
from .http import Headers, HeadersLike, Request, Response, check_header_value
from .origin import allowed_origins
from .serverstats import ServerStatistics
from .url import check_protocols

__all__ = [
    "DEFAULT_SERVER_HEADER",
    "Handler",
    "ServerOptions",
    "check_max_connections",
    "handler_failed",
    "serve_listeners",
    "serve_on",
    "serve_stream",
    "server_config",
]

_log = logging.getLogger("wsstream.server")

Handler = Callable[[WebSocketStream], Awaitable[None]]
ProcessRequest = Callable[[Request], "Awaitable[Response | None] | Response | None"]
ProcessResponse = Callable[[Request, Response], "Awaitable[Response | None] | Response | None"]
SelectSubprotocol = Callable[[Request, Sequence[str]], "str | None"]


class ServerOptions(ConnectionOptions, total=False):
    """The keyword arguments of :func:`serve_listeners` and :func:`serve_unix`:
    those of :func:`serve` besides ``host``, ``port``, ``ssl_context``,
    ``backlog`` and ``reuse_port``, typed so that ``mypy --strict`` checks
    callers."""

    subprotocols: Sequence[str]
    select_subprotocol: SelectSubprotocol | None
    process_request: ProcessRequest | None
    process_response: ProcessResponse | None
    origins: Sequence[str | None] | None
    response_headers: HeadersLike | None
    server_header: str | None
    max_connections: int | None
    statistics: ServerStatistics | None

DEFAULT_SERVER_HEADER = f"wsstream/{__version__}"


@attrs.frozen
class _Config:
    handler: Handler
    options: Options
    hooks: ServerHooks
    secure: bool
    statistics: ServerStatistics | None


def _config(
    handler: Handler,
    *,
    subprotocols: Sequence[str],
    select_subprotocol: SelectSubprotocol | None,
    process_request: ProcessRequest | None,
    process_response: ProcessResponse | None,
    origins: Sequence[str | None] | None,
    response_headers: HeadersLike | None,
    server_header: str | None,
    statistics: ServerStatistics | None,
    secure: bool,
    options: Options,
) -> _Config:
    if not callable(handler):
        raise TypeError("handler must be an async function taking a WebSocketStream")
    supported = list(check_protocols(subprotocols, "subprotocols"))
    if select_subprotocol is not None and not callable(select_subprotocol):
        raise TypeError("select_subprotocol must be a function or None")
    if process_request is not None and not callable(process_request):
        raise TypeError("process_request must be a function or None")
    if process_response is not None and not callable(process_response):
        raise TypeError("process_response must be a function or None")
    if statistics is not None and not isinstance(statistics, ServerStatistics):
        raise TypeError(
            f"statistics must be a wsstream.ServerStatistics or None, "
            f"not {type(statistics).__name__}"
        )
    if origins is not None:
        if isinstance(origins, (str, bytes)) or not isinstance(origins, Sequence):
            raise TypeError(
                f"origins must be a sequence of str or None, not {type(origins).__name__}"
            )
        for origin in origins:
            if origin is not None and not isinstance(origin, str):
                raise TypeError(f"each origin must be a str or None, not {type(origin).__name__}")
    if server_header is not None:
        check_header_value("Server", server_header)
    if not isinstance(secure, bool):
        raise TypeError(f"secure must be a bool, not {type(secure).__name__}")

    def first_supported(request: Request, offered: Sequence[str]) -> str | None:
        # The first of the client's offers that we support (the client
        # lists its preference first).
        for name in offered:
            if name in supported:
                return name
        return None

    select = first_supported if select_subprotocol is None else select_subprotocol

    async def process(request: Request) -> Response | None:
        if process_request is None:
            return None
        result = process_request(request)
        if inspect.isawaitable(result):
            result = await result
        if result is not None and not isinstance(result, Response):
            raise TypeError("process_request must return a wsstream.Response or None")
        return result

    respond = None
    if process_response is not None:
        hook = process_response

        async def respond(request: Request, response: Response) -> Response | None:
            result = hook(request, response)
            if inspect.isawaitable(result):
                result = await result
            if result is not None and not isinstance(result, Response):
                raise TypeError("process_response must return a wsstream.Response or None")
            return result

    headers = list(Headers(response_headers).raw_items())
    if server_header is not None:
        headers.append(("Server", server_header))
    return _Config(
        handler=handler,
        options=options,
        hooks=ServerHooks(
            select_subprotocol=select, process_request=process, process_response=respond,
            response_headers=Headers(headers),
            origins=None if origins is None else allowed_origins(origins),
            compression=options.deflate,
        ),
        secure=secure,
        statistics=statistics,
    )


def server_config(handler: Handler, options: ServerOptions, secure: bool) -> _Config:
    """The config from :class:`ServerOptions` keyword arguments but
    ``max_connections`` (the hooks taken out, the rest checked as connection
    options)."""
    given: dict[str, Any] = dict(options)
    return _config(
        handler,
        subprotocols=given.pop("subprotocols", ()),
        select_subprotocol=given.pop("select_subprotocol", None),
        process_request=given.pop("process_request", None),
        process_response=given.pop("process_response", None),
        origins=given.pop("origins", None),
        response_headers=given.pop("response_headers", None),
        server_header=given.pop("server_header", DEFAULT_SERVER_HEADER),
        statistics=given.pop("statistics", None),
        secure=secure,
        options=options_from(cast(ConnectionOptions, given)),
    )


def handler_failed(conn: Connection, exc: Exception) -> bool:
    """Whether ``exc``, raised by a handler, is the handler's failure (logged,
    closed with 1011) rather than the connection's own end reaching it (a
    send after the peer left, say: not a handler bug, nothing to report).
    wsstream.testing asks too, to raise exactly the failures logged here."""
    if isinstance(exc, (trio.BrokenResourceError, trio.ClosedResourceError)):
        return conn.is_open
    return True


async def _serve_connection(
    config: _Config, stream: trio.abc.Stream, server: _Server | None = None
) -> None:
    """Handshake, run the handler, close: one connection, start to end.

    Under a server (``server`` given) the connection runs shielded from the
    cancellation of the server, so that shutdown can close it with 1001
    instead of cutting it, and an error of ours is logged, not raised.
    """
    options = config.options
    statistics = config.statistics
    scope: trio.CancelScope | None = None
    conn: Connection | None = None
    try:
        conn = Connection(ServerHandshake(config.hooks), options, open_info, stream=stream)
        if statistics is not None:
            statistics._opened(conn)
        async with trio.open_nursery() as nursery:
            if server is not None:
                # The nursery's own scope is the shield (one scope less per
                # connection); nothing has checkpointed since the task began.
                scope = nursery.cancel_scope
                scope.shield = True
                server.register(scope, conn)
            nursery.start_soon(conn.run, name=RUN_TASK_NAME)
            try:
                await conn.opened
            except trio.BrokenResourceError as exc:
                _log.debug("connection %s: handshake failed: %s", conn.id, exc)
                if statistics is not None:
                    statistics.handshakes_failed += 1
                return
            request = conn.request
            assert request is not None
            # A scan, not a lookup: the index of the headers is built lazily.
            host = next(
                (v for k, v in request.headers.raw_items() if k.lower() == "host"), "localhost"
            )
            # A listener of the caller's may give TLS streams: they are wss.
            secure = config.secure or isinstance(stream, trio.SSLStream)
            scheme = "wss" if secure else "ws"
            try:
                wss = WebSocketStream._accepted(conn, f"{scheme}://{host}{request.path}", request)
            except ValueError:
                url = f"{scheme}://localhost{request.path}"
                wss = WebSocketStream._accepted(conn, url, request)
            code = 1000
            try:
                await config.handler(wss)
            except Exception as exc:
                if handler_failed(conn, exc):
                    _log.exception("connection %s: the handler raised; closing with 1011", conn.id)
                    code = 1011
                else:
                    _log.debug("connection %s: the handler ended with %r", conn.id, exc)
            except BaseException:
                conn.close_forcefully(1001, "")
                raise
            conn.discard_incoming()
            conn.close(code, "")
    except Exception:
        if server is None:
            raise
        _log.exception("unexpected error in a connection")  # must not take the server down
    finally:
        if server is not None:
            server.finished(scope)
        if statistics is not None and conn is not None:
            statistics._finished(conn)


#: The answer to a connection beyond max_connections: written at once,
#: whatever the client sent (its request is never read).
_SERVICE_UNAVAILABLE_BODY = (
    b"Failed to open a WebSocket connection: the server is at its connection limit; "
    b"retry later.\n"
)
SERVICE_UNAVAILABLE = (
    b"HTTP/1.1 503 Service Unavailable\r\n"
    b"Retry-After: 1\r\n"
    b"Content-Type: text/plain; charset=utf-8\r\n"
    + f"Content-Length: {len(_SERVICE_UNAVAILABLE_BODY)}\r\n".encode()
    + b"Connection: close\r\n"
    b"\r\n"
    + _SERVICE_UNAVAILABLE_BODY
)

#: How long a refusal may take, all told: the TLS handshake if any, the
#: 503, and the lingering close (reading what the client sent until it
#: closes, so that our close is a FIN: closing a socket with unread input
#: sends a reset, which can destroy the 503 before the client reads it).
REFUSAL_TIMEOUT = 1.0
#: What a lingering close reads at most before it closes anyway.
REFUSAL_DRAIN = 64 * 1024
#: Refusals in progress at once, at least (else max_connections): beyond,
#: a connection is closed with no answer, so that a flood of refused
#: clients holds a bounded number of sockets.
MIN_REFUSALS = 64


class _Server:
    """One server's live connections: admission (``max_connections``) and
    graceful shutdown."""

    def __init__(self, config: _Config, max_connections: int | None) -> None:
        self.config = config
        self.connections: dict[trio.CancelScope, Connection] = {}
        self.shutting_down = False
        self.max_connections = max_connections
        # Accepted and not finished, handshakes included: what the limit
        # bounds (one server's own, whatever statistics object it shares).
        self.count = 0
        self.refusing = 0
        self.max_refusing = max(max_connections or 0, MIN_REFUSALS)

    def handle(self, stream: trio.abc.Stream) -> Awaitable[None]:
        # Called by trio's accept loop as it starts the connection's task,
        # so the count is taken at accept time. Not a coroutine of its
        # own: one frame less per connection.
        limit = self.max_connections
        if limit is not None and self.count >= limit:
            return self._refuse(stream)
        self.count += 1
        return _serve_connection(self.config, stream, self)

    async def _refuse(self, stream: trio.abc.Stream) -> None:
        """Answer 503 and close; never raises (but Cancelled)."""
        if self.config.statistics is not None:
            self.config.statistics._refused()
        if self.refusing >= self.max_refusing:
            _log.debug("over max_connections, with refusals pending: closing at once")
            await trio.aclose_forcefully(stream)
            return
        self.refusing += 1
        try:
            with trio.move_on_after(REFUSAL_TIMEOUT):
                await stream.send_all(SERVICE_UNAVAILABLE)
                if isinstance(stream, trio.abc.HalfCloseableStream):
                    await stream.send_eof()
                drained = 0
                while drained < REFUSAL_DRAIN:
                    data = await stream.receive_some(REFUSAL_DRAIN)
                    if not data:
                        break
                    drained += len(data)
        except (trio.BrokenResourceError, trio.ClosedResourceError, OSError) as exc:
            _log.debug("refusing a connection over max_connections: %r", exc)
        except Exception:
            _log.exception("unexpected error refusing a connection")  # the server goes on
        finally:
            self.refusing -= 1
            await trio.aclose_forcefully(stream)

    def register(self, scope: trio.CancelScope, conn: Connection) -> None:
        self.connections[scope] = conn
        if self.shutting_down:
            self._shut(scope, conn)

    def finished(self, scope: trio.CancelScope | None) -> None:
        self.count -= 1
        if scope is not None:
            del self.connections[scope]

    def _shut(self, scope: trio.CancelScope, conn: Connection) -> None:
        timeout = self.config.options.close_timeout
        deadline = trio.current_time() + (timeout if timeout is not None else 10.0)
        scope.deadline = min(scope.deadline, deadline)
        conn.discard_incoming()
        conn.close(1001, "")

    def shutdown(self) -> None:
        """Close every connection with 1001, each bounded by close_timeout."""
        self.shutting_down = True
        for scope, conn in list(self.connections.items()):
            self._shut(scope, conn)


def check_max_connections(value: object) -> int | None:
    """``value`` if it is a valid ``max_connections``: None or an int >= 1."""
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(f"max_connections must be an int or None, not {type(value).__name__}")
    if value < 1:
        raise ValueError(f"max_connections must be at least 1, not {value}")
    return value


async def serve_on(
    config: _Config,
    listeners: Sequence[trio.abc.Listener[Any]],
    max_connections: int | None,
    started: Callable[[], None],
) -> NoReturn:
    """The one server loop of serve, serve_unix and serve_listeners: accept on
    every listener, serve each connection, and on the way out (cancelled, or
    an accept loop failed) close every connection with 1001. ``started``
    is called once the accept loops are about to run."""
    server = _Server(config, max_connections)
    async with trio.open_nursery() as connections:
        try:
            started()
            await trio.serve_listeners(server.handle, list(listeners), handler_nursery=connections)
        finally:
            server.shutdown()
    raise AssertionError("serve_listeners returned")  # pragma: no cover


async def serve_listeners(
    handler: Handler,
    listeners: Sequence[trio.abc.Listener[trio.abc.Stream]],
    *,
    task_status: trio.TaskStatus[list[trio.abc.Listener[trio.abc.Stream]]] = (
        trio.TASK_STATUS_IGNORED
    ),
    **options: Unpack[ServerOptions],
) -> NoReturn:
    """Serve WebSocket connections on ``listeners`` until cancelled.

    What :func:`trio.serve_listeners` is to :func:`trio.serve_tcp`: the
    same server as :func:`serve` (which is this function on the listeners
    it opens), on any :class:`trio.abc.Listener` of streams: TCP or TLS
    listeners made by hand (socket options of your own, a socket passed in
    by systemd), Unix sockets, a listener of an application's own. It
    accepts on each listener in a task of its own, serves each connection
    as :func:`serve` does, and takes its keyword arguments (the hooks,
    ``max_connections``, ``statistics``, the connection options); a
    connection is ``wss://`` (for ``wss.url``) when the listener gives a
    :class:`trio.SSLStream`.

    With ``await nursery.start(serve_listeners, ...)`` it returns the
    listeners, as a list, once it is ready to accept. Cancelling it stops
    accepting, closes the listeners (they belong to it from the call on,
    as with :func:`trio.serve_listeners`), closes every open connection
    with 1001 and waits for each at most ``close_timeout`` before cutting
    it. Errors of ``accept()`` that mean the process is out of resources
    (too many open files, no memory) are logged and retried after 100 ms,
    as trio does; any other propagates and ends the server (after the
    same shutdown).

    Raises :class:`TypeError` if ``listeners`` is not a sequence of
    :class:`trio.abc.Listener` (a single listener included) or an argument
    has a wrong type, :class:`ValueError` for an empty sequence or a bad
    value, before accepting anything.
    """
    if isinstance(listeners, trio.abc.Listener) or not isinstance(listeners, Sequence):
        raise TypeError(
            f"listeners must be a sequence of trio.abc.Listener, not {type(listeners).__name__}"
        )
    for listener in listeners:
        if not isinstance(listener, trio.abc.Listener):
            raise TypeError(f"each listener must be a trio.abc.Listener, not {listener!r}")
    if not listeners:
        raise ValueError("listeners must not be empty")
    max_connections = check_max_connections(options.pop("max_connections", None))
    config = server_config(handler, options, secure=False)
    given = list(listeners)
    await serve_on(config, given, max_connections, lambda: task_status.started(given))


async def serve_stream(
    handler: Handler,
    stream: trio.abc.Stream,
    *,
    subprotocols: Sequence[str] = (),
    select_subprotocol: SelectSubprotocol | None = None,
    process_request: ProcessRequest | None = None,
    origins: Sequence[str | None] | None = None,
    response_headers: HeadersLike | None = None,
    server_header: str | None = DEFAULT_SERVER_HEADER,
    process_response: ProcessResponse | None = None,
    statistics: ServerStatistics | None = None,
    secure: bool = False,
    **options: Unpack[ConnectionOptions],
) -> None:
    """Serve one connection on an already accepted stream; returns when it closed.

    Same handshake options and handler rules as :func:`serve` (``secure``
    says whether the stream is TLS, for ``wss.url``; a :class:`trio.SSLStream`
    is TLS whatever it says), ``process_response`` and ``statistics``
    included. The stream is closed
    on return. Handler exceptions are logged, not raised; cancellation closes
    the connection forcefully and propagates. Bad arguments raise
    :class:`TypeError` or :class:`ValueError` before the stream is used.
    """
    if not isinstance(stream, trio.abc.Stream):
        raise TypeError(f"stream must be a trio.abc.Stream, not {type(stream).__name__}")
    config = _config(
        handler, subprotocols=subprotocols, select_subprotocol=select_subprotocol,
        process_request=process_request, process_response=process_response, origins=origins,
        response_headers=response_headers, server_header=server_header, statistics=statistics,
        secure=secure, options=options_from(options),
    )
    try:
        await _serve_connection(config, stream)
    except BaseExceptionGroup as group:
        raise collapse(group) from None
