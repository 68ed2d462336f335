"""Tunnels through proxies: HTTP CONNECT (ours) and SOCKS (python-socks').

:func:`open_tunnel` connects to a proxy and asks it for a byte stream to the
server's host and port; what comes back is a :class:`trio.abc.Stream` that
reaches the server, on which the caller does TLS for ``wss://`` and the
opening handshake, as over a direct connection.

HTTP CONNECT (RFC 9110 9.3.6) is a dozen lines of exchange, so it is ours:
the answer is read to the end of its head however the proxy's segments
fall, nothing behind the head can leak into the tunnel, a refusal carries
the proxy's status, headers and body, and an ``https://`` proxy gets
wsstream's own TLS. SOCKS4/4a/5/5h is python-socks' trio backend (its
public ``Proxy`` class; wsstream never speaks SOCKS itself). For
``socks4://`` and ``socks5://`` the server's name is resolved here, before
python-socks is called, so that every error python-socks raises is about
the proxy.

Every failure that is the proxy's is a :class:`HandshakeFailure` whose
``proxy`` is the proxy's URL without credentials, its cause the underlying
error. Cancellation closes the socket and propagates. ``open_timeout``
bounds the whole, from the caller.
"""

from __future__ import annotations

import base64
import errno
import logging
import math
import re
import socket
import ssl

import trio
from python_socks import ProxyConnectionError, ProxyError, ProxyType
from python_socks.async_.trio import Proxy as SocksProxy

from .handshake import HandshakeFailure
from .http import Headers
from .neterrors import with_address
from .proxy import ProxyURL
from .tls import start_tls

__all__ = ["open_tunnel"]

_log = logging.getLogger("wsstream.handshake")

#: The most bytes a proxy's answer to CONNECT may take before its blank
#: line, and the most of a refusal's body kept for the HandshakeError.
MAX_HEAD = 64 * 1024
MAX_BODY = 64 * 1024

#: How long a refusal's body is waited for (it only explains the status).
BODY_WAIT = 1.0

_STATUS_LINE = re.compile(rb"HTTP/1\.[01] ([0-9]{3})(?: ([^\r\n]*))?")

_SOCKS_TYPES = {
    "socks4": ProxyType.SOCKS4, "socks4a": ProxyType.SOCKS4,
    "socks5": ProxyType.SOCKS5, "socks5h": ProxyType.SOCKS5,
}

#: SOCKS5 replies (RFC 1928 6) that report the server as unreachable, as the
#: OSError a direct connection would have raised: retrying may well work.
_SOCKS5_UNREACHABLE: dict[int, OSError] = {
    3: OSError(errno.ENETUNREACH, "network unreachable"),
    4: OSError(errno.EHOSTUNREACH, "host unreachable"),
    5: ConnectionRefusedError(errno.ECONNREFUSED, "connection refused"),
    6: TimeoutError(errno.ETIMEDOUT, "TTL expired"),
}


async def open_tunnel(
    proxy: ProxyURL,
    host: str,
    port: int,
    *,
    ssl_context: ssl.SSLContext | None = None,
    user_agent: str | None = None,
) -> trio.abc.Stream:
    """A stream to ``host:port`` through ``proxy``.

    ``ssl_context`` is the trust for an ``https://`` proxy's certificate
    (default: the system's); ``user_agent`` goes in the CONNECT request.
    Raises :class:`HandshakeFailure` (``proxy`` set) for every failure of
    the proxy, and :class:`OSError` if ``host`` does not resolve where this
    side resolves it (``socks4://``, ``socks5://``). Cancellation closes
    the connection to the proxy.
    """
    _log.debug("> tunnel to %s through %s", _authority(host, port), proxy)
    if proxy.socks:
        return await _socks(proxy, host, port)
    return await _http_connect(proxy, host, port, ssl_context, user_agent)


