"""Comparing ``Origin`` values as RFC 6454 says, for the server's ``origins=``.

An origin is the triple (scheme, host, port); two origins are the same when
the three are (RFC 6454 5). Its serialization (RFC 6454 6.2) writes the
scheme and the host in lower case and leaves out the scheme's default port,
so ``https://Example.COM:443`` and ``https://example.com`` are one origin,
while ``http://example.com`` and ``https://example.com:8443`` are others.
A plain string comparison gets the first case wrong: an allow-list entry
written ``https://Example.com`` would refuse the browser's
``https://example.com``.

Anything that is not ``scheme://host[:port]`` (``null``, an opaque origin;
a value with a path; several origins in one header) is compared as it is,
character for character: it matches only an allow-list entry written the
same way, never a normalised one.

Pure functions, no I/O: the server builds the allowed set once with
:func:`allowed_origins` and checks each request with :func:`origin_allowed`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

__all__ = ["allowed_origins", "normalize_origin", "origin_allowed"]

#: scheme "://" host [ ":" port ], nothing else (RFC 6454 6.2, RFC 3986 3.1).
_SERIALIZED_ORIGIN = re.compile(
    r"(?P<scheme>[A-Za-z][A-Za-z0-9+.\-]*)://"
    r"(?P<host>\[[0-9A-Fa-f:.]+\]|[^\s:/?#\[\]@]+)"
    r"(?::(?P<port>[0-9]{1,5}))?"
)

_DEFAULT_PORTS = {"http": 80, "https": 443, "ws": 80, "wss": 443}


def normalize_origin(value: str) -> str:
    """The form of an ``Origin`` value that equal origins share.

    For ``scheme://host[:port]``: scheme and host in ASCII lower case (a
    non-ASCII host in its IDNA ``xn--`` form), the port left out when it is
    the scheme's default (80 for http and ws, 443 for https and wss) and
    written without leading zeros otherwise. Any other value (``null``
    included) is returned unchanged.
    """
    match = _SERIALIZED_ORIGIN.fullmatch(value)
    if match is None:
        return value
    scheme = match["scheme"].lower()
    host = match["host"]
    if not host.isascii():
        try:
            host = host.encode("idna").decode("ascii")
        except UnicodeError:
            return value
    host = host.lower()
    port_text = match["port"]
    if port_text is None:
        return f"{scheme}://{host}"
    port = int(port_text)
    if port > 65535:
        return value
    if port == _DEFAULT_PORTS.get(scheme):
        return f"{scheme}://{host}"
    return f"{scheme}://{host}:{port}"


def allowed_origins(origins: Iterable[str | None]) -> frozenset[str | None]:
    """The server's ``origins=`` list, normalised once for :func:`origin_allowed`.

    ``None`` in the list stays ``None``: it allows requests without an
    ``Origin`` header (non-browser clients send none).
    """
    return frozenset(None if origin is None else normalize_origin(origin) for origin in origins)


def origin_allowed(origin: str | None, allowed: frozenset[str | None]) -> bool:
    """Whether a request whose ``Origin`` header is ``origin`` may connect.

    ``origin`` is the header's value, ``None`` when the request has none;
    ``allowed`` comes from :func:`allowed_origins`.
    """
    if origin is None:
        return None in allowed
    return normalize_origin(origin) in allowed
