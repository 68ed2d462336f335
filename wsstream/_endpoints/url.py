"""URL and subprotocol checks, following the browser's WebSocketStream constructor."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Sequence
from urllib.parse import quote, unquote, urlsplit

import attrs

from .._streams.messages import usv_encode

__all__ = ["WebSocketURL", "parse_url", "check_protocols"]

_SCHEMES = {"ws": "ws", "wss": "wss", "http": "ws", "https": "wss"}
_DEFAULT_PORTS = {"ws": 80, "wss": 443}
# The WHATWG URL standard's forbidden domain code points: the forbidden host
# code points, "%", the C0 controls and DEL.
_FORBIDDEN_HOST = frozenset(" \t\n\r#%/:<>?@[\\]^|\x7f" + "".join(map(chr, range(0x20))))
_PATH_SAFE = "/%!$&'()*+,;=:@-._~"
_QUERY_SAFE = _PATH_SAFE + "?"
# RFC 7230 3.2.6 token: what a Sec-WebSocket-Protocol element may be.
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")


@attrs.frozen
class WebSocketURL:
    """A parsed, normalised ``ws://`` or ``wss://`` URL."""

    secure: bool
    host: str
    port: int
    resource: str  # path and query, as sent in the request line
    user_info: tuple[str, str] | None

    @property
    def scheme(self) -> str:
        return "wss" if self.secure else "ws"

    @property
    def netloc(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        if self.port == _DEFAULT_PORTS[self.scheme]:
            return host
        return f"{host}:{self.port}"

    def __str__(self) -> str:
        return f"{self.scheme}://{self.netloc}{self.resource}"


def parse_url(url: str) -> WebSocketURL:
    """Parse and normalise ``url`` as the browser does.

    ``http`` and ``https`` become ``ws`` and ``wss``. Credentials
    (``user:password@``) are kept apart, percent-decoded, and are not part
    of the normalised URL. Raises
    :class:`TypeError` if ``url`` is not a str and :class:`ValueError` for
    another scheme, a fragment, a missing host, a user name with ``:`` or an
    unparsable URL.
    """
    if not isinstance(url, str):
        raise TypeError(f"url must be a str, not {type(url).__name__}")
    # The browser takes the URL as a USVString: lone surrogates become U+FFFD
    # (and are then percent-encoded like any other non-ASCII character).
    url = usv_encode(url).decode()
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError as exc:
        raise ValueError(f"invalid URL {url!r}: {exc}") from None
    scheme = _SCHEMES.get(parts.scheme.lower())
    if scheme is None:
        raise ValueError(f"invalid URL {url!r}: the scheme must be ws, wss, http or https")
    if "#" in url:
        raise ValueError(f"invalid URL {url!r}: a WebSocket URL cannot have a fragment")
    host = parts.hostname
    if not host:
        raise ValueError(f"invalid URL {url!r}: no host")
    if any(c in "\t\n\r" for c in url):
        raise ValueError(f"invalid URL {url!r}: control characters")
    if port is None:
        port = _DEFAULT_PORTS[scheme]
    if ":" in host:
        try:
            ipaddress.IPv6Address(host.split("%", 1)[0])
        except ValueError:
            raise ValueError(f"invalid URL {url!r}: bad IPv6 address") from None
    elif any(c in _FORBIDDEN_HOST for c in host):
        raise ValueError(f"invalid URL {url!r}: bad host name")
    try:
        host.encode("ascii")
    except UnicodeEncodeError:
        try:
            host = host.encode("idna").decode("ascii")
        except UnicodeError:
            raise ValueError(f"invalid URL {url!r}: bad host name") from None
    # Like the browser's URL parser: non-ASCII and unsafe characters are
    # percent-encoded; existing escapes are kept.
    resource = quote(parts.path or "/", safe=_PATH_SAFE)
    if parts.query:
        resource += "?" + quote(parts.query, safe=_QUERY_SAFE)
    user_info = None
    if parts.username is not None:
        # Credentials are percent-encoded in a URL ("p%40ss" for "p@ss"):
        # Basic authentication takes them decoded (RFC 3986 3.2.1, RFC 7617).
        user_info = (unquote(parts.username), unquote(parts.password or ""))
        if ":" in user_info[0]:
            raise ValueError(
                f"invalid URL {url!r}: a user name cannot contain ':' (Basic authentication)"
            )
    return WebSocketURL(
        secure=scheme == "wss", host=host, port=port, resource=resource, user_info=user_info
    )


def check_protocols(protocols: object, name: str = "protocols") -> tuple[str, ...]:
    """Validate a subprotocol list (the argument called ``name``).

    Raises :class:`TypeError` unless ``protocols`` is a sequence of str (a
    bare str is refused, as the browser refuses a string), and
    :class:`ValueError` for a duplicate or a name that is not an RFC 7230
    token.
    """
    if isinstance(protocols, (str, bytes, bytearray)) or not isinstance(protocols, Sequence):
        raise TypeError(
            f"{name} must be a sequence of str, not {type(protocols).__name__}"
        )
    seen: set[str] = set()
    for protocol in protocols:
        if not isinstance(protocol, str):
            raise TypeError(f"each of {name} must be a str, not {type(protocol).__name__}")
        if not _TOKEN.fullmatch(protocol):
            raise ValueError(f"invalid subprotocol name {protocol!r}")
        if protocol in seen:
            raise ValueError(f"duplicate subprotocol {protocol!r}")
        seen.add(protocol)
    return tuple(protocols)
