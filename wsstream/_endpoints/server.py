"""The server side: ``serve`` for TCP (and TLS), ``serve_stream`` for one stream."""

from __future__ import annotations

import inspect
import logging
import ssl
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, NoReturn, Unpack

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
from .neterrors import with_address
from .origin import allowed_origins
from .url import check_protocols

__all__ = ["serve", "serve_stream", "Handler", "handler_failed"]

_log = logging.getLogger("wsstream.server")

Handler = Callable[[WebSocketStream], Awaitable[None]]
ProcessRequest = Callable[[Request], "Awaitable[Response | None] | Response | None"]
SelectSubprotocol = Callable[[Request, Sequence[str]], "str | None"]

DEFAULT_SERVER_HEADER = f"wsstream/{__version__}"


@attrs.frozen
class _Config:
    handler: Handler
    options: Options
    hooks: ServerHooks
    secure: bool


def _config(
    handler: Handler,
    *,
    subprotocols: Sequence[str],
    select_subprotocol: SelectSubprotocol | None,
    process_request: ProcessRequest | None,
    origins: Sequence[str | None] | None,
    response_headers: HeadersLike | None,
    server_header: str | None,
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

    headers = list(Headers(response_headers).raw_items())
    if server_header is not None:
        headers.append(("Server", server_header))
    return _Config(
        handler=handler,
        options=options,
        hooks=ServerHooks(
            select_subprotocol=select, process_request=process, response_headers=Headers(headers),
            origins=None if origins is None else allowed_origins(origins),
            compression=options.compression,
        ),
        secure=secure,
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

    Under ``serve`` (``server`` given) the connection runs shielded from the
    cancellation of ``serve``, so that shutdown can close it with 1001
    instead of cutting it, and an error of ours is logged, not raised.
    """
    options = config.options
    scope: trio.CancelScope | None = None
    try:
        conn = Connection(ServerHandshake(config.hooks), options, open_info, stream=stream)
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
                return
            request = conn.request
            assert request is not None
            # A scan, not a lookup: the index of the headers is built lazily.
            host = next(
                (v for k, v in request.headers.raw_items() if k.lower() == "host"), "localhost"
            )
            scheme = "wss" if config.secure else "ws"
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
        if server is not None and scope is not None:
            server.unregister(scope)


class _Server:
    """The live connections of one ``serve`` call, for graceful shutdown."""

    def __init__(self, config: _Config) -> None:
        self.config = config
        self.connections: dict[trio.CancelScope, Connection] = {}
        self.shutting_down = False

    def handle(self, stream: trio.abc.Stream) -> Awaitable[None]:
        # Not a coroutine of its own: one frame less per connection.
        return _serve_connection(self.config, stream, self)

    def register(self, scope: trio.CancelScope, conn: Connection) -> None:
        self.connections[scope] = conn
        if self.shutting_down:
            self._shut(scope, conn)

    def unregister(self, scope: trio.CancelScope) -> None:
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


async def serve(
    handler: Handler,
    host: str | bytes | None,
    port: int,
    *,
    task_status: trio.TaskStatus[list[trio.SocketListener]] = trio.TASK_STATUS_IGNORED,
    ssl_context: ssl.SSLContext | None = None,
    subprotocols: Sequence[str] = (),
    select_subprotocol: SelectSubprotocol | None = None,
    process_request: ProcessRequest | None = None,
    origins: Sequence[str | None] | None = None,
    response_headers: HeadersLike | None = None,
    server_header: str | None = DEFAULT_SERVER_HEADER,
    backlog: int | None = None,
    **options: Unpack[ConnectionOptions],
) -> NoReturn:
    """Serve WebSocket connections on ``host``:``port`` until cancelled.

    Each connection's handler gets an open :class:`WebSocketStream`. When the
    handler returns the connection is closed with 1000; when it raises, with
    1011 and the exception is logged on the ``wsstream.server`` logger. Failed
    handshakes (not a WebSocket request, rejected by ``process_request``,
    a forbidden origin) are answered with an HTTP error and never reach the
    handler.

    With ``await nursery.start(serve, ...)`` it returns the list of
    :class:`trio.SocketListener` it listens on (port 0 picks a free port).
    Cancelling it stops accepting, closes every open connection with 1001
    and waits for each at most ``close_timeout`` before cutting it.

    ``subprotocols``: the server picks the first of the client's offers that
    it supports, else none; ``select_subprotocol(request, offered)`` replaces
    that rule. ``process_request(request)``, sync or async, may return a
    :class:`Response` to reject the handshake with it. ``origins``: allowed
    ``Origin`` values (``None`` in the list allows requests without one);
    others get 403. The default accepts every origin: a server that knows
    its users by their cookies must set it, or any web site can connect
    in their name (cross-site WebSocket hijacking; see the server guide).
    ``response_headers``: extra headers on the 101 response;
    ``server_header``: the ``Server`` header, ``None`` to omit it.
    ``ssl_context`` serves TLS. Other keyword arguments are the connection
    options of :class:`WebSocketStream` (timeouts, limits, compression,
    keepalive).

    Every argument is checked before anything listens: a wrong type raises
    :class:`TypeError` (``port=True``, ``origins="https://..."``); a bad
    value :class:`ValueError` (a port outside 0-65535, a header name that is
    not a token, CR or LF in a header value). If it cannot listen, it raises
    :class:`OSError` naming the address: ``"cannot listen on
    127.0.0.1:8765: address already in use"``.
    """
    if host is not None and not isinstance(host, (str, bytes)):
        raise TypeError(f"host must be a str, bytes or None, not {type(host).__name__}")
    if not isinstance(port, int) or isinstance(port, bool):
        raise TypeError(f"port must be an int, not {type(port).__name__}")
    if not 0 <= port <= 65535:
        raise ValueError(f"port must be 0-65535, not {port}")
    if backlog is not None:
        if not isinstance(backlog, int) or isinstance(backlog, bool):
            raise TypeError(f"backlog must be an int or None, not {type(backlog).__name__}")
        if backlog < 0:
            raise ValueError(f"backlog must not be negative, not {backlog}")
    if ssl_context is not None and not isinstance(ssl_context, ssl.SSLContext):
        raise TypeError("ssl_context must be an ssl.SSLContext or None")
    config = _config(
        handler, subprotocols=subprotocols, select_subprotocol=select_subprotocol,
        process_request=process_request, origins=origins, response_headers=response_headers,
        server_header=server_header, secure=ssl_context is not None, options=options_from(options),
    )
    try:
        sockets = await trio.open_tcp_listeners(port, host=host, backlog=backlog)
    except OSError as exc:
        raise with_address(exc, host, port, "cannot listen on")  # noqa: B904 (its cause is set)
    listeners: list[Any] = list(sockets)
    if ssl_context is not None:
        listeners = [
            trio.SSLListener(listener, ssl_context, https_compatible=True)
            for listener in sockets
        ]
    server = _Server(config)
    async with trio.open_nursery() as connections:
        try:
            # The TCP listeners, TLS or not, so that callers can read the port.
            task_status.started(sockets)
            await trio.serve_listeners(server.handle, listeners, handler_nursery=connections)
        finally:
            server.shutdown()
    raise AssertionError("serve_listeners returned")  # pragma: no cover


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
    secure: bool = False,
    **options: Unpack[ConnectionOptions],
) -> None:
    """Serve one connection on an already accepted stream; returns when it closed.

    Same handshake options and handler rules as :func:`serve` (``secure``
    says whether the stream is TLS, for ``wss.url``). The stream is closed
    on return. Handler exceptions are logged, not raised; cancellation closes
    the connection forcefully and propagates. Bad arguments raise
    :class:`TypeError` or :class:`ValueError` before the stream is used.
    """
    if not isinstance(stream, trio.abc.Stream):
        raise TypeError(f"stream must be a trio.abc.Stream, not {type(stream).__name__}")
    config = _config(
        handler, subprotocols=subprotocols, select_subprotocol=select_subprotocol,
        process_request=process_request, origins=origins, response_headers=response_headers,
        server_header=server_header, secure=secure, options=options_from(options),
    )
    try:
        await _serve_connection(config, stream)
    except BaseExceptionGroup as group:
        raise collapse(group) from None
