"""Listening: ``serve`` on TCP (and TLS), ``serve_unix`` on a Unix socket.

Both open their listeners and hand them to :func:`serve_listeners`, the one
server; what is theirs is the sockets: ``SO_REUSEPORT`` for worker
processes, and the Unix socket's file (a stale one removed, ``mode``, and
removal on exit).
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import socket
import ssl
import stat
from collections.abc import Sequence
from typing import Any, NoReturn, Unpack

import trio

from .._options import ConnectionOptions, options_from
from .http import HeadersLike
from .neterrors import os_error, with_address, with_path
from .server import (
    DEFAULT_SERVER_HEADER,
    Handler,
    ProcessRequest,
    ProcessResponse,
    SelectSubprotocol,
    ServerOptions,
    _config,
    check_max_connections,
    serve_on,
    server_config,
)
from .serverstats import ServerStatistics

__all__ = ["serve", "serve_unix"]

_log = logging.getLogger("wsstream.server")

#: The listen() backlog when none is given: the most the kernel allows
#: (Linux caps it at net.core.somaxconn), as trio's own default.
DEFAULT_BACKLOG = 0xFFFF

#: How long the probe of an existing socket file may wait for a connection:
#: a server that listens answers at once (the kernel accepts for it); one
#: whose backlog is full makes the probe wait, and is taken as alive.
STALE_PROBE_TIMEOUT = 1.0


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
    _check_backlog(backlog)
    if ssl_context is not None and not isinstance(ssl_context, ssl.SSLContext):
        raise TypeError("ssl_context must be an ssl.SSLContext or None")
    if not isinstance(reuse_port, bool):
        raise TypeError(f"reuse_port must be a bool, not {type(reuse_port).__name__}")
    max_connections = check_max_connections(max_connections)
    config = _config(
        handler, subprotocols=subprotocols, select_subprotocol=select_subprotocol,
        process_request=process_request, process_response=process_response, origins=origins,
        response_headers=response_headers, server_header=server_header, statistics=statistics,
        secure=ssl_context is not None, options=options_from(options),
    )
    if reuse_port and getattr(socket, "SO_REUSEPORT", None) is None:
        raise os_error(
            OSError, errno.ENOPROTOOPT,
            "reuse_port=True: this system has no SO_REUSEPORT",
        )
    try:
        if reuse_port:
            sockets = await _reuse_port_listeners(host, port, backlog)
        else:
            sockets = await trio.open_tcp_listeners(port, host=host, backlog=backlog)
    except OSError as exc:
        raise with_address(exc, host, port, "cannot listen on")  # noqa: B904 (its cause is set)
    listeners: list[Any] = list(sockets)
    if ssl_context is not None:
        listeners = [
            trio.SSLListener(listener, ssl_context, https_compatible=True)
            for listener in sockets
        ]
    # The TCP listeners, TLS or not, so that callers can read the port.
    await serve_on(config, listeners, max_connections, lambda: task_status.started(sockets))


async def _reuse_port_listeners(
    host: str | bytes | None, port: int, backlog: int | None
) -> list[trio.SocketListener]:
    """trio.open_tcp_listeners with SO_REUSEPORT on each socket (trio has no
    option for it): a listening socket per address of ``host``."""
    addresses = await trio.socket.getaddrinfo(
        host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
    )
    listeners: list[trio.SocketListener] = []
    try:
        for family, kind, proto, _, address in addresses:
            try:
                sock = trio.socket.socket(family, kind, proto)
            except OSError as exc:
                if exc.errno == errno.EAFNOSUPPORT:
                    continue  # IPv6 switched off, say: the others may do
                raise
            try:
                # SO_REUSEADDR: a restart need not wait for TIME_WAIT to end.
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                try:
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
                except OSError as exc:
                    # Defined by the headers, refused by the kernel (WSL 1).
                    raise os_error(
                        OSError, exc.errno or errno.ENOPROTOOPT,
                        f"reuse_port=True: the system refuses SO_REUSEPORT ({exc})",
                    ) from exc
                if family == socket.AF_INET6:
                    # Only IPv6 on the IPv6 socket: the IPv4 one has the rest.
                    sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
                await sock.bind(address)
                sock.listen(DEFAULT_BACKLOG if backlog is None else backlog)
            except BaseException:
                sock.close()
                raise
            listeners.append(trio.SocketListener(sock))
        if not listeners:
            raise os_error(OSError, errno.EAFNOSUPPORT, "no address of a supported family")
    except BaseException:
        for listener in listeners:
            listener.socket.close()
        raise
    return listeners


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
    path = _check_path(path)
    abstract = path.startswith("\0")
    if mode is not None:
        if not isinstance(mode, int) or isinstance(mode, bool):
            raise TypeError(f"mode must be an int or None, not {type(mode).__name__}")
        if not 0 <= mode <= 0o7777:
            raise ValueError(f"mode must be permission bits, 0-0o7777, not {mode:#o}")
        if abstract:
            raise ValueError("an abstract socket has no file: mode must be None")
    _check_backlog(backlog)
    max_connections = check_max_connections(options.pop("max_connections", None))
    config = server_config(handler, options, secure=False)
    family = getattr(socket, "AF_UNIX", None)
    if family is None:
        raise os_error(OSError, errno.EAFNOSUPPORT, "this system has no Unix sockets")
    sock = trio.socket.socket(family, socket.SOCK_STREAM)
    created: os.stat_result | None = None
    try:
        if not abstract:
            await _remove_stale(path)
        try:
            await sock.bind(path)
            if not abstract:
                created = os.stat(path)
                if mode is not None:
                    # Before listen(): until then no client can connect, so
                    # none gets in under the umask's permissions.
                    os.chmod(path, mode)
            sock.listen(DEFAULT_BACKLOG if backlog is None else backlog)
        except OSError as exc:
            raise with_path(exc, path, "cannot listen on")  # noqa: B904 (its cause is set)
        listener = trio.SocketListener(sock)
    except BaseException:
        sock.close()
        if created is not None:
            _remove_if_ours(path, created)
        raise
    try:
        await serve_on(config, [listener], max_connections, lambda: task_status.started([listener]))
    finally:
        if created is not None:
            _remove_if_ours(path, created)


def _check_path(path: object) -> str:
    if isinstance(path, os.PathLike):
        path = os.fspath(path)
    if not isinstance(path, str):
        raise TypeError(f"path must be a str or an os.PathLike of str, not {type(path).__name__}")
    if not path:
        raise ValueError("path must not be empty")
    if "\0" in path[1:]:
        raise ValueError(f"path must not hold a NUL character past its first: {path!r}")
    return path


def _check_backlog(backlog: object) -> None:
    if backlog is not None:
        if not isinstance(backlog, int) or isinstance(backlog, bool):
            raise TypeError(f"backlog must be an int or None, not {type(backlog).__name__}")
        if backlog < 0:
            raise ValueError(f"backlog must not be negative, not {backlog}")


async def _remove_stale(path: str) -> None:
    """Remove the socket file at ``path`` if no server listens on it; raise
    if a server does, or if something else than a socket is there."""
    try:
        found = os.lstat(path)
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(found.st_mode):
        raise os_error(
            FileExistsError, errno.EEXIST,
            f"cannot listen on {path}: it exists and is not a socket (only a stale socket "
            "file is removed)",
        )
    with trio.socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        try:
            with trio.move_on_after(STALE_PROBE_TIMEOUT):
                await probe.connect(path)
        except ConnectionRefusedError:
            # Nobody listens: a server died without removing it.
            _log.info("removing the stale socket file %s", path)
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)
            return
        except FileNotFoundError:
            return  # removed meanwhile
        except OSError as exc:
            # Permission denied, say: we cannot tell, so it stays.
            raise with_path(exc, path, "cannot listen on")  # noqa: B904 (its cause is set)
    raise os_error(
        OSError, errno.EADDRINUSE,
        f"cannot listen on {path}: address already in use (a server listens on it)",
    )


def _remove_if_ours(path: str, created: os.stat_result) -> None:
    """Remove the socket file we created, unless another took its place."""
    try:
        found = os.lstat(path)
        if (found.st_dev, found.st_ino) == (created.st_dev, created.st_ino):
            os.unlink(path)
    except OSError as exc:
        _log.debug("could not remove the socket file %s: %s", path, exc)
