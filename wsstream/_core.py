"""The adapter around websockets' Sans-I/O protocol: the framing core.

This is the only module (with nothing else importing ``websockets``) that
knows the framing core's types; the rest of wsstream speaks its own. It does
no I/O and knows nothing of trio, so it is tested by feeding it bytes.

What it adds to the core, which yields frames: reassembly of fragmented
messages, incremental UTF-8 decoding of text (invalid UTF-8 fails the
connection with 1007 as soon as the frame holding the bad byte is complete,
without waiting for the end of the message; the core yields whole frames
only, so not in the middle of one: Autobahn 6.4.3/6.4.4 are NON-STRICT),
and the handshake glue (our :class:`~wsstream.Request` and
:class:`~wsstream.Response` in, the core's types out). Sizes are bounded by
the core's ``max_size`` (message and decompressed size); fragments are not
counted, only bytes, so a message may come in any number of fragments.

Flow, for the engine::

    core.receive_data(chunk)        # or receive_eof()
    core.take_messages()            # complete str / bytes messages, in order
    core.data_to_send()             # bytes to write; b"" means: end the stream
"""

from __future__ import annotations

import codecs
import http
import logging
import os
import struct
import threading
from collections.abc import Callable, Iterable, Sequence

from websockets.client import ClientProtocol
from websockets.datastructures import Headers as CoreHeaders
from websockets.extensions.permessage_deflate import (
    ClientPerMessageDeflateFactory,
    ServerPerMessageDeflateFactory,
)
from websockets.frames import Frame, Opcode
from websockets.http11 import Request as CoreRequest
from websockets.http11 import Response as CoreResponse
from websockets.protocol import CLIENT, Protocol, State
from websockets.server import ServerProtocol
from websockets.typing import Subprotocol
from websockets.uri import WebSocketURI

try:  # the core's own masking, in C when websockets was built with it
    from websockets.speedups import apply_mask
except ImportError:  # pragma: no cover - a pure-Python websockets
    from websockets.utils import apply_mask

from ._http import Headers, Request, Response
from ._url import WebSocketURL

__all__ = ["Core", "HandshakeFailure", "COMPRESSION_CHOICES"]

COMPRESSION_CHOICES = ("deflate", None)

_TEXT, _BINARY, _CONT = Opcode.TEXT, Opcode.BINARY, Opcode.CONT
_PING, _PONG, _CLOSE = Opcode.PING, Opcode.PONG, Opcode.CLOSE
_OPEN, _CLOSED, _CONNECTING = State.OPEN, State.CLOSED, State.CONNECTING
_CLIENT = CLIENT

_log = logging.getLogger("wsstream.protocol")

# permessage-deflate settings (RFC 7692 7.1): a 4 KiB window and memLevel 5
# keep a connection's zlib state near 64 KiB instead of 300 KiB, at a small
# cost in ratio; the same trade-off websockets makes.
_WINDOW_BITS = 12
_COMPRESS_SETTINGS = {"memLevel": 5}

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


class _Assembling(Protocol):
    # Data frames are assembled as the core parses them, so that invalid
    # UTF-8 stops the parser at that very frame: the core then fails the
    # connection with 1007 and acts on nothing that came after it.
    on_frame: Callable[[Frame], None]

    def recv_frame(self, frame: Frame) -> None:
        if frame.opcode is _CLOSE and self.current_size is not None:
            # A Close may come between the fragments of a message (control
            # frames may be injected, RFC 6455 5.4): the message will never
            # end, so drop it and close cleanly; the core would answer 1002.
            self.current_size = None
        super().recv_frame(frame)
        self.on_frame(frame)


class _MaskKeys(threading.local):
    """Masking keys for client frames, cut from one ``os.urandom`` call per
    1,024 frames rather than one system call per frame (the core's way).
    Each key is fresh bytes from the system's strong source and none is
    used twice, which is what RFC 6455 5.3 asks of them."""

    SIZE = 4096

    def __init__(self) -> None:
        self.pool = b""
        self.offset = self.SIZE

    def take(self) -> bytes:
        offset = self.offset
        if offset >= self.SIZE:
            self.pool = os.urandom(self.SIZE)
            offset = 0
        self.offset = offset + 4
        return self.pool[offset:offset + 4]


_mask_keys = _MaskKeys()
_pack_short, _pack_medium, _pack_long = (
    struct.Struct("!BB").pack, struct.Struct("!BBH").pack, struct.Struct("!BBQ").pack
)


#: Frames with a payload at least this long go out as two chunks, header and
#: payload, which the engine writes with one ``writev``: no copy of the
#: payload. Shorter ones are one chunk (one small copy, fewer buffers).
SPLIT_PAYLOAD = 16 * 1024


