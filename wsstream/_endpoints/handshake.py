"""The opening handshake (RFC 6455 4), both sides, over any trio stream.

websockets builds and checks the HTTP messages, through its documented
Sans-I/O API only (``ClientProtocol`` and ``ServerProtocol`` until the 101:
``connect``, ``send_request``, ``accept``, ``reject``, ``send_response``,
``receive_data``, ``events_received``, ``data_to_send``, ``handshake_exc``;
the permessage-deflate extension factories for the negotiation). It is fed
the HTTP head alone, never a byte behind it: what follows the 101 belongs to
wsstream's protocol core, which takes over from there. The websockets objects
are dropped once the handshake is over.

Both sides end with a :class:`Handshake`: what was negotiated and the bytes
that arrived behind the head. Failures raise :class:`HandshakeFailure`,
carrying the HTTP response when there was one; the stream's own errors
(:class:`trio.BrokenResourceError`, :class:`OSError`) pass through. The
caller bounds the whole exchange with ``open_timeout``.
"""

from __future__ import annotations

import http
import logging
import re
from collections.abc import Awaitable, Callable, Iterable, Sequence

import attrs
import trio

from .._protocol import DeflateParams
from .compression import Deflate, client_offers, server_factory, settle
from .http import Headers, Request, Response
from .origin import origin_allowed
from .url import WebSocketURL
from .websockets import (
    ClientProtocol,
    CoreHeaders,
    CoreRequest,
    CoreResponse,
    ServerProtocol,
    WebSocketURI,
)

__all__ = [
    "ClientHandshake",
    "Handshake",
    "HandshakeFailure",
    "ServerHandshake",
    "ServerHooks",
]

#: Bytes asked of the stream per read during the handshake.
RECEIVE_SIZE = 65536

#: The most bytes an HTTP head may take (request line and headers): the
#: same order as websockets' own limits (8 KiB lines, 128 headers).
MAX_HEAD = 64 * 1024

_log = logging.getLogger("wsstream.handshake")

# websockets logs whole handshakes at DEBUG, credentials included; wsstream
# logs its own, redacted. A logger outside the logging tree, which nothing
# can switch on.
_quiet = logging.Logger("wsstream._endpoints.websockets")
_quiet.setLevel(logging.CRITICAL + 1)