def _authority(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _failure(proxy: ProxyURL, message: str, status: int | None = None,
             headers: Headers | None = None, body: bytes = b"") -> HandshakeFailure:
    return HandshakeFailure(message, status, headers, body, proxy=str(proxy))


async def _connect(proxy: ProxyURL) -> trio.abc.Stream:
    try:
        return await trio.open_tcp_stream(proxy.host, proxy.port)
    except OSError as exc:
        error = with_address(exc, proxy.host, proxy.port)
        raise _failure(proxy, f"could not connect to the proxy {proxy}: {error}") from error


# -- HTTP CONNECT ---------------------------------------------------------------


def connect_request(proxy: ProxyURL, host: str, port: int, user_agent: str | None) -> bytes:
    """The CONNECT request (RFC 9110 9.3.6): the target in authority form."""
    target = _authority(host, port)
    lines = [f"CONNECT {target} HTTP/1.1", f"Host: {target}"]
    if user_agent is not None:
        lines.append(f"User-Agent: {user_agent}")
    if proxy.username is not None:
        # RFC 7617 with UTF-8, as curl and websockets send it.
        token = f"{proxy.username}:{proxy.password or ''}".encode()
        lines.append(f"Proxy-Authorization: Basic {base64.b64encode(token).decode('ascii')}")
    # The User-Agent was checked as a header value: at most U+00FF.
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


async def _http_connect(
    proxy: ProxyURL, host: str, port: int,
    ssl_context: ssl.SSLContext | None, user_agent: str | None,
) -> trio.abc.Stream:
    stream = await _connect(proxy)
    try:
        if proxy.scheme == "https":
            try:
                stream = await start_tls(
                    stream, proxy.host, ssl_context, f"the proxy {proxy.address}"
                )
            except trio.BrokenResourceError as exc:
                raise _failure(proxy, str(exc)) from exc
        try:
            await stream.send_all(connect_request(proxy, host, port, user_agent))
            head, rest = await _read_head(stream, proxy)
        except (trio.BrokenResourceError, OSError) as exc:
            reason = exc.__cause__ if isinstance(exc, trio.BrokenResourceError) else exc
            raise _failure(
                proxy, f"the connection to the proxy {proxy} broke: {reason or exc!r}"
            ) from exc
        status, reason_phrase, headers = _parse_head(head, proxy)
        _log.debug("< %d from the proxy %s", status, proxy)
        if 200 <= status <= 299:
            if rest:
                # The server cannot have spoken: it waits for our request
                # (or ClientHello). Bytes here would corrupt the stream.
                raise _failure(
                    proxy, f"the proxy {proxy} sent {len(rest)} bytes behind its "
                    f"HTTP {status} to CONNECT"
                )
            return stream
        body = await _read_body(stream, headers, rest)
        text = f"HTTP {status} {reason_phrase}".rstrip()
        raise _failure(
            proxy, f"the proxy {proxy} refused to open a tunnel to "
            f"{_authority(host, port)}: {text}", status, headers, body,
        )
    except BaseException:
        await trio.aclose_forcefully(stream)
        raise


async def _read_head(stream: trio.abc.Stream, proxy: ProxyURL) -> tuple[bytes, bytes]:
    """The proxy's response head (to its blank line) and what came behind it."""
    buffer = bytearray()
    while True:
        data = await stream.receive_some(MAX_HEAD)
        if not data:
            raise _failure(
                proxy, f"the proxy {proxy} closed the connection during the CONNECT exchange"
            ) from EOFError()
        start = max(len(buffer) - 3, 0)
        buffer += data
        if not b"HTTP/".startswith(bytes(buffer[:5])):
            # Not HTTP at all (a SOCKS or TLS server): say so now rather
            # than wait for a blank line until open_timeout.
            raise _failure(proxy, f"the proxy {proxy} did not answer CONNECT in HTTP")
        end = buffer.find(b"\r\n\r\n", start)
        if end >= 0:
            return bytes(buffer[: end + 4]), bytes(buffer[end + 4 :])
        if len(buffer) > MAX_HEAD:
            raise _failure(proxy, f"the proxy {proxy}'s answer to CONNECT is over {MAX_HEAD} bytes")


def _parse_head(head: bytes, proxy: ProxyURL) -> tuple[int, str, Headers]:
    status_line, *lines = head[:-4].split(b"\r\n")
    match = _STATUS_LINE.fullmatch(status_line)
    if match is None:
        raise _failure(
            proxy, f"the proxy {proxy} sent an invalid status line: "
            f"{status_line[:100].decode('latin-1')!r}"
        )
    fields = []
    for line in lines:
        name, sep, value = line.decode("latin-1").partition(":")
        if sep:
            fields.append((name.strip(), value.strip()))
    try:
        headers = Headers(fields)
    except (TypeError, ValueError):
        # The fields only explain a refusal: a malformed one is not worth failing on.
        headers = Headers()
    return int(match[1]), (match[2] or b"").decode("latin-1"), headers


async def _read_body(stream: trio.abc.Stream, headers: Headers, rest: bytes) -> bytes:
    """A refusal's body: up to its Content-Length (else to the end), at most
    :data:`MAX_BODY` bytes and :data:`BODY_WAIT` seconds; what came is kept."""
    try:
        length = min(int(headers.get("Content-Length", "")), MAX_BODY)
    except ValueError:
        length = MAX_BODY
    body = bytearray(rest[:length])
    with trio.move_on_after(BODY_WAIT):
        while len(body) < length:
            try:
                data = await stream.receive_some(length - len(body))
            except (trio.BrokenResourceError, OSError):
                break  # a proxy that resets after its answer
            if not data:
                break
            body += data
    return bytes(body)


# -- SOCKS --------------------------------------------------------------------------


async def _socks(proxy: ProxyURL, host: str, port: int) -> trio.abc.Stream:
    kind = "SOCKS4" if proxy.scheme.startswith("socks4") else "SOCKS5"
    remote_dns = proxy.scheme in ("socks4a", "socks5h")
    target = host
    if not remote_dns:
        # socks4:// and socks5:// send an address: resolve it here (SOCKS4
        # carries IPv4 only), so that a name that does not resolve is an
        # error of this side, and python-socks' errors all the proxy's.
        family = socket.AF_INET if kind == "SOCKS4" else socket.AF_UNSPEC
        try:
            infos = await trio.socket.getaddrinfo(host, port, family, socket.SOCK_STREAM)
        except OSError as exc:
            raise with_address(exc, host, port)  # noqa: B904 (its cause is set)
        target = str(infos[0][4][0])
    client = SocksProxy(
        _SOCKS_TYPES[proxy.scheme], proxy.host, proxy.port,
        username=proxy.username, password=proxy.password, rdns=remote_dns,
    )
    tunnel_to = _authority(host, port)
    try:
        # No timeout of python-socks' own (its default is 60 s): open_timeout
        # bounds the whole, from the caller.
        sock = await client.connect(target, port, timeout=math.inf)
    except ProxyConnectionError as exc:
        original = exc.__cause__ if isinstance(exc.__cause__, OSError) else exc
        error = with_address(original, proxy.host, proxy.port)
        raise _failure(proxy, f"could not connect to the proxy {proxy}: {error}") from error
    except ProxyError as exc:
        # Its cause is set: what a retry should make of it.
        raise _socks_refusal(proxy, kind, tunnel_to, exc)  # noqa: B904
    except OSError as exc:
        # python-socks passes the socket's own errors through: a reset.
        raise _failure(
            proxy, f"the connection to the proxy {proxy} broke: {exc}"
        ) from exc
    return trio.SocketStream(sock)


def _socks_refusal(
    proxy: ProxyURL, kind: str, tunnel_to: str, exc: ProxyError
) -> HandshakeFailure:
    cause = exc.__cause__
    if type(cause).__name__ == "IncompleteReadError":
        # python-socks' own "connection closed" (a private class, hence
        # the name): the proxy hung up mid-exchange.
        failure = _failure(
            proxy, f"the proxy {proxy} closed the connection during the {kind} exchange"
        )
        failure.__cause__ = EOFError()
        failure.__cause__.__cause__ = exc
        return failure
    code = exc.error_code
    reason = str(exc) or type(exc).__name__
    reason = reason[0].lower() + reason[1:] if reason[1:2].islower() else reason
    if code is not None:
        reason += f" ({kind} reply {int(code)})"
    failure = _failure(
        proxy, f"the {kind} proxy {proxy} could not open a tunnel to {tunnel_to}: {reason}"
    )
    unreachable = _SOCKS5_UNREACHABLE.get(int(code)) if kind == "SOCKS5" and code else None
    if unreachable is not None:
        # A fresh OSError each time, caused by python-socks' error: retrying
        # code (connect_forever) treats it as a direct connection's.
        failure.__cause__ = type(unreachable)(unreachable.errno, unreachable.strerror)
        failure.__cause__.__cause__ = exc
    else:
        failure.__cause__ = exc
    return failure
