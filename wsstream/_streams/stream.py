"""WebSocketStream: the browser's API, one object per connection."""

from __future__ import annotations

import os
import ssl
from collections.abc import Sequence
from types import TracebackType
from typing import Any, Literal, Unpack

import trio

from .._endpoints.client import Dialer
from .._endpoints.handshake import ClientHandshake
from .._endpoints.http import Headers, HeadersLike, Request, check_header_value
from .._endpoints.url import WebSocketURL, check_protocols, parse_url
from .._engine.connection import RUN_TASK_NAME, Connection
from .._errors import AbortError, InvalidStateError, check_close_args, collapse
from .._options import CloseInfo, ConnectionOptions, Statistics, options_from
from .._transport import peer_address
from .._version import __version__
from .channels import OpenInfo, open_info
from .promise import Promise, StartedPromise

__all__ = ["WebSocketStream", "DEFAULT_USER_AGENT"]

DEFAULT_USER_AGENT = f"wsstream/{__version__} (Python; trio)"


class _Unset:
    pass


_UNSET: Any = _Unset()


class WebSocketStream:
    """A WebSocket connection with the browser's WebSocketStream API.

    As a client, construct it with a URL and use it as ``async with``::

        async with WebSocketStream("ws://127.0.0.1:8765/", protocols=["v1"]) as wss:
            readable, writable, extensions, protocol = await wss.opened
            await writable.send("hello")
            print(await readable.receive())

    Construction validates everything and does no I/O: a bad argument
    raises :class:`TypeError` or :class:`ValueError` there. Credentials in
    the URL (``ws://user:password@host/``, percent-escapes decoded) are sent
    as an ``Authorization: Basic`` header and are not part of :attr:`url`;
    use ``wss://`` for them, as Basic authentication is not encrypted.
    Entering the block
    starts the connection in a nursery owned by the block and returns at
    once; ``opened`` settles when the handshake is done. Leaving the block
    closes the connection if it is still open (code 1000 when the body
    finished, 1011 when it raised, at most ``close_timeout``), discarding
    unread messages; the connection's own errors are reported through
    ``opened``, ``closed``, the readable and the writable, never raised by the
    block. Leaving because of a cancellation closes forcefully: the Close
    frame (1001) goes out if it can at once, then the socket is closed.

    A server's handler receives one already open (``request`` and
    ``remote_address`` tell who connected).

    Options and their defaults:

    * ``protocols=()``: subprotocols offered, in order of preference.
    * ``signal=None``: a :class:`trio.Event`; setting it before ``opened``
      settled aborts the connection with :class:`AbortError`.
    * ``headers=None``: extra request headers (a mapping or ``(name, value)``
      pairs: names are RFC 7230 tokens, values have no CR, LF or NUL);
      ``origin=None`` sets ``Origin``; ``user_agent`` sets ``User-Agent``
      (``None`` omits it).
    * ``ssl_context=None``: for ``wss://``; the default verifies the server
      against the system's trust store and checks the host name.
    * ``stream=None``: a connected :class:`trio.abc.Stream` to speak over
      instead of dialling the URL's host (Unix sockets, tests, proxies). The
      connection owns it and closes it. For ``wss://`` it does TLS over it
      (the URL's host names the server and is checked against its
      certificate; ``ssl_context`` or the default context), unless it
      already is a :class:`trio.SSLStream`: a ``wss://`` URL never goes out
      in clear.
    * ``proxy=True``: the proxy to connect through (:doc:`proxies`).
      ``True`` takes it from the environment when the stream is built, as
      curl does: for ``wss://`` the first set of ``wss_proxy``,
      ``https_proxy``, ``all_proxy``, for ``ws://`` of ``ws_proxy``,
      ``http_proxy``, ``all_proxy`` (lower case, then upper case), unless
      ``no_proxy`` lists the URL's host (names with their subdomains, IP
      addresses, CIDR blocks, ``*``). A URL (``http://``, ``https://``,
      ``socks5://``, ``socks5h://``, ``socks4://``, ``socks4a://``;
      ``user:password@`` for credentials) is that proxy; ``None``, none.
      ``wss://`` through a proxy is TLS with the server inside the tunnel,
      checked against the URL's host. A bad proxy URL (in the environment
      too) raises :class:`ValueError` here, its credentials never shown.
      Not used with ``stream`` or ``unix_socket_path``: ``True`` is
      ignored there, a URL is a :class:`ValueError`.
    * ``proxy_ssl_context=None``: for an ``https://`` proxy, the trust for
      the proxy's own certificate (default: the system's trust store, the
      host name checked); a :class:`ValueError` with an explicit proxy URL
      that is not ``https://``.
    * ``unix_socket_path=None``: a Unix socket (``str`` or path-like) to
      connect to instead of the URL's host and port; the URL still gives
      the ``Host`` header, the path and, for ``wss://``, TLS over the
      socket. :class:`ValueError` together with ``stream``.
    * ``open_timeout=10``: seconds for TCP, the proxy's exchange, TLS and
      the opening handshake together (websockets: 10; trio-websocket: 60).
      Expiry raises a :class:`HandshakeError`.
    * ``close_timeout=10``: seconds for the closing handshake and the end of
      TCP once a Close was sent or received (websockets: 10; trio-websocket:
      60); on expiry the socket is dropped and ``closed`` raises 1006.
    * ``read_limit=1 MiB``: bytes of unread message payload after which the
      connection stops reading the socket; reading resumes below half.
      (websockets buffers 16 messages of up to 1 MiB each; trio-websocket one
      message.)
    * ``write_limit=64 KiB``: ``send()`` waits while more than this many
      encoded bytes wait to be written (websockets: 32 KiB).
    * ``max_message_size=1 MiB``: a larger incoming message fails the
      connection with 1009 (same as websockets and trio-websocket); ``None``
      for no limit.
    * ``max_streamed_size=None``: the limit of a message read with
      ``readable.receive_stream()`` (over it: 1009); ``None``, any size,
      since a streamed message passes through ``read_limit`` of memory.
    * ``compression="deflate"``: permessage-deflate (RFC 7692) with the
      default :class:`Deflate` settings, a :class:`Deflate` to tune it, or
      ``None`` for no compression.
    * ``ping_interval=20``, ``ping_timeout=20``: keepalive pings; a peer
      that does not answer in time is failed with 1011 (same as websockets).
      ``None`` disables.
    """

    def __init__(
        self,
        url: str,
        *,
        protocols: Sequence[str] = (),
        signal: trio.Event | None = None,
        headers: HeadersLike | None = None,
        origin: str | None = None,
        user_agent: str | None = DEFAULT_USER_AGENT,
        ssl_context: ssl.SSLContext | None = None,
        stream: trio.abc.Stream | None = None,
        proxy: str | Literal[True] | None = True,
        proxy_ssl_context: ssl.SSLContext | None = None,
        unix_socket_path: str | os.PathLike[str] | None = None,
        **options: Unpack[ConnectionOptions],
    ) -> None:
        url_value = parse_url(url)
        # The parsed URL on a client; its text alone on a server's stream.
        self._url: WebSocketURL | str = url_value
        subprotocols = check_protocols(protocols)
        if signal is not None and not isinstance(signal, trio.Event):
            raise TypeError("signal must be a trio.Event or None")
        if ssl_context is not None and not isinstance(ssl_context, ssl.SSLContext):
            raise TypeError("ssl_context must be an ssl.SSLContext or None")
        if stream is not None and not isinstance(stream, trio.abc.Stream):
            raise TypeError("stream must be a trio.abc.Stream or None")
        if origin is not None:
            check_header_value("Origin", origin)
        if user_agent is not None:
            check_header_value("User-Agent", user_agent)
        checked = options_from(options)
        handshake = ClientHandshake(
            url_value,
            subprotocols=subprotocols,
            compression=checked.deflate,
            origin=origin,
            headers=Headers(headers),
            user_agent=user_agent,
        )
        dialer = Dialer(
            url_value, stream=stream, ssl_context=ssl_context, proxy=proxy,
            proxy_ssl_context=proxy_ssl_context, unix_socket_path=unix_socket_path,
            user_agent=user_agent,
        )
        self._conn = Connection(handshake, checked, open_info, connect=dialer)
        self._given_stream = stream
        # Nothing settles these before ``async with`` starts the connection:
        # awaiting them earlier raises instead of waiting for ever.
        not_started = (
            "the WebSocketStream was never entered: await opened and closed "
            "inside 'async with wss:'"
        )
        self._opened_gate: StartedPromise[OpenInfo] = StartedPromise(not_started)
        self._closed_gate: StartedPromise[CloseInfo] = StartedPromise(not_started)
        self._conn.opened = self._opened_gate
        self._conn.closed = self._closed_gate
        self._signal = signal
        self._server_side = False
        self._request: Request | None = None
        self._nursery_cm: Any = None
        self._entered = False

    @classmethod
    def _accepted(cls, conn: Connection, url: str, request: Request) -> WebSocketStream:
        self = cls.__new__(cls)
        # Kept as text: the parsed form is 0.15 KiB more per connection and
        # nothing on a server's stream needs it.
        self._url = str(parse_url(url))
        self._conn = conn
        self._given_stream = None
        self._signal = None
        self._server_side = True
        self._request = request
        self._nursery_cm = None
        self._entered = True
        return self

    # -- the browser's members -------------------------------------------

    @property
    def url(self) -> str:
        """The normalised URL (``http``/``https`` became ``ws``/``wss``),
        without the credentials the URL may have held."""
        return str(self._url)

    @property
    def opened(self) -> Promise[OpenInfo]:
        """Awaitable: :class:`OpenInfo` once the handshake succeeded.

        Raises :class:`WebSocketError` (:class:`HandshakeError`,
        :class:`AbortError`) if the connection could not be opened. May be
        awaited any number of times; cancelling the await only stops waiting.
        On a client never entered with ``async with``, awaiting it raises
        :class:`InvalidStateError` at once (nothing would ever settle it).
        """
        return self._conn.opened

    @property
    def closed(self) -> Promise[CloseInfo]:
        """Awaitable: :class:`CloseInfo` once the connection closed cleanly.

        Gives the code and reason of the Close frame received from the peer
        (1005 for a Close without body). Raises the connection's
        :class:`WebSocketError` if it ended abnormally (1006 for a dropped
        connection, the code we sent when we failed it). Like ``opened``, it
        raises :class:`InvalidStateError` at once on a client never entered.
        """
        return self._conn.closed

    def close(self, close_code: int | None = None, reason: str = "") -> None:
        """Start the closing handshake; does not wait (await ``closed``).

        ``close_code`` must be 1000 or 3000-4999 (on a server's stream also
        1001-1003 and 1007-1011) and ``reason`` at most 123 UTF-8 bytes, else
        :class:`ValueError`; a non-int code or non-str reason raises
        :class:`TypeError`. No code and no reason sends a Close without a
        body (the peer sees 1005); a reason alone sends 1000. Called before
        the handshake finished, it abandons the connection: ``opened`` and
        ``closed`` raise :class:`WebSocketError`. Does nothing once closing.
        """
        code, reason = check_close_args(close_code, reason, server=self._server_side)
        self._conn.close(code, reason)

    # -- beyond the browser ----------------------------------------------

    @property
    def request(self) -> Request | None:
        """The opening handshake request (server side); ``None`` on a client."""
        return self._request

    @property
    def remote_address(self) -> object:
        """The peer's address as the socket reports it; ``None`` if unknown."""
        stream = self._conn.stream
        return peer_address(stream if stream is not None else self._given_stream)

    @property
    def latency(self) -> float | None:
        """The last measured ping round trip in seconds, ``None`` before any."""
        return self._conn.pings.latency

    async def ping(self, payload: bytes = b"") -> float:
        """Send a Ping and wait for the Pong; returns the round trip in seconds.

        An empty ``payload`` is replaced by 4 random bytes so that pongs can
        be matched. Raises :class:`ValueError` for a payload over 125 bytes or
        one already in flight, :class:`trio.ClosedResourceError` or the
        connection's error if it is not open. Cancelling the wait leaves the
        ping on the wire; its pong is then ignored.
        """
        if not self._conn.opened.settled:
            raise InvalidStateError("the connection is not open yet")
        return await self._conn.ping(payload)

    def statistics(self) -> Statistics:
        """Counters of this connection: cheap, a snapshot."""
        return self._conn.statistics()

    # -- async with ------------------------------------------------------

    async def __aenter__(self) -> WebSocketStream:
        if self._entered:
            raise RuntimeError("a WebSocketStream can be entered only once")
        self._entered = True
        self._opened_gate.start()
        self._closed_gate.start()
        self._nursery_cm = trio.open_nursery()
        nursery = await self._nursery_cm.__aenter__()
        if self._signal is not None and self._signal.is_set():
            # A pre-aborted signal: no connection is ever attempted.
            self._conn.abort(AbortError())
        elif self._signal is not None:
            nursery.start_soon(self._conn.watch_signal, self._signal)
        nursery.start_soon(self._conn.run, name=RUN_TASK_NAME)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool:
        conn = self._conn
        if exc is None:
            conn.discard_incoming()
            conn.close(1000, "")
        elif isinstance(exc, Exception) and not _is_cancel(exc):
            conn.discard_incoming()
            conn.close(1011, "")
        else:
            conn.close_forcefully(1001, "")
        try:
            await self._nursery_cm.__aexit__(None, None, None)
        except BaseExceptionGroup as group:
            error = collapse(group)
            if exc is not None and isinstance(error, trio.Cancelled):
                return False  # the body's own exception goes on
            raise error from None
        finally:
            if self._given_stream is not None and conn.stream is None:
                # Aborted before the connection took the given stream: it
                # is still the connection's to close.
                await trio.aclose_forcefully(self._given_stream)
        return False


def _is_cancel(exc: BaseException) -> bool:
    if isinstance(exc, trio.Cancelled):
        return True
    if isinstance(exc, BaseExceptionGroup):
        return any(_is_cancel(e) for e in exc.exceptions)
    return False