def _serialize(frame: Frame, mask: bool) -> tuple[bytes, ...]:
    """The core's ``Frame.serialize`` (RFC 6455 5.2), as chunks.

    Two differences: a client's masking key comes from the pool, and a
    large payload is not copied after the header (a server's is sent as
    it is if it is ``bytes``, immutable; other buffers are copied once,
    since the caller may reuse them as soon as ``send()`` returns).
    """
    head1 = (
        (0x80 if frame.fin else 0) | (0x40 if frame.rsv1 else 0)
        | (0x20 if frame.rsv2 else 0) | (0x10 if frame.rsv3 else 0) | frame.opcode
    )
    data = frame.data
    length = len(data)
    bit = 0x80 if mask else 0
    if length < 126:
        header = _pack_short(head1, bit | length)
    elif length < 65536:
        header = _pack_medium(head1, bit | 126, length)
    else:
        header = _pack_long(head1, bit | 127, length)
    if mask:
        key = _mask_keys.take()
        header += key
        data = apply_mask(data, key)
    elif type(data) is not bytes:
        data = bytes(data)
    if length < SPLIT_PAYLOAD:
        return (header + data,)
    return (header, data)


class _Serializing(Protocol):
    def send_frame(self, frame: Frame) -> None:
        # What the core does, with _serialize for Frame.serialize; checks
        # and extensions (compression) are the core's own.
        if self.debug:
            self.logger.debug("> %s", frame)
        frame.check()
        for extension in self.extensions:
            frame = extension.encode(frame)
        self.writes.extend(_serialize(frame, self.side is _CLIENT))


class _ClientProtocol(_Assembling, _Serializing, ClientProtocol):
    pass


class _ServerProtocol(_Assembling, _Serializing, ServerProtocol):
    # The engine's rule replaces the core's (which prefers the server's order
    # and refuses a client that offers none): set by Core.accept.
    select: Callable[[Sequence[str]], str | None] | None = None

    def select_subprotocol(self, subprotocols: Sequence[Subprotocol]) -> Subprotocol | None:
        select = self.select
        chosen = None if select is None else select(list(subprotocols))
        return None if chosen is None else Subprotocol(chosen)


class HandshakeFailure(Exception):
    """The opening handshake failed; carries what the peer answered."""

    def __init__(
        self, message: str, status: int | None = None,
        headers: Headers | None = None, body: bytes = b"",
    ) -> None:
        super().__init__(message)
        self.status = status
        self.headers = headers
        self.body = body


