"""Dialling: the TCP (and TLS) stream a client speaks over."""

from __future__ import annotations

import ssl

import trio

from ._url import WebSocketURL

__all__ = ["open_stream"]


async def open_stream(url: WebSocketURL, ssl_context: ssl.SSLContext | None) -> trio.abc.Stream:
    """Connect to the URL's host; for ``wss``, finish the TLS handshake too.

    Raises :class:`OSError` if the connection is refused or the host cannot
    be resolved, :class:`trio.BrokenResourceError` if TLS fails (an
    untrusted certificate, a wrong host name).
    """
    stream: trio.abc.Stream = await trio.open_tcp_stream(url.host, url.port)
    if url.secure:
        context = ssl_context if ssl_context is not None else ssl.create_default_context()
        tls = trio.SSLStream(stream, context, server_hostname=url.host, https_compatible=True)
        try:
            await tls.do_handshake()
        except BaseException:
            await trio.aclose_forcefully(stream)
            raise
        stream = tls
    return stream