class HandshakeFailure(Exception):
    """The opening handshake failed; carries the HTTP response, if any, and
    the proxy (its URL without credentials) when the failure was its own."""

    def __init__(
        self, message: str, status: int | None = None,
        headers: Headers | None = None, body: bytes = b"", *, proxy: str | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.headers = headers
        self.body = body
        self.proxy = proxy


@attrs.define(slots=True)
class Handshake:
    """What the opening handshake settled."""

    #: The accepted Sec-WebSocket-Extensions value, "" when none.
    extensions: str
    #: The chosen subprotocol, "" when none.
    subprotocol: str
    #: permessage-deflate's parameters, None when not negotiated.
    deflate: DeflateParams | None
    #: Bytes that came behind the HTTP head (the first frames).
    rest: bytes
    #: The server's: the client's request.
    request: Request | None = None


def _negotiated(
    headers: CoreHeaders, client: bool, settings: Deflate | None
) -> tuple[str, str, DeflateParams | None]:
    extensions = ", ".join(headers.get_all("Sec-WebSocket-Extensions"))
    subprotocol = headers.get("Sec-WebSocket-Protocol", "") or ""
    params = DeflateParams.from_header(extensions, client=client)
    if params is not None and settings is not None:
        try:
            params = settle(params, settings, client=client)
        except ValueError as exc:  # pragma: no cover - the negotiation declines these
            raise HandshakeFailure(f"invalid permessage-deflate parameters: {exc}") from None
    return extensions, subprotocol, params


def _redacted_path(path: str) -> str:
    # A query may carry a token: logs show the path alone.
    return path.partition("?")[0] + ("?..." if "?" in path else "")


async def _read_head(stream: trio.abc.Stream, what: str) -> tuple[bytes, bytes]:
    """Read until a whole HTTP head is in; (head, what came after it)."""
    buffer = bytearray()
    while True:
        data = await stream.receive_some(RECEIVE_SIZE)
        if not data:
            raise HandshakeFailure(
                f"the {what} closed the connection during the handshake"
            ) from EOFError()
        start = max(len(buffer) - 3, 0)
        buffer += data
        if what == "client" and not 0x41 <= buffer[0] <= 0x5A:
            # Not an HTTP method (which starts with an upper-case letter):
            # a TLS ClientHello (0x16) on a ws:// port, or garbage. Say so
            # now rather than wait open_timeout for a blank line.
            raise HandshakeFailure("not an HTTP request", 400)
        end = buffer.find(b"\r\n\r\n", start)
        if end >= 0:
            end += 4
            return bytes(buffer[:end]), bytes(buffer[end:])
        if len(buffer) > MAX_HEAD:
            raise HandshakeFailure(f"the {what}'s HTTP head is over {MAX_HEAD} bytes")


class ClientHandshake:
    """The client's side: built (and checked) with the ``WebSocketStream``,
    run once the stream is connected."""

    __slots__ = ("_compression", "_protocol", "_request")

    def __init__(
        self,
        url: WebSocketURL,
        *,
        subprotocols: Sequence[str],
        compression: Deflate | None,
        origin: str | None,
        headers: Headers,
        user_agent: str | None,
    ) -> None:
        path, _, query = url.resource.partition("?")
        uri = WebSocketURI(
            url.secure, url.host, url.port, path, query, *(url.user_info or (None, None))
        )
        self._compression = compression
        protocol = ClientProtocol(
            uri,
            origin=origin,  # type: ignore[arg-type]
            extensions=None if compression is None else client_offers(compression),
            subprotocols=list(subprotocols) or None,  # type: ignore[arg-type]
            logger=_quiet,
        )
        request = protocol.connect()
        if user_agent is not None:
            request.headers["User-Agent"] = user_agent
        for name, value in headers.raw_items():
            request.headers[name] = value
        # One attempt per WebSocketStream: the protocol holds the key that
        # the response's Sec-WebSocket-Accept must answer.
        self._protocol: ClientProtocol | None = protocol
        self._request = request

    async def run(self, stream: trio.abc.Stream) -> Handshake:
        """Send the request, read the response; raises HandshakeFailure."""
        protocol = self._protocol
        assert protocol is not None, "a client handshake runs once"
        self._protocol = None
        request = self._request
        protocol.send_request(request)
        await stream.send_all(b"".join(protocol.data_to_send()))
        _log.debug("> GET %s", _redacted_path(request.path))
        head, rest = await _read_head(stream, "server")
        try:
            protocol.receive_data(head)
        except (ValueError, AssertionError) as exc:
            # websockets before 17 makes zlib contexts while it negotiates,
            # and zlib cannot write an 8-bit window (17 refuses it first).
            raise HandshakeFailure(
                f"invalid handshake response: a permessage-deflate answer zlib cannot use ({exc})"
            ) from exc
        response = _response(protocol)
        if response is not None and response.status_code == 101:
            if protocol.handshake_exc is not None:
                raise HandshakeFailure(f"invalid handshake response: {protocol.handshake_exc}")
            extensions_value, subprotocol, deflate = _negotiated(
                response.headers, True, self._compression
            )
            _log.debug("< 101 (extensions %r, subprotocol %r)", extensions_value, subprotocol)
            return Handshake(extensions_value, subprotocol, deflate, rest)
        if response is None and protocol.handshake_exc is not None:
            raise HandshakeFailure(f"invalid handshake response: {protocol.handshake_exc}")
        # Not a 101: read its body (by Content-Length, or to the end).
        protocol.receive_data(rest)
        with trio.move_on_after(1):
            while response is None:
                try:
                    data = await stream.receive_some(RECEIVE_SIZE)
                except (trio.BrokenResourceError, trio.ClosedResourceError):
                    data = b""  # a server that resets after its answer
                if data:
                    protocol.receive_data(data)
                else:
                    protocol.receive_eof()
                response = _response(protocol)
                if not data:
                    break
        if response is None:
            raise HandshakeFailure("invalid handshake response: incomplete HTTP response")
        raise HandshakeFailure(
            f"the server refused the WebSocket connection with HTTP {response.status_code}",
            response.status_code, Headers(response.headers.raw_items()), bytes(response.body),
        )


def _response(protocol: ClientProtocol) -> CoreResponse | None:
    for event in protocol.events_received():
        if isinstance(event, CoreResponse):
            return event
    return None


@attrs.frozen
class ServerHooks:
    """What the server side does with the client's request."""

    select_subprotocol: Callable[[Request, Sequence[str]], str | None]
    process_request: Callable[[Request], Awaitable[Response | None]]
    response_headers: Headers
    #: From _origin.allowed_origins(); None: any origin.
    origins: frozenset[str | None] | None
    compression: Deflate | None
    #: None when the server has none (no Response is built for it then).
    process_response: Callable[[Request, Response], Awaitable[Response | None]] | None = None


class ServerHandshake:
    """The server's side: read the request, run the hooks, answer it."""

    __slots__ = ("_hooks",)

    def __init__(self, hooks: ServerHooks) -> None:
        self._hooks = hooks

    async def run(
        self, stream: trio.abc.Stream, remote_address: object = None
    ) -> Handshake | HandshakeFailure:
        """Read the request and answer it.

        Returns the :class:`Handshake` once the 101 is written, or the
        failure when the request was answered with an HTTP error (by
        ``process_request``, the origin check or the request's own
        checks). Raises :class:`HandshakeFailure` when no request came.
        """
        hooks = self._hooks
        try:
            head, rest = await _read_head(stream, "client")
        except HandshakeFailure as exc:
            if exc.status == 400:
                await stream.send_all(_plain_response(
                    http.HTTPStatus.BAD_REQUEST, "this is a WebSocket server: send HTTP"
                ).serialize())
            raise
        extensions = None if hooks.compression is None else [server_factory(hooks.compression)]
        request: Request | None = None

        def select(_: object, offered: Sequence[str]) -> str | None:
            assert request is not None
            try:
                name = hooks.select_subprotocol(request, list(offered))
                if name is not None and name not in offered:
                    raise ValueError(
                        f"select_subprotocol chose {name!r}, which the client did not offer"
                    )
            except Exception:
                # websockets answers 500 for it; the log names the hook.
                _log.exception("select_subprotocol raised; answering 500")
                raise
            return name

        protocol = ServerProtocol(
            # Origins are checked here, as RFC 6454 compares them (_origin).
            extensions=extensions,
            select_subprotocol=select,  # type: ignore[arg-type]
            logger=_quiet,
        )
        refusal = _check_request_line(head)
        if refusal is not None:
            await stream.send_all(refusal.serialize())
            return HandshakeFailure(
                f"invalid handshake request: HTTP {refusal.status_code} {refusal.reason_phrase}",
                refusal.status_code, Headers(refusal.headers.raw_items()), bytes(refusal.body),
            )
        protocol.receive_data(head)
        core_request = next(
            (e for e in protocol.events_received() if isinstance(e, CoreRequest)), None
        )
        if core_request is None:
            # websockets answered 414 or 431, or (for anything else
            # malformed) only closes: then the client learns why from a 400.
            reply_bytes = b"".join(protocol.data_to_send())
            if not reply_bytes:
                reply_bytes = protocol.reject(
                    http.HTTPStatus.BAD_REQUEST,
                    "Failed to open a WebSocket connection: invalid HTTP request.\n",
                ).serialize()
            await stream.send_all(reply_bytes)
            raise HandshakeFailure(f"invalid handshake request: {protocol.handshake_exc}")
        headers = Headers(_shared(core_request.headers.raw_items()))
        request = Request(core_request.path, headers, remote_address=remote_address)
        if "Host" not in core_request.headers:
            # RFC 6455 4.2.1 (2), RFC 7230 5.4.
            response = _plain_response(http.HTTPStatus.BAD_REQUEST, "missing Host header")
            await stream.send_all(response.serialize())
            return HandshakeFailure("invalid handshake request: no Host header", 400)
        origins = headers.get_all("Origin")
        if len(origins) > 1 or (
            hooks.origins is not None
            and not origin_allowed(origins[0] if origins else None, hooks.origins)
        ):
            # RFC 6455 4.2.2 (a forbidden origin), RFC 6454 7.3 (one Origin).
            status = http.HTTPStatus.FORBIDDEN if len(origins) <= 1 else http.HTTPStatus.BAD_REQUEST
            response = _plain_response(status, "origin not allowed")
            await stream.send_all(response.serialize())
            return HandshakeFailure(
                f"invalid handshake request: HTTP {status.value} (Origin {origins!r})",
                status.value, Headers(response.headers.raw_items()), bytes(response.body),
            )
        try:
            reply = await hooks.process_request(request)
        except Exception:
            _log.exception("process_request raised; answering 500")
            response = _plain_response(
                http.HTTPStatus.INTERNAL_SERVER_ERROR, "see the server's log"
            )
            await stream.send_all(response.serialize())
            return HandshakeFailure("process_request raised: answered 500", 500)
        if reply is not None:
            await _write(stream, protocol, _core_response(reply))
            return HandshakeFailure(
                f"the handshake was rejected with HTTP {reply.status}",
                reply.status, reply.headers, reply.body,
            )
        _decline_8_bit_server_windows(core_request.headers)
        response = protocol.accept(core_request)
        for name, value in hooks.response_headers.raw_items():
            response.headers[name] = value
        if response.status_code == 101 and hooks.process_response is not None:
            try:
                replaced = _replaced_101(response, await hooks.process_response(
                    request, Response(101, Headers(response.headers.raw_items()))
                ))
            except Exception:
                _log.exception("process_response raised; answering 500")
                refusal = _plain_response(
                    http.HTTPStatus.INTERNAL_SERVER_ERROR, "see the server's log"
                )
                await stream.send_all(refusal.serialize())
                return HandshakeFailure("process_response raised: answered 500", 500)
            if isinstance(replaced, Response):
                await _write(stream, protocol, _core_response(replaced))
                return HandshakeFailure(
                    f"the handshake was rejected with HTTP {replaced.status}",
                    replaced.status, replaced.headers, replaced.body,
                )
            response = replaced
        await _write(stream, protocol, response)
        if response.status_code != 101:
            return HandshakeFailure(
                f"invalid handshake request: {protocol.handshake_exc}",
                response.status_code, Headers(response.headers.raw_items()), bytes(response.body),
            )
        extensions_value, subprotocol, deflate = _negotiated(
            response.headers, False, hooks.compression
        )
        return Handshake(extensions_value, subprotocol, deflate, rest, request)


#: The headers that make the upgrade: what was negotiated, which
#: process_response may not change.
_UPGRADE_HEADERS = (
    "Upgrade", "Connection", "Sec-WebSocket-Accept", "Sec-WebSocket-Extensions",
    "Sec-WebSocket-Protocol",
)


def _replaced_101(
    response: CoreResponse, result: Response | None
) -> CoreResponse | Response:
    """What process_response's ``result`` makes of the 101 ``response``: a
    101 to send (the same, or one with the hook's headers), or a
    :class:`Response` that refuses the handshake. Raises ValueError for a
    101 that changes an upgrade header or has a body."""
    if result is None:
        return response
    if result.status != 101:
        return result
    if result.body:
        raise ValueError("process_response returned a 101 with a body")
    for name in _UPGRADE_HEADERS:
        before = response.headers.get_all(name)
        after = result.headers.get_all(name)
        if before != after:
            raise ValueError(
                f"process_response changed {name} ({before!r} -> {after!r}): the upgrade's "
                "headers are negotiated, not set"
            )
    return CoreResponse(101, response.reason_phrase, CoreHeaders(result.headers.raw_items()), b"")


_VERSION = re.compile(rb"HTTP/[0-9]\.[0-9]")


def _decline_8_bit_server_windows(headers: CoreHeaders) -> None:
    """Drop the permessage-deflate offers that ask for an 8-bit server
    window before websockets sees them: zlib cannot write one (RFC 7692
    lets a server decline an offer), and websockets before 17 would make a
    zlib context for it while negotiating, and fail."""
    values = headers.get_all("Sec-WebSocket-Extensions")
    if not any("8" in value for value in values):
        return
    kept = []
    for value in values:
        for offer in value.split(","):
            params = [part.strip().lower().replace(" ", "") for part in offer.split(";")]
            if params[0] == "permessage-deflate" and any(
                p in ("server_max_window_bits=8", 'server_max_window_bits="8"') for p in params[1:]
            ):
                continue
            if offer.strip():
                kept.append(offer.strip())
    del headers["Sec-WebSocket-Extensions"]
    if kept:
        headers["Sec-WebSocket-Extensions"] = ", ".join(kept)


def _check_request_line(head: bytes) -> CoreResponse | None:
    """The answer to a request line that cannot open a WebSocket: not a GET
    (405, with Allow), not HTTP/1.1 (505), or a target that is not a path
    (400); ``None`` when it can (RFC 6455 4.1, 4.2.1)."""
    line = head.split(b"\r\n", 1)[0]
    parts = line.split(b" ")
    if len(parts) != 3:
        return _plain_response(http.HTTPStatus.BAD_REQUEST, "invalid request line")
    method, target, version = parts
    if not _VERSION.fullmatch(version):
        return _plain_response(http.HTTPStatus.BAD_REQUEST, "invalid request line")
    if version != b"HTTP/1.1":
        return _plain_response(
            http.HTTPStatus.HTTP_VERSION_NOT_SUPPORTED, "a WebSocket needs HTTP/1.1"
        )
    if method != b"GET":
        response = _plain_response(
            http.HTTPStatus.METHOD_NOT_ALLOWED, "a WebSocket is opened with GET"
        )
        response.headers["Allow"] = "GET"
        return response
    if not target.startswith(b"/"):
        return _plain_response(http.HTTPStatus.BAD_REQUEST, "the target must be a path")
    return None


def _plain_response(status: http.HTTPStatus, text: str) -> CoreResponse:
    body = f"Failed to open a WebSocket connection: {text}.\n".encode()
    headers = CoreHeaders()
    headers["Content-Type"] = "text/plain; charset=utf-8"
    headers["Content-Length"] = str(len(body))
    headers["Connection"] = "close"
    return CoreResponse(status.value, status.phrase, headers, body)


def _core_response(response: Response) -> CoreResponse:
    headers = CoreHeaders(response.headers.raw_items())
    if "Content-Length" not in headers:
        headers["Content-Length"] = str(len(response.body))
    if "Connection" not in headers:
        headers["Connection"] = "close"
    try:
        phrase = http.HTTPStatus(response.status).phrase
    except ValueError:
        phrase = "Unknown"
    return CoreResponse(response.status, phrase, headers, response.body)


async def _write(stream: trio.abc.Stream, protocol: ServerProtocol, response: CoreResponse) -> None:
    protocol.send_response(response)
    data = b"".join(protocol.data_to_send())
    if data:
        await stream.send_all(data)


# Header names, values and whole fields that most opening handshakes carry:
# a server keeps every connection's request, so these are kept once, shared
# by every connection, instead of a copy per connection (about 0.5 KiB).
_COMMON_HEADER_STRINGS = {
    s: s for s in (
        "Host", "Upgrade", "Connection", "Origin", "User-Agent", "Cookie", "Pragma",
        "Cache-Control", "Accept-Encoding", "Accept-Language", "Sec-WebSocket-Key",
        "Sec-WebSocket-Version", "Sec-WebSocket-Extensions", "Sec-WebSocket-Protocol",
        "host", "upgrade", "connection", "origin", "user-agent", "cookie", "pragma",
        "cache-control", "accept-encoding", "accept-language", "sec-websocket-key",
        "sec-websocket-version", "sec-websocket-extensions", "sec-websocket-protocol",
        "websocket", "Websocket", "WebSocket", "keep-alive, Upgrade", "13", "no-cache",
        "gzip, deflate", "gzip, deflate, br", "gzip, deflate, br, zstd",
        "permessage-deflate", "permessage-deflate; client_max_window_bits",
    )
}
_COMMON_HEADER_FIELDS = {
    field: field for field in (
        ("Upgrade", "websocket"), ("Connection", "Upgrade"), ("Sec-WebSocket-Version", "13"),
        ("upgrade", "websocket"), ("connection", "Upgrade"), ("connection", "upgrade"),
        ("sec-websocket-version", "13"), ("Connection", "keep-alive, Upgrade"),
        ("Pragma", "no-cache"), ("Cache-Control", "no-cache"),
        ("Sec-WebSocket-Extensions", "permessage-deflate; client_max_window_bits"),
    )
}


def _shared(items: Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
    strings, fields = _COMMON_HEADER_STRINGS, _COMMON_HEADER_FIELDS
    shared = []
    for name, value in items:
        field = (strings.get(name, name), strings.get(value, value))
        shared.append(fields.get(field, field))
    return shared