class Core:
    """One connection's framing state: handshake, frames, messages."""

    __slots__ = (
        "_binary",
        "_decoder",
        "_parts",
        "_text",
        "extensions",
        "failure",
        "messages",
        "pings_received",
        "pongs",
        "protocol",
        "request",
        "response",
    )

    def __init__(self, protocol: _ClientProtocol | _ServerProtocol) -> None:
        self.protocol = protocol
        protocol.on_frame = self._on_frame
        self.messages: list[str | bytes] = []
        self.pongs: list[bytes] = []
        self.pings_received = 0
        # (code, reason) when this side failed the connection (7.1.7).
        self.failure: tuple[int, str] | None = None
        # Reassembly of a fragmented message.
        self._text: bool | None = None  # None: no message in progress
        self._decoder: codecs.IncrementalDecoder | None = None
        self._parts: list[str] | None = None  # made per fragmented message
        self._binary: bytearray | None = None
        self.request: Request | None = None  # server: the client's request
        self.response: CoreResponse | None = None  # client: the server's answer
        # The negotiated Sec-WebSocket-Extensions value, "" when none.
        self.extensions = ""

    # -- construction ----------------------------------------------------

    @classmethod
    def client(
        cls,
        url: WebSocketURL,
        *,
        subprotocols: Sequence[str],
        compression: str | None,
        max_message_size: int | None,
        origin: str | None,
        headers: Headers,
        user_agent: str | None,
    ) -> Core:
        """A client core that has already queued its handshake request."""
        path, _, query = url.resource.partition("?")
        uri = WebSocketURI(
            url.secure, url.host, url.port, path, query,
            *(url.user_info or (None, None)),
        )
        extensions = (
            [ClientPerMessageDeflateFactory(
                client_max_window_bits=True, compress_settings=_COMPRESS_SETTINGS
            )]
            if compression == "deflate" else None
        )
        protocol = _ClientProtocol(
            uri,
            origin=origin,  # type: ignore[arg-type]
            extensions=extensions,
            subprotocols=list(subprotocols) or None,  # type: ignore[arg-type]
            max_size=max_message_size,
            logger=_log,
        )
        core = cls(protocol)
        request = protocol.connect()
        if user_agent is not None:
            request.headers["User-Agent"] = user_agent
        for name, value in headers.raw_items():
            request.headers[name] = value
        protocol.send_request(request)
        return core

    @classmethod
    def server(
        cls,
        *,
        compression: str | None,
        max_message_size: int | None,
        origins: Sequence[str | None] | None,
    ) -> Core:
        """A server core waiting for the client's request."""
        extensions = (
            [ServerPerMessageDeflateFactory(
                server_max_window_bits=_WINDOW_BITS,
                client_max_window_bits=_WINDOW_BITS,
                compress_settings=_COMPRESS_SETTINGS,
            )]
            if compression == "deflate" else None
        )
        protocol = _ServerProtocol(
            origins=list(origins) if origins is not None else None,  # type: ignore[arg-type]
            extensions=extensions,
            max_size=max_message_size,
            logger=_log,
        )
        return cls(protocol)

    # -- state -----------------------------------------------------------

    @property
    def state(self) -> State:
        return self.protocol.state

    @property
    def is_connecting(self) -> bool:
        return self.protocol.state is _CONNECTING

    @property
    def is_open(self) -> bool:
        return self.protocol.state is _OPEN

    @property
    def is_closed(self) -> bool:
        return self.protocol.state is _CLOSED

    @property
    def close_received(self) -> tuple[int, str] | None:
        """The peer's Close frame as (code, reason); 1005 for an empty one."""
        rcvd = self.protocol.close_rcvd
        return None if rcvd is None else (int(rcvd.code), rcvd.reason)

    @property
    def close_sent(self) -> tuple[int, str] | None:
        """Our Close frame as (code, reason); 1005 for an empty one."""
        sent = self.protocol.close_sent
        return None if sent is None else (int(sent.code), sent.reason)

    @property
    def subprotocol(self) -> str:
        return self.protocol.subprotocol or ""

    # -- handshake -------------------------------------------------------

    def handshake_event(self) -> bool:
        """Process handshake events; True once the request/response is in.

        Client: raises :class:`HandshakeFailure` if the response is bad.
        """
        protocol = self.protocol
        for event in protocol.events_received():
            if isinstance(event, CoreRequest):
                headers = Headers(_shared(event.headers.raw_items()))
                self.request = Request(event.path, headers)
            elif isinstance(event, CoreResponse):
                self.response = event
                self.extensions = ", ".join(
                    event.headers.get_all("Sec-WebSocket-Extensions")
                )
            # Frames right behind the 101 were handled by recv_frame.
        if isinstance(protocol, ClientProtocol):
            if protocol.handshake_exc is not None:
                resp = self.response
                if resp is not None:
                    raise HandshakeFailure(
                        f"the server rejected the handshake: {protocol.handshake_exc}",
                        resp.status_code, Headers(resp.headers.raw_items()), bytes(resp.body),
                    )
                raise HandshakeFailure(f"invalid handshake response: {protocol.handshake_exc}")
            return self.response is not None
        if protocol.handshake_exc is not None and self.request is None:
            # The core already queued a 4xx (or nothing, for garbage).
            raise HandshakeFailure(f"invalid handshake request: {protocol.handshake_exc}")
        return self.request is not None

    def accept(
        self,
        select: Callable[[Sequence[str]], str | None],
        extra_headers: Headers,
    ) -> bool:
        """Server: answer the request with 101, or with an error the core chose.

        Returns True if the connection is open.
        """
        assert isinstance(self.protocol, ServerProtocol) and self.request is not None
        self.protocol.select = select
        request = CoreRequest(self.request.path, CoreHeaders(self.request.headers.raw_items()))
        response = self.protocol.accept(request)
        self.protocol.select = None  # its closure holds the request
        for name, value in extra_headers.raw_items():
            response.headers[name] = value
        if response.status_code == 101:
            self.extensions = response.headers.get("Sec-WebSocket-Extensions", "")
        protocol = self.protocol
        protocol.send_response(response)
        if response.status_code == 101 and not protocol.reader.buffer:
            # A fresh parser: the old one's frame keeps the parsed request
            # (about 3 KiB) alive as long as the connection. Safe because the
            # server fed the core the request alone, so no frame is half read.
            # Made with the first bytes (_parser_ready): until then a parser
            # waiting for data, with its nested readers, costs 0.7 KiB.
            protocol.parser = None  # type: ignore[assignment]
        return response.status_code == 101

    def bad_request_reply(self) -> bytes:
        """Server: a 400 response for a request the core refused without one.

        The core only closes on a malformed request; the engine sends this
        first, where the socket still allows it.
        """
        assert isinstance(self.protocol, ServerProtocol)
        response = self.protocol.reject(
            http.HTTPStatus.BAD_REQUEST,
            "Failed to open a WebSocket connection: invalid HTTP request.\n",
        )
        return response.serialize()

    def reject(self, response: Response) -> None:
        """Server: answer the request with the user's HTTP response."""
        assert isinstance(self.protocol, ServerProtocol)
        headers = CoreHeaders(response.headers.raw_items())
        if "Content-Length" not in headers:
            headers["Content-Length"] = str(len(response.body))
        if "Connection" not in headers:
            headers["Connection"] = "close"
        try:
            phrase = http.HTTPStatus(response.status).phrase
        except ValueError:
            phrase = "Unknown"
        self.protocol.send_response(CoreResponse(response.status, phrase, headers, response.body))

    # -- receiving -------------------------------------------------------

    def receive_data(self, data: bytes | bytearray | memoryview) -> None:
        """Feed bytes from the network; then take messages and data to send.

        ``data`` may be a view of a buffer reused after this call: the core
        copies it into its own buffer before parsing (it only appends it
        to a bytearray, whatever the annotation says).
        """
        protocol = self.protocol
        if protocol.parser is None:
            self._parser_ready()
        protocol.receive_data(data)  # type: ignore[arg-type]
        protocol.events = []  # the frames were handled by recv_frame

    def receive_eof(self) -> None:
        """The peer ended the stream (or it broke)."""
        if self.protocol.parser is None:
            self._parser_ready()
        self.protocol.receive_eof()
        self.protocol.events_received()

    def _parser_ready(self) -> None:
        # The parser accept() left for later; not started: the core's own
        # next() after feeding starts it, as it would resume a started one.
        self.protocol.parser = self.protocol.parse()

    def _on_frame(self, frame: Frame) -> None:
        # Called by the core for each frame it accepted, as it parses; a
        # UnicodeDecodeError raised here makes the core fail with 1007.
        opcode = frame.opcode
        if opcode is _TEXT:
            if frame.fin:
                self.messages.append(frame.data.decode())  # type: ignore[union-attr]
            else:
                self._text = True
                self._decoder = codecs.getincrementaldecoder("utf-8")()
                self._parts = []
                self._feed_text(frame.data, False)
        elif opcode is _BINARY:
            if frame.fin:
                data = frame.data
                # The core hands out bytearray slices for unmasked frames.
                self.messages.append(data if type(data) is bytes else bytes(data))
            else:
                self._text = False
                self._binary = bytearray(frame.data)
        elif opcode is _CONT:
            if self._text:
                self._feed_text(frame.data, frame.fin)
            else:
                assert self._binary is not None  # the core checks the sequence
                self._binary += frame.data
                if frame.fin:
                    self.messages.append(bytes(self._binary))
                    self._binary = None
            if frame.fin:
                self._text = None
        elif opcode is _CLOSE:
            self._text = None  # an unfinished message is dropped
            self._parts = None
            self._binary = None
            self._decoder = None
        elif opcode is _PONG:
            self.pongs.append(bytes(frame.data))
        elif opcode is _PING:
            self.pings_received += 1

    def _feed_text(self, data: bytes | bytearray | memoryview, fin: bool) -> None:
        assert self._decoder is not None and self._parts is not None
        piece = self._decoder.decode(data, fin)
        if piece:
            self._parts.append(piece)
        if fin:
            self.messages.append("".join(self._parts))
            self._parts = None
            self._decoder = None

    def take_messages(self) -> list[str | bytes]:
        """The complete messages received since the last call, in order."""
        messages = self.messages
        if messages:
            self.messages = []
        return messages

    def take_pongs(self) -> list[bytes]:
        pongs = self.pongs
        if pongs:
            self.pongs = []
        return pongs

    # -- sending ---------------------------------------------------------

    def send_text(self, text: str) -> None:
        self.protocol.send_text(text.encode())

    def send_binary(self, data: bytes | bytearray | memoryview) -> None:
        self.protocol.send_binary(data)

    def send_close(self, code: int | None, reason: str) -> None:
        """Start the closing handshake; ``None`` sends a Close without body.

        Does nothing once a Close was received (the core answered it).
        """
        if self.protocol.close_rcvd is None:
            self.protocol.send_close(code, reason)

    def send_ping(self, payload: bytes) -> None:
        self.protocol.send_ping(payload)

    def fail(self, code: int, reason: str) -> None:
        """Fail the connection (RFC 6455 7.1.7): send Close(code) if open, stop parsing."""
        if self.failure is None:
            self.failure = (code, reason)
        if self.protocol.state is not _CLOSED:
            self.protocol.fail(code, reason)

    def data_to_send(self) -> list[bytes]:
        """Bytes to write, in order; ``b""`` asks to end the stream after them."""
        return self.protocol.data_to_send()

    @property
    def protocol_failure(self) -> tuple[int, str] | None:
        """(code, reason) when the core or this side failed the connection."""
        if self.failure is not None:
            return self.failure
        if self.protocol.parser_exc is not None and not isinstance(
            self.protocol.parser_exc, EOFError
        ):
            sent = self.protocol.close_sent
            if sent is not None:
                return int(sent.code), sent.reason
            return 1006, ""
        return None

