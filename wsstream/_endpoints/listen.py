"""Listening: ``serve`` on TCP (and TLS), ``serve_unix`` on a Unix socket.

Both open their listeners and hand them to :func:`serve_listeners`, the one
server; what is theirs is the sockets: ``SO_REUSEPORT`` for worker
processes, and the Unix socket's file (a stale one removed, ``mode``, and
removal on exit).
"""

from __future__ import annotations

import os
import ssl
from collections.abc import Sequence
from typing import NoReturn, Unpack

import trio

from .._options import ConnectionOptions
from .http import HeadersLike
from .neterrors import with_address
from .server import (
    DEFAULT_SERVER_HEADER,
    Handler,
    ProcessRequest,
    ProcessResponse,
    SelectSubprotocol,
    ServerOptions,
)
from .serverstats import ServerStatistics

__all__ = ["serve", "serve_unix"]


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
    process_response: ProcessResponse | None = None,
    backlog: int | None = None,
    reuse_port: bool = False,
    max_connections: int | None = None,
    statistics: ServerStatistics | None = None,
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

    ``process_response(request, response)``, sync or async, sees the 101
    about to be sent, once the request passed every check and
    ``process_request``: ``response`` is a :class:`Response` with status
    101, the 101's headers (``Upgrade``, ``Connection``,
    ``Sec-WebSocket-Accept``, the negotiated ``Sec-WebSocket-Extensions``
    and ``Sec-WebSocket-Protocol``, ``Date``, ``Server`` and
    ``response_headers``) and no body. It returns ``None`` to send the 101
    as it is; a :class:`Response` with status 101 to send that one instead
    (headers added, changed or removed: a ``Set-Cookie``, a header that
    tells the chosen subprotocol's parameters), as long as the five
    headers that make the upgrade (``Upgrade``, ``Connection``,
    ``Sec-WebSocket-Accept``, ``Sec-WebSocket-Extensions``,
    ``Sec-WebSocket-Protocol``) keep their values and the body stays empty
    (the negotiation is ``subprotocols``', ``select_subprotocol``'s and
    ``compression``'s); or a :class:`Response` with any other status to
    answer with it instead: the handshake is refused, as by
    ``process_request``. It is not called for requests refused before.

    A hook (``select_subprotocol``, ``process_request``,
    ``process_response``) that raises, or returns what it may not (a
    ``process_response`` that changes an upgrade header, say), gets the
    client a 500, never reaches the handler, and is logged on the
    ``wsstream.handshake`` logger with the hook's name and the traceback.

    ``ssl_context`` serves TLS. ``backlog``: the listening sockets' queue
    of connections not yet accepted (default: the system's maximum).

    ``reuse_port=True`` sets ``SO_REUSEPORT`` on the listening sockets, so
    that several processes (or several ``serve`` calls) can listen on the
    same port: the kernel spreads the connections between them (Linux,
    and FreeBSD's ``SO_REUSEPORT_LB``; macOS accepts the option but gives
    each connection to one of the sockets without balancing). Where the
    system has no ``SO_REUSEPORT`` (Windows), it raises :class:`OSError`
    (``errno.ENOPROTOOPT``) before anything listens. ``python -m wsstream
    serve --workers N`` is built on it (see :doc:`cli`).

    ``max_connections=N`` admits at most ``N`` connections at once,
    counted from the moment they are accepted, so handshakes in progress
    count. A connection accepted beyond it is answered ``503 Service
    Unavailable`` with ``Retry-After: 1`` at once, without reading its
    request and before any hook or handler runs, and closed (a lingering
    close, bounded by 1 second, so that the client reads the 503 instead of
    a reset; at most ``max(N, 64)`` refusals are in progress at once, and
    a connection beyond those is closed with no answer). ``None``: no
    limit. With TLS the 503 is sent after the TLS handshake, which the
    refusal's second bounds too.

    ``statistics``: a :class:`ServerStatistics` that counts this server's
    connections (open, refused, failed handshakes) and their messages and
    bytes; created by the caller, readable while ``serve`` runs.

    Other keyword arguments are the connection options of
    :class:`WebSocketStream` (timeouts, limits, compression, keepalive).

    Every argument is checked before anything listens: a wrong type raises
    :class:`TypeError` (``port=True``, ``origins="https://..."``,
    ``max_connections=1.5``); a bad value :class:`ValueError` (a port
    outside 0-65535, a header name that is not a token, CR or LF in a header
    value, ``max_connections=0``). If it cannot listen, it raises
    :class:`OSError` naming the address: ``"cannot listen on
    127.0.0.1:8765: address already in use"``.

    ``serve`` is :func:`serve_listeners` on the listeners it opens, as
    :func:`trio.serve_tcp` is :func:`trio.serve_listeners` on TCP.
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


async def serve_unix(
    handler: Handler,
    path: str | os.PathLike[str],
    *,
    task_status: trio.TaskStatus[list[trio.SocketListener]] = trio.TASK_STATUS_IGNORED,
    mode: int | None = None,
    backlog: int | None = None,
    **options: Unpack[ServerOptions],
) -> NoReturn:
    """Serve WebSocket connections on the Unix socket ``path`` until cancelled.

    The server of :func:`serve` (the same hooks, options, handler rules and
    graceful shutdown) on a Unix domain socket, for a server behind a
    reverse proxy on the same machine, or local clients only. Its clients
    dial it with ``WebSocketStream(url, unix_socket_path=path)``, or over a
    stream of their own: ``WebSocketStream(url,
    stream=await trio.open_unix_socket(path))``; the URL still gives the
    ``Host`` header, the path and the scheme.

    The socket file:

    * It is created by binding. If ``path`` already exists and is a socket
      that nobody listens on (a server that died without removing it), it
      is removed first; a socket on which a server listens (a connection to
      it succeeds) raises :class:`OSError` with ``errno.EADDRINUSE``
      (``"cannot listen on PATH: address already in use"``); anything
      else at ``path`` (a regular file, a directory, a symbolic link) is
      never removed: :class:`FileExistsError`.
    * ``mode``: permission bits given to it (``0o660``: owner and group
      only), set before it listens, so that no connection is accepted
      before they apply; ``None`` leaves what the process's umask gives.
    * It is removed when ``serve_unix`` ends (cancelled, or failed),
      unless another file has taken its place by then.

    A name starting with a NUL character (``"\\0name"``) is a Linux
    abstract socket: no file, so nothing is removed, and ``mode`` must be
    ``None``.

    With ``await nursery.start(serve_unix, ...)`` it returns the list of
    the one :class:`trio.SocketListener` it listens on. ``backlog``: as
    for :func:`serve`. On a Unix socket ``wss.remote_address`` (and
    ``request.remote_address``) is the peer's address as the system gives
    it: the client socket's path if it bound one, almost always ``""``
    (an unnamed socket) on Linux; a handler that must tell local clients
    apart can ask the socket for the peer's credentials (``SO_PEERCRED``).

    Raises :class:`TypeError` or :class:`ValueError` for a bad argument
    (``path`` not a str or path, empty, or with a NUL past its first
    character; ``mode`` not an int in 0-0o7777) before anything is created;
    :class:`OSError` naming the path when it cannot listen (no such
    directory, permission denied, a path too long for a socket address),
    or where the system has no Unix sockets.
    """
    raise NotImplementedError("designed, not built yet")
