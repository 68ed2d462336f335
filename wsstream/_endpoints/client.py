"""Dialling: the transport a client speaks over, TLS included.

:func:`open_transport` is the one place that decides what a client's bytes
go through: a new TCP connection to the URL's host, or the stream the user
gave; then, for ``wss://``, TLS over it. A given stream gets TLS too (a
``wss://`` URL over a tunnel must not go out in clear), unless it already is
a :class:`trio.SSLStream`. A proxy tunnel is one more given stream.
"""

from __future__ import annotations

import ssl

import trio

from .neterrors import with_address
from .url import WebSocketURL

__all__ = ["open_transport"]


async def open_transport(
    url: WebSocketURL,
    stream: trio.abc.Stream | None = None,
    ssl_context: ssl.SSLContext | None = None,
) -> trio.abc.Stream:
    """The stream to speak WebSocket over for ``url``, connected and secured.

    Without ``stream``, connects to the URL's host and port. For ``wss://``
    the result is TLS over that connection or over ``stream`` (unless
    ``stream`` is already a :class:`trio.SSLStream`): the server name and
    the certificate check come from the URL's host, the trust from
    ``ssl_context`` (default: :func:`ssl.create_default_context`). On
    failure, a given ``stream`` is closed too: the connection owns it.

    Raises :class:`OSError` if the connection is refused or the host name
    cannot be resolved, and :class:`trio.BrokenResourceError` if TLS fails
    (an untrusted certificate, a wrong host name, a peer that does not
    speak TLS); both messages name the host and port.
    """
    if stream is None:
        try:
            stream = await trio.open_tcp_stream(url.host, url.port)
        except OSError as exc:
            raise with_address(exc, url.host, url.port)  # noqa: B904 (its cause is set)
    if not url.secure or isinstance(stream, trio.SSLStream):
        return stream
    context = ssl_context if ssl_context is not None else ssl.create_default_context()
    tls = trio.SSLStream(stream, context, server_hostname=url.host, https_compatible=True)
    try:
        await tls.do_handshake()
    except trio.BrokenResourceError as exc:
        await trio.aclose_forcefully(stream)
        reason = exc.__cause__ or exc
        # The same error and cause (the ssl module's: callers tell an
        # untrusted certificate by it), with a message that names the peer.
        raise trio.BrokenResourceError(
            f"TLS with {_host_port(url)} failed: {reason}"
        ) from exc.__cause__
    except BaseException:
        await trio.aclose_forcefully(stream)
        raise
    return tls


def _host_port(url: WebSocketURL) -> str:
    host = f"[{url.host}]" if ":" in url.host else url.host
    return f"{host}:{url.port}"
