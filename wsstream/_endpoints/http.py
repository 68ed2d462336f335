"""wsstream's own HTTP types for the opening handshake: headers, request, response."""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping

import attrs

__all__ = ["Headers", "HeadersLike", "Request", "Response", "check_header_value"]

# RFC 7230 3.2.6: a field name is a token.
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
# RFC 7230 3.2: field content is visible ASCII, space, tab and obs-text, the
# bytes 0x80-0xFF, which a str holds as the ISO-8859-1 characters of the
# same values (the opening handshake's parser reads them that way too).
# No CR, LF, NUL or other control character: they could end the field.
_FIELD_VALUE = re.compile(r"[\t\x20-\x7e\x80-\xff]*")


def check_header_value(name: str, value: object) -> str:
    """``value`` if it may be sent as the value of header ``name``.

    Raises :class:`TypeError` if it is not a str and :class:`ValueError` if
    it holds a character that cannot be in a header value (CR, LF, NUL,
    another control character, or one beyond U+00FF).
    """
    if not isinstance(value, str):
        raise TypeError(f"the value of header {name!r} must be a str, not {type(value).__name__}")
    if not _FIELD_VALUE.fullmatch(value):
        raise ValueError(
            f"invalid value for header {name!r}: {value!r} (control characters such as "
            "CR, LF and NUL, and characters beyond U+00FF, cannot be sent)"
        )
    return value


def _check_field(item: object) -> tuple[str, str]:
    if not isinstance(item, (tuple, list)) or len(item) != 2:
        raise TypeError(f"each header must be a (name, value) pair, not {item!r}")
    name, value = item
    if not isinstance(name, str):
        raise TypeError(f"a header name must be a str, not {type(name).__name__}")
    if not _TOKEN.fullmatch(name):
        raise ValueError(
            f"invalid header name {name!r}: a name is an RFC 7230 token (letters, digits "
            "and !#$%&'*+-.^_`|~; no space, no colon)"
        )
    check_header_value(name, value)
    # A pair that is already a tuple is kept, not copied: the server shares
    # the common ones between connections.
    return item if type(item) is tuple else (name, value)


class Headers(Mapping[str, str]):
    """HTTP headers: a case-insensitive mapping that keeps repeated fields.

    ``headers[name]`` gives the first value (``KeyError`` when absent),
    :meth:`get_all` every value in order, and iteration the distinct names in
    the case they first appeared. :meth:`raw_items` gives every field as sent.
    Immutable once built.

    Built from a mapping, an iterable of ``(name, value)`` pairs or another
    :class:`Headers`. Each name must be an RFC 7230 token (no space, no
    colon) and each value a str of visible ASCII, spaces, tabs or characters
    up to U+00FF (no CR, LF, NUL or other control character), else
    :class:`ValueError`; anything that is not str, or not a pair, raises
    :class:`TypeError`.
    """

    __slots__ = ("_items",)

    def __init__(self, items: HeadersLike | None = None) -> None:
        pairs: tuple[tuple[str, str], ...] = ()
        if isinstance(items, Headers):
            pairs = items.raw_items()  # already checked
        elif items is not None:
            if isinstance(items, Mapping):
                source: Iterable[object] = items.items()
            elif isinstance(items, Iterable) and not isinstance(
                items, (str, bytes, bytearray, memoryview)
            ):
                source = items
            else:
                raise TypeError(
                    "headers must be a mapping or an iterable of (name, value) pairs, "
                    f"not {type(items).__name__}"
                )
            pairs = tuple(map(_check_field, source))
        # Looked up by a scan, not through an index: a request has a few
        # dozen fields at most, and a server keeps every connection's
        # request; an index of it cost 1-2.5 KiB per connection.
        self._items = pairs

    def __getitem__(self, name: str) -> str:
        wanted = name.lower()
        for field, value in self._items:
            if field.lower() == wanted:
                return value
        raise KeyError(name)

    def __contains__(self, name: object) -> bool:
        if not isinstance(name, str):
            return False
        wanted = name.lower()
        return any(field.lower() == wanted for field, _ in self._items)

    def __iter__(self) -> Iterator[str]:
        seen: set[str] = set()
        for name, _ in self._items:
            if name.lower() not in seen:
                seen.add(name.lower())
                yield name

    def __len__(self) -> int:
        return len({field.lower() for field, _ in self._items})

    def get_all(self, name: str) -> list[str]:
        """Every value of the field ``name``, in order; ``[]`` when absent."""
        wanted = name.lower()
        return [value for field, value in self._items if field.lower() == wanted]

    def raw_items(self) -> tuple[tuple[str, str], ...]:
        """Every ``(name, value)`` field in order, repeated names included."""
        return self._items

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Headers):
            return self._items == other._items
        return NotImplemented

    def __hash__(self) -> int:
        return hash(self._items)

    def __repr__(self) -> str:
        return f"Headers({list(self._items)!r})"


HeadersLike = Headers | Mapping[str, str] | Iterable[tuple[str, str]]


def _to_headers(value: HeadersLike | None) -> Headers:
    return value if isinstance(value, Headers) else Headers(value)


@attrs.frozen
class Request:
    """The client's opening handshake request, as the server received it.

    ``path`` is the request target, query included (``"/chat?room=1"``);
    ``headers`` the request's :class:`Headers`; ``method`` is always
    ``"GET"`` for a request that reaches the hooks (others are refused with
    405 first); ``remote_address`` is the peer's address as the socket
    gives it (the same value as ``wss.remote_address``; ``None`` when the
    stream has no socket).
    """

    path: str
    headers: Headers = attrs.field(converter=_to_headers, factory=Headers)
    method: str = "GET"
    remote_address: object = None

    def __attrs_post_init__(self) -> None:
        if not isinstance(self.path, str):
            raise TypeError(f"path must be a str, not {type(self.path).__name__}")
        if not isinstance(self.method, str):
            raise TypeError(f"method must be a str, not {type(self.method).__name__}")


@attrs.frozen
class Response:
    """An HTTP response for the opening handshake.

    Returned by a server's ``process_request`` hook, it rejects the handshake
    with this status, headers and body (``Content-Length`` is added when
    missing). ``status`` must be an int from 100 to 599 and ``body``
    ``bytes``; ``headers`` is anything :class:`Headers` accepts. Raises
    :class:`TypeError` or :class:`ValueError` otherwise.
    """

    status: int
    headers: Headers = attrs.field(converter=_to_headers, factory=Headers)
    body: bytes = b""

    def __attrs_post_init__(self) -> None:
        if not isinstance(self.status, int) or isinstance(self.status, bool):
            raise TypeError("status must be an int")
        if not 100 <= self.status <= 599:
            raise ValueError(f"invalid HTTP status {self.status}")
        if not isinstance(self.body, bytes):
            raise TypeError("body must be bytes")
