"""Exceptions raised by wsstream.

The tree::

    trio.BrokenResourceError
     └── WebSocketError          the connection ended abnormally (close_code, reason)
          ├── AbortError         the ``signal`` aborted the opening handshake
          └── HandshakeError     the opening handshake failed or timed out
    RuntimeError
     └── InvalidStateError      a call made in the wrong state (the browser's
                                InvalidStateError DOMException)

Bad arguments raise :class:`TypeError` or :class:`ValueError` at once.

The browser's DOMException names map as follows: ``SyntaxError`` and
``InvalidAccessError`` (bad URL, bad close code or reason) become
:class:`ValueError`; WebIDL conversion errors stay :class:`TypeError`;
``AbortError`` becomes :class:`AbortError`; ``InvalidStateError`` becomes
:class:`InvalidStateError`, except for writes on a closed stream, which raise
the connection's :class:`WebSocketError` (or :class:`trio.ClosedResourceError`
when this side closed), as trio's channel contract says.
"""

from __future__ import annotations

from collections.abc import Mapping

import trio

__all__ = [
    "collapse",
    "AbortError",
    "HandshakeError",
    "InvalidStateError",
    "WebSocketError",
    "check_close_args",
]

#: The largest Close reason, in UTF-8 bytes: a control frame carries at most
#: 125 bytes of payload and the code takes two (RFC 6455 5.5).
MAX_REASON_BYTES = 123

#: Codes that an endpoint may send under RFC 6455 7.4.1 besides 1000, allowed
#: for the server's handler but not for the browser-like client API.
SERVER_ONLY_CODES = frozenset({1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011})

#: Codes that must never appear in a Close frame (RFC 6455 7.4.1).
RESERVED_CODES = frozenset({1005, 1006, 1015})


def check_close_args(
    close_code: int | None, reason: str, *, server: bool = False
) -> tuple[int | None, str]:
    """Validate a close code and reason as the browser's ``close()`` does.

    Returns the code to send: ``None`` means a Close frame without a body; a
    reason without a code gives 1000. Raises :class:`TypeError` for a non-int
    code (``bool`` included) or a non-str reason, :class:`ValueError` for a
    code outside 1000 and 3000-4999 (plus the RFC 6455 endpoint codes when
    ``server`` is true) or a reason over 123 UTF-8 bytes.
    """
    if close_code is not None and (
        not isinstance(close_code, int) or isinstance(close_code, bool)
    ):
        raise TypeError(f"close_code must be an int or None, not {type(close_code).__name__}")
    if not isinstance(reason, str):
        raise TypeError(f"reason must be a str, not {type(reason).__name__}")
    if close_code is not None and not (
        close_code == 1000
        or 3000 <= close_code <= 4999
        or (server and close_code in SERVER_ONLY_CODES)
    ):
        allowed = "1000, 1001-1003, 1007-1011 or 3000-4999" if server else "1000 or 3000-4999"
        raise ValueError(f"close_code must be {allowed}, not {close_code}")
    try:
        encoded = reason.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ValueError("reason must be encodable as UTF-8") from exc
    if len(encoded) > MAX_REASON_BYTES:
        raise ValueError(
            f"reason must be at most {MAX_REASON_BYTES} UTF-8 bytes, not {len(encoded)}"
        )
    if close_code is None and reason:
        close_code = 1000
    return close_code, reason


class WebSocketError(trio.BrokenResourceError):
    """The connection ended abnormally, or a reason for closing it.

    ``close_code`` is the code of the Close frame involved (``None`` when
    there is none) and ``reason`` its reason. Built by user code, it
    validates as the client's :meth:`WebSocketStream.close` does and, like the
    browser's, a reason without a code sets the code to 1000; pass it to
    :meth:`Readable.cancel` or :meth:`Writable.abort` to choose the Close frame
    sent. Errors that wsstream raises may carry any code, such as 1006 for a
    connection that dropped without a closing handshake.

    It subclasses :class:`trio.BrokenResourceError`, so generic trio code that
    handles broken streams handles it too.
    """

    close_code: int | None
    reason: str

    def __init__(
        self, message: str = "", *, close_code: int | None = None, reason: str = ""
    ) -> None:
        code, reason = check_close_args(close_code, reason)
        super().__init__(message)
        self.close_code = code
        self.reason = reason

    @property
    def message(self) -> str:
        """The human-readable message given when the error was built."""
        return str(self.args[0]) if self.args else ""

    @classmethod
    def _build(cls, message: str, close_code: int | None, reason: str = "") -> WebSocketError:
        # wsstream's own errors may carry any code (1006, 1009, ...), so they
        # skip the user-facing validation.
        exc = cls.__new__(cls)
        trio.BrokenResourceError.__init__(exc, message)
        exc.close_code = close_code
        exc.reason = reason
        return exc

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}({self.message!r}, close_code={self.close_code!r}, "
            f"reason={self.reason!r})"
        )


