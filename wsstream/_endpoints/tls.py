"""TLS for a client: with the server, or with an ``https://`` proxy."""

from __future__ import annotations

import ssl

import trio

__all__ = ["start_tls"]


async def start_tls(
    stream: trio.abc.Stream, server_hostname: str, context: ssl.SSLContext | None, peer: str
) -> trio.SSLStream[trio.abc.Stream]:
    """TLS over ``stream`` with ``server_hostname`` as the server name and
    for the certificate check; ``context`` gives the trust (default:
    :func:`ssl.create_default_context`).

    On failure the stream is closed and :class:`trio.BrokenResourceError`
    is raised, its message ``"TLS with PEER failed: reason"`` and its cause
    the :mod:`ssl` module's error (callers tell an untrusted certificate by
    it). Cancellation closes the stream too.
    """
    context = context if context is not None else ssl.create_default_context()
    tls = trio.SSLStream(stream, context, server_hostname=server_hostname, https_compatible=True)
    try:
        await tls.do_handshake()
    except trio.BrokenResourceError as exc:
        await trio.aclose_forcefully(stream)
        reason = exc.__cause__ or exc
        raise trio.BrokenResourceError(f"TLS with {peer} failed: {reason}") from exc.__cause__
    except BaseException:
        await trio.aclose_forcefully(stream)
        raise
    return tls
