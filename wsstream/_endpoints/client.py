"""Dialling: the transport a client speaks over, TLS included.

A :class:`Dialer` is the one place that decides what a client's bytes go
through, checked when the ``WebSocketStream`` is built and called when it
connects: the stream the user gave, a Unix socket, a tunnel through a proxy
(:mod:`.tunnel`, chosen by :mod:`.proxy`), or a new TCP connection to the
URL's host; then, for ``wss://``, TLS over it, with the URL's host as the
server name. A given stream that already is a :class:`trio.SSLStream` is
used as it is; a tunnel never is (TLS with an ``https://`` proxy is not
TLS with the server), nor a Unix socket.
"""

from __future__ import annotations

import os
import ssl

import trio

from .neterrors import at_path, with_address
from .proxy import parse_proxy, proxy_from_environment
from .tls import start_tls
from .tunnel import open_tunnel
from .url import WebSocketURL

__all__ = ["Dialer"]


class Dialer:
    """How a client reaches its server; see the module docstring.

    Construction checks the options (``TypeError``/``ValueError``, never
    showing a proxy's credentials) and, for ``proxy=True``, reads the
    environment. ``proxy`` is the proxy it will go through, ``None`` for
    none. While the tunnel is being opened, ``waiting_for_proxy`` names the
    proxy (without credentials), so that a timeout can say where it waited.
    """

    __slots__ = (
        "_proxy_ssl_context", "_ssl_context", "_stream", "_unix_socket_path", "_url",
        "_user_agent", "proxy", "waiting_for_proxy",
    )

    def __init__(
        self,
        url: WebSocketURL,
        *,
        stream: trio.abc.Stream | None = None,
        ssl_context: ssl.SSLContext | None = None,
        proxy: object = True,
        proxy_ssl_context: ssl.SSLContext | None = None,
        unix_socket_path: str | os.PathLike[str] | None = None,
        user_agent: str | None = None,
    ) -> None:
        self._url = url
        self._stream = stream
        self._ssl_context = ssl_context
        self._user_agent = user_agent
        self.waiting_for_proxy: str | None = None
        self._unix_socket_path = _check_path(unix_socket_path)
        if stream is not None and self._unix_socket_path is not None:
            raise ValueError("stream and unix_socket_path cannot both be given")
        if proxy_ssl_context is not None and not isinstance(proxy_ssl_context, ssl.SSLContext):
            raise TypeError("proxy_ssl_context must be an ssl.SSLContext or None")
        self._proxy_ssl_context = proxy_ssl_context
        if proxy is True:
            # The default: the environment's proxy, unless the connection
            # does not dial at all.
            given = stream is not None or self._unix_socket_path is not None
            self.proxy = None if given else proxy_from_environment(url)
        elif proxy is None:
            self.proxy = None
        else:
            self.proxy = parse_proxy(proxy)
            if stream is not None or self._unix_socket_path is not None:
                used = "stream" if stream is not None else "unix_socket_path"
                raise ValueError(f"a proxy is not used with {used}: pass proxy=None or no proxy")
            if proxy_ssl_context is not None and self.proxy.scheme != "https":
                raise ValueError(
                    f"proxy_ssl_context is for an https:// proxy, not {self.proxy.scheme}://"
                )

    async def __call__(self) -> trio.abc.Stream:
        """The stream to speak WebSocket over, connected and secured.

        On failure, a given ``stream`` is closed too: the connection owns
        it. Raises :class:`OSError` if the connection is refused or the host
        name cannot be resolved (its message names the address or the
        socket's path), :class:`trio.BrokenResourceError` if TLS fails (the
        message names the host and port), and
        :class:`~wsstream._endpoints.handshake.HandshakeFailure` for a
        proxy's failures. Cancellation closes what was opened.
        """
        url = self._url
        if self._stream is not None:
            stream = self._stream
            if isinstance(stream, trio.SSLStream):
                return stream
        elif self._unix_socket_path is not None:
            try:
                stream = await trio.open_unix_socket(self._unix_socket_path)
            except OSError as exc:
                raise at_path(exc, self._unix_socket_path)  # noqa: B904 (its cause is set)
        elif self.proxy is not None:
            self.waiting_for_proxy = str(self.proxy)
            stream = await open_tunnel(
                self.proxy, url.host, url.port,
                ssl_context=self._proxy_ssl_context, user_agent=self._user_agent,
            )
            self.waiting_for_proxy = None
        else:
            try:
                stream = await trio.open_tcp_stream(url.host, url.port)
            except OSError as exc:
                raise with_address(exc, url.host, url.port)  # noqa: B904 (its cause is set)
        if not url.secure:
            return stream
        return await start_tls(stream, url.host, self._ssl_context, _host_port(url))


def _check_path(path: object) -> str | None:
    if path is None:
        return None
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(
            f"unix_socket_path must be a str, a path or None, not {type(path).__name__}"
        )
    text = os.fspath(path)
    if not isinstance(text, str):
        raise TypeError("unix_socket_path must be a str path, not bytes")
    if not text:
        raise ValueError("unix_socket_path must not be empty")
    return text


def _host_port(url: WebSocketURL) -> str:
    host = f"[{url.host}]" if ":" in url.host else url.host
    return f"{host}:{url.port}"

