"""permessage-deflate settings (RFC 7692): the public :class:`Deflate`, the
client's offer and the server's answer built from it, and what our side's
compressor uses once the 101 settled the parameters.

Which setting binds whom (RFC 7692 7.1):

* ``server_*`` parameters bind the server's compressor (and so the client's
  decompressor), ``client_*`` the client's compressor (and the server's
  decompressor). A server applies its settings in its answer; a client asks
  for them in its offer, and the server may lower them further.
* ``level``, ``mem_level`` and ``min_size`` never go on the wire: they tune
  this side's compressor only.

The negotiation itself is websockets' extension factories (documented API,
imported through ``websockets``, this package's module); :func:`settle` then makes sure our
compressor never exceeds our own settings, whatever the peer answered.
"""

from __future__ import annotations

import attrs

from .._protocol import DeflateParams
from .websockets import ClientPerMessageDeflateFactory, ServerPerMessageDeflateFactory

__all__ = ["DEFAULT_DEFLATE", "Deflate", "client_offers", "server_factory", "settle"]


def _window_bits(instance: Deflate, attribute: attrs.Attribute[int], value: int) -> None:
    _int(attribute.name, value)
    # zlib cannot write a raw deflate stream with an 8-bit window
    # (https://github.com/madler/zlib/issues/171): 9 is the smallest window
    # this side can promise for its compressor.
    if not 9 <= value <= 15:
        raise ValueError(f"{attribute.name} must be between 9 and 15, not {value}")


def _flag(instance: Deflate, attribute: attrs.Attribute[bool], value: bool) -> None:
    if not isinstance(value, bool):
        raise TypeError(f"{attribute.name} must be a bool")


def _optional_flag(
    instance: Deflate, attribute: attrs.Attribute[bool | None], value: bool | None
) -> None:
    if value is not None and not isinstance(value, bool):
        raise TypeError(f"{attribute.name} must be a bool or None")


def _int(name: str, value: object) -> None:
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(f"{name} must be an int")


def _level(instance: Deflate, attribute: attrs.Attribute[int], value: int) -> None:
    _int(attribute.name, value)
    if not 0 <= value <= 9:
        raise ValueError(f"level must be between 0 and 9, not {value}")


def _mem_level(instance: Deflate, attribute: attrs.Attribute[int], value: int) -> None:
    _int(attribute.name, value)
    if not 1 <= value <= 9:
        raise ValueError(f"mem_level must be between 1 and 9, not {value}")


def _min_size(instance: Deflate, attribute: attrs.Attribute[int], value: int) -> None:
    _int(attribute.name, value)
    if value < 0:
        raise ValueError(f"min_size must not be negative, not {value}")


@attrs.frozen(kw_only=True)
class Deflate:
    """permessage-deflate (RFC 7692) settings, for ``compression=``.

    ``compression="deflate"`` means ``Deflate()``. The defaults, chosen
    from measurements (the compression guide has the tables), keep a
    server's memory per connection low without compressing small messages
    any worse than before: 12-bit windows, ``mem_level=2``, ``level=7``,
    clients asked to reset their context after every message, every
    message compressed. Every argument is keyword-only; a wrong type
    raises :class:`TypeError`, a value out of range :class:`ValueError`.

    * ``server_max_window_bits``, ``client_max_window_bits`` (9-15): the
      base-2 logarithm of the LZ77 window of the server's and the client's
      compressor. A smaller window costs less memory on both ends (the
      compressor's and the peer's decompressor's) and finds fewer matches.
      A server answers with them; a client asks for ``server_*`` (and
      falls back to an offer that asks nothing of the server when the
      server declines) and keeps its own compressor within ``client_*``
      whatever the answer. 8, which RFC 7692 allows, cannot be written by zlib:
      a client offer asking a server for 8 is declined, an 8 the server
      imposes on a client's compressor fails the handshake, and an 8 for the
      peer's compressor is read with a 9-bit window (which reads it).
    * ``server_no_context_takeover``, ``client_no_context_takeover``: that
      side's compressor starts afresh with every message, so both ends
      release that direction's zlib contexts between messages (less memory
      per idle connection, a much worse ratio on small messages). A server
      sets them in its answer; a client offers them, and follows a server
      that sets them. ``client_no_context_takeover=None``, the default,
      depends on the side: a server asks clients for it (their small
      messages compress worse, but the server keeps no decompressor per
      idle connection), a client does not offer it (what it sends keeps
      its ratio).
    * ``level`` (0-9) and ``mem_level`` (1-9): zlib's compression level and
      memory level for this side's compressor (``mem_level`` sizes its hash
      table and its symbol buffer: ``2 ** (mem_level + 8)`` bytes each).
    * ``min_size`` (bytes, 0 or more): messages shorter than this are sent
      uncompressed (RFC 7692 6: a sender may leave any message
      uncompressed), sparing a zlib call each, and a connection that only
      sends short messages never makes a compressor. With context takeover
      even short messages shrink, hence 0 by default. It counts the encoded
      payload (UTF-8 for text). A message deflate would make longer is sent
      uncompressed whatever ``min_size``.
    """

    server_max_window_bits: int = attrs.field(default=12, validator=_window_bits)
    client_max_window_bits: int = attrs.field(default=12, validator=_window_bits)
    server_no_context_takeover: bool = attrs.field(default=False, validator=_flag)
    client_no_context_takeover: bool | None = attrs.field(default=None, validator=_optional_flag)
    level: int = attrs.field(default=7, validator=_level)
    mem_level: int = attrs.field(default=2, validator=_mem_level)
    min_size: int = attrs.field(default=0, validator=_min_size)