class AbortError(WebSocketError):
    """The ``signal`` passed to :class:`WebSocketStream` aborted the connection.

    Raised by ``opened`` and ``closed`` when the signal was set before or
    during the opening handshake. ``close_code`` is 1006: nothing was closed
    cleanly.
    """

    def __init__(self, message: str = "the connection was aborted") -> None:
        trio.BrokenResourceError.__init__(self, message)
        self.close_code = 1006
        self.reason = ""


class HandshakeError(WebSocketError):
    """The opening handshake failed or timed out.

    ``status``, ``headers`` and ``body`` describe the server's HTTP response
    when there was one (for example a 404), else they are ``None``, ``None``
    and ``b""``. ``close_code`` is always 1006.

    Without a response, ``__cause__`` says what went wrong: the
    :class:`OSError` of the connection attempt (refused, unreachable, a name
    that did not resolve), :class:`trio.TooSlowError` when ``open_timeout``
    expired, :class:`EOFError` when the server closed the connection during
    the handshake, the :class:`trio.BrokenResourceError` of a stream that
    broke (TLS failures included); ``None`` for an invalid response.

    ``proxy`` is the proxy's URL, without credentials
    (``"http://proxy.corp:3128"``), when the failure was the proxy's: it
    could not be reached, refused the tunnel (an HTTP proxy's status,
    headers and body are then ``status``, ``headers`` and ``body``; a SOCKS
    refusal's cause is an :class:`OSError` when the server could not be
    reached, else python-socks' ``ProxyError``), failed TLS, broke the
    exchange, or had not opened the tunnel when ``open_timeout`` expired.
    It is ``None`` for every failure past the tunnel and without a proxy.
    """

    status: int | None
    headers: Mapping[str, str] | None
    body: bytes
    proxy: str | None

    def __init__(
        self,
        message: str = "the opening handshake failed",
        *,
        status: int | None = None,
        headers: Mapping[str, str] | None = None,
        body: bytes = b"",
        proxy: str | None = None,
    ) -> None:
        trio.BrokenResourceError.__init__(self, message)
        self.close_code = 1006
        self.reason = ""
        self.status = status
        self.headers = headers
        self.body = body
        self.proxy = proxy


class InvalidStateError(RuntimeError):
    """A call was made in a state that does not allow it.

    For example the classic interface's ``send()`` while it is still
    connecting. Not a :class:`WebSocketError`: it is a bug in the caller, not
    a property of the connection.
    """


def collapse(exc: BaseException) -> BaseException:
    """The one exception a user sees for a group from wsstream's nurseries.

    The first exception in the group (depth first) that is not a
    :class:`trio.Cancelled`, else the first cancellation; any other real
    exception in the group is named in a note on it. A plain exception is
    returned as it is. Every context manager and entry point of wsstream
    raises through this, so no user sees a bare ``ExceptionGroup``.
    """
    if not isinstance(exc, BaseExceptionGroup):
        return exc
    leaves: list[BaseException] = []
    stack: list[BaseException] = [exc]
    while stack:
        item = stack.pop()
        if isinstance(item, BaseExceptionGroup):
            stack.extend(reversed(item.exceptions))
        else:
            leaves.append(item)
    real = [leaf for leaf in leaves if not isinstance(leaf, trio.Cancelled)]
    if not real:
        return leaves[0]
    first = real[0]
    for other in real[1:]:
        if other is not first:
            first.add_note(f"wsstream: {other!r} was raised at the same time")
    return first
