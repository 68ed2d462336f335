"""wsstream's own HTTP types for the opening handshake: headers, request, response."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping

import attrs

__all__ = ["Headers", "HeadersLike", "Request", "Response"]


class Headers(Mapping[str, str]):
    """HTTP headers: a case-insensitive mapping that keeps repeated fields.

    ``headers[name]`` gives the first value (``KeyError`` when absent),
    :meth:`get_all` every value in order, and iteration the distinct names in
    the case they first appeared. :meth:`raw_items` gives every field as sent.
    Immutable once built.
    """

    __slots__ = ("_index", "_items")

    def __init__(self, items: HeadersLike | None = None) -> None:
        pairs: list[tuple[str, str]] = []
        if items is not None:
            source = items.raw_items() if isinstance(items, Headers) else (
                items.items() if isinstance(items, Mapping) else items
            )
            for item in source:
                name, value = item
                if not isinstance(name, str) or not isinstance(value, str):
                    raise TypeError("header names and values must be str")
                if any(c in name for c in "\r\n:") or any(c in value for c in "\r\n"):
                    raise ValueError(f"invalid header {name!r}: {value!r}")
                # A pair that is already a tuple is kept, not copied: the
                # server shares the common ones between connections.
                pairs.append(item if type(item) is tuple else (name, value))
        self._items = tuple(pairs)
        # Built on first lookup: a server keeps every connection's request
        # headers, most of which are never looked up.
        self._index: dict[str, list[str]] | None = None

    @property
    def _by_name(self) -> dict[str, list[str]]:
        index = self._index
        if index is None:
            index = {}
            for name, value in self._items:
                index.setdefault(name.lower(), []).append(value)
            self._index = index
        return index

    def __getitem__(self, name: str) -> str:
        return self._by_name[name.lower()][0]

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name.lower() in self._by_name

    def __iter__(self) -> Iterator[str]:
        seen: set[str] = set()
        for name, _ in self._items:
            if name.lower() not in seen:
                seen.add(name.lower())
                yield name

    def __len__(self) -> int:
        return len(self._by_name)

    def get_all(self, name: str) -> list[str]:
        """Every value of the field ``name``, in order; ``[]`` when absent."""
        return list(self._by_name.get(name.lower(), ()))

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


@attrs.frozen
class Response:
    """An HTTP response for the opening handshake.

    Returned by a server's ``process_request`` hook, it rejects the handshake
    with this status, headers and body (``Content-Length`` is added when
    missing). ``status`` must be 100-599.
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