#: What ``compression="deflate"`` means.
DEFAULT_DEFLATE = Deflate()


def client_offers(settings: Deflate) -> list[ClientPerMessageDeflateFactory]:
    """The client's offers, in order of preference (RFC 7692 5.1).

    The first carries every setting. When it asks something of the server
    (a smaller window, no context takeover), a second asks nothing of it, so
    that a server which declines those parameters still compresses: the
    fallback RFC 7692 7.1.3's example shows. Both let the server limit our
    window with a bare ``client_max_window_bits``, as browsers do, without
    our own limit as a hint: a server may answer a hint with a larger
    window (RFC 7692 7.1.2.2 lets it ignore the hint; Autobahn|Testsuite's
    server answers 15), which websockets' negotiation would refuse. Our
    limit holds anyway: :func:`settle` keeps our compressor within it.
    """
    compress_settings = {"memLevel": settings.mem_level}
    # None: a client does not offer it (see Deflate).
    reset = bool(settings.client_no_context_takeover)
    first = ClientPerMessageDeflateFactory(
        server_no_context_takeover=settings.server_no_context_takeover,
        client_no_context_takeover=reset,
        server_max_window_bits=(
            settings.server_max_window_bits if settings.server_max_window_bits < 15 else None
        ),
        client_max_window_bits=True,
        compress_settings=compress_settings,
    )
    if settings.server_max_window_bits == 15 and not settings.server_no_context_takeover:
        return [first]
    fallback = ClientPerMessageDeflateFactory(
        client_no_context_takeover=reset,
        client_max_window_bits=True,
        compress_settings=compress_settings,
    )
    return [first, fallback]


def server_factory(settings: Deflate) -> ServerPerMessageDeflateFactory:
    """The server's side of the negotiation: the first offer it can accept
    is answered with our settings, lowered where the client asked for less
    (7.1.2); an offer asking for an 8-bit server window is declined."""
    return ServerPerMessageDeflateFactory(
        server_no_context_takeover=settings.server_no_context_takeover,
        # None: a server asks for it (see Deflate).
        client_no_context_takeover=settings.client_no_context_takeover is not False,
        server_max_window_bits=(
            settings.server_max_window_bits if settings.server_max_window_bits < 15 else None
        ),
        # Only applied to clients that offer client_max_window_bits (all
        # browsers do): a client that does not may use 15, and our
        # decompressor then takes its 15.
        client_max_window_bits=(
            settings.client_max_window_bits if settings.client_max_window_bits < 15 else None
        ),
        compress_settings={"memLevel": settings.mem_level},
    )


def settle(params: DeflateParams, settings: Deflate, *, client: bool) -> DeflateParams:
    """The parameters this side uses, from the negotiated ones.

    Our compressor keeps within our own settings even where the answer
    allows more: a smaller window than agreed is always valid (7.1.2), and
    no context takeover that we asked for holds even when the server's
    answer omits it (7.1.1.2). Raises :class:`ValueError` if our compressor
    was given a window zlib cannot write (8 bits; the negotiation declines
    those, so this is a safeguard).
    """
    if client:
        bits, reset = settings.client_max_window_bits, bool(settings.client_no_context_takeover)
    else:
        bits, reset = settings.server_max_window_bits, settings.server_no_context_takeover
    local_bits = min(params.local_max_window_bits, bits)
    if local_bits < 9:
        raise ValueError(f"the peer limited our compressor to a {local_bits}-bit window")
    return DeflateParams(
        local_max_window_bits=local_bits,
        remote_max_window_bits=params.remote_max_window_bits,
        local_no_context_takeover=params.local_no_context_takeover or reset,
        remote_no_context_takeover=params.remote_no_context_takeover,
    )
