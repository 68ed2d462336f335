"""permessage-deflate (RFC 7692) with zlib, for the protocol core.

The negotiation itself happens in the opening handshake; what comes out of
it is a :class:`DeflateParams`, read from the accepted
``Sec-WebSocket-Extensions`` value. From it each connection has a
:class:`Deflater` (ours) and an :class:`Inflater` (the peer's).

Memory: zlib's contexts are the largest part of a connection (a compressor
with a 4 KiB window and memLevel 5 is about 36 KiB, a decompressor with
the peer's 32 KiB window about 40 KiB), so neither is made before the first
message that needs it, and with ``no_context_takeover`` each is dropped
after every message.

Decompression is bounded (RFC 7692 8.1's "limit the size of the
decompressed data"): the inflater never produces more than its caller asks,
so a small frame cannot expand past ``max_message_size``.
"""

from __future__ import annotations

import zlib

__all__ = ["EMPTY_BLOCK", "DeflateParams", "Deflater", "Inflater", "TooBig"]

#: What a sync flush ends with, removed by the sender and put back by the
#: receiver (7.2.1, 7.2.2).
EMPTY_BLOCK = b"\x00\x00\xff\xff"


class TooBig(Exception):
    """A compressed message decompresses to more than it may."""


class DeflateParams:
    """What one side uses: our compressor's and the peer's window, and
    whether each side resets its context after every message."""

    __slots__ = (
        "local_max_window_bits",
        "local_no_context_takeover",
        "remote_max_window_bits",
        "remote_no_context_takeover",
    )

    def __init__(
        self,
        *,
        local_max_window_bits: int = 15,
        remote_max_window_bits: int = 15,
        local_no_context_takeover: bool = False,
        remote_no_context_takeover: bool = False,
    ) -> None:
        self.local_max_window_bits = local_max_window_bits
        self.remote_max_window_bits = remote_max_window_bits
        self.local_no_context_takeover = local_no_context_takeover
        self.remote_no_context_takeover = remote_no_context_takeover

    @classmethod
    def from_header(cls, value: str, *, client: bool) -> DeflateParams | None:
        """The parameters of the accepted ``permessage-deflate`` in a 101's
        ``Sec-WebSocket-Extensions`` value (the handshake checked it); ``None``
        when it is not there. ``client``: which side we are (the server's
        parameters are ours on a server and the peer's on a client)."""
        for extension in value.split(","):
            name, *params = (part.strip() for part in extension.split(";"))
            if name.lower() != "permessage-deflate":
                continue
            settings: dict[str, str | None] = {}
            for param in params:
                key, _, raw = param.partition("=")
                settings[key.strip().lower()] = raw.strip().strip('"') or None
            ours, theirs = ("client", "server") if client else ("server", "client")
            # The peer's 8-bit window is read with 9 bits, which reads it
            # (zlib's smallest raw window); ours is kept as negotiated, so an
            # 8 that zlib cannot write shows instead of silently breaking
            # the peer's decompressor.
            return cls(
                local_max_window_bits=_window(settings.get(f"{ours}_max_window_bits")),
                remote_max_window_bits=max(
                    _window(settings.get(f"{theirs}_max_window_bits")), 9
                ),
                local_no_context_takeover=f"{ours}_no_context_takeover" in settings,
                remote_no_context_takeover=f"{theirs}_no_context_takeover" in settings,
            )
        return None

    def __repr__(self) -> str:
        return (
            f"DeflateParams(local={self.local_max_window_bits}"
            f"{'/nct' if self.local_no_context_takeover else ''}, "
            f"remote={self.remote_max_window_bits}"
            f"{'/nct' if self.remote_no_context_takeover else ''})"
        )


def _window(value: str | None) -> int:
    # A bare client_max_window_bits in a response does not occur (7.1.2.2);
    # absent means the default, 15.
    return 15 if value is None else int(value)


class Deflater:
    """Our side's compressor: one message in, its compressed payload out.

    ``min_size``: the core sends messages shorter than this uncompressed
    (RSV1 clear, RFC 7692 6), without touching the context. A message that
    deflate would make longer goes uncompressed too (see :meth:`compress`)."""

    __slots__ = ("_compressor", "_level", "_mem_level", "_reset", "_wbits", "min_size")

    def __init__(
        self, window_bits: int, no_context_takeover: bool, *, level: int = 6,
        mem_level: int = 5, min_size: int = 0,
    ) -> None:
        self._wbits = window_bits
        self._reset = no_context_takeover
        self._level = level
        self._mem_level = mem_level
        self.min_size = min_size
        self._compressor: zlib._Compress | None = None  # made by the first message

    def compress(self, data: bytes | bytearray | memoryview) -> bytes | None:
        """The message's compressed payload, or ``None`` when it would be
        longer than the message: the caller sends it uncompressed then.

        Incompressible data grows under deflate (stored blocks: 5 bytes per
        block of ``2 ** (mem_level + 6)`` bytes, 2 % at memLevel 2), and a
        message at a peer's size limit would then go over it. Sending it as
        it is needs our context reset: it holds the message, which the
        peer's decompressor will never see, and a later message must not
        refer to it (a fresh context is always valid, 7.2.3.2's no context
        takeover does the same)."""
        out = self._deflate(data, True)
        if len(out) > len(data):
            if len(data):  # an empty message left the window as it was
                self._compressor = None
            return None
        return out

    def compress_part(self, data: bytes | bytearray | memoryview, fin: bool) -> bytes:
        """One part of a message sent in frames (RFC 7692 6.1: one deflate
        stream across the frames); each part is flushed, so it can be
        decompressed as soon as it arrives, and only the last loses its
        empty block. Always compressed: the first frame set RSV1 for the
        whole message."""
        return self._deflate(data, fin)

    def _deflate(self, data: bytes | bytearray | memoryview, last: bool) -> bytes:
        compressor = self._compressor
        if compressor is None:
            compressor = self._compressor = zlib.compressobj(
                self._level, zlib.DEFLATED, -self._wbits, self._mem_level
            )
        out = compressor.compress(data) + compressor.flush(zlib.Z_SYNC_FLUSH)
        if last:
            # Without context takeover the next message starts afresh; the
            # context is not kept in between (memory, see the module docstring).
            if self._reset:
                self._compressor = None
            if out.endswith(EMPTY_BLOCK):
                out = out[:-4]
        return out

    @property
    def allocated(self) -> bool:
        return self._compressor is not None


class Inflater:
    """The peer's side: the frames of one compressed message in, its data
    out, in steps as large as the caller allows.

    :meth:`feed` gives it a frame's payload (or a piece of one), :meth:`take`
    decompresses up to a number of bytes; what it did not reach waits
    (:attr:`pending`) for the next :meth:`take`, so a small frame never
    produces more than asked at once. :attr:`ended` once the message's last
    frame was fed and everything taken.
    """

    __slots__ = ("_decompressor", "_fin", "_more", "_reset", "_tail", "_wbits", "ended")

    def __init__(self, window_bits: int, no_context_takeover: bool) -> None:
        self._wbits = window_bits
        self._reset = no_context_takeover
        self._decompressor: zlib._Decompress | None = None
        self._tail: bytes | bytearray | memoryview = b""  # input not decompressed yet
        self._fin = False  # the message's last frame is in
        self._more = False  # the last take() stopped at its bound
        self.ended = False

    @property
    def pending(self) -> bool:
        """Whether input waits to be decompressed (call :meth:`take`)."""
        return bool(self._tail) or self._more or (self._fin and not self.ended)

    def feed(self, data: bytes | bytearray | memoryview, fin: bool) -> None:
        """A frame's payload, or a piece of one; ``fin`` with the message's
        last. The caller takes everything pending before feeding more."""
        assert not self._tail and not self._more
        # A view may be of a buffer about to be reused: keep a copy.
        self._tail = data if type(data) is bytes else bytes(data)
        self._fin = fin
        self.ended = False

    def take(self, most: int | None) -> bytes:
        """Up to ``most`` bytes of decompressed data (``None``: all of it).

        Raises :class:`zlib.error` for data that is not a valid deflate
        stream (the caller fails the connection with 1007).
        """
        decompressor = self._decompressor
        if decompressor is None:
            decompressor = self._decompressor = zlib.decompressobj(-self._wbits)
        limit = 0 if most is None else most  # zlib's max_length 0: no bound
        out = decompressor.decompress(self._tail, limit) if (self._tail or self._more) else b""
        self._tail = decompressor.unconsumed_tail
        # zlib may hold output it had no room for without leaving input.
        self._more = most is not None and len(out) >= most
        if self._fin and not self._tail and not self._more:
            # The end of the message: the empty block the sender removed
            # (7.2.2) ends the deflate block; it gives no data.
            out += decompressor.decompress(EMPTY_BLOCK)
            self._fin = False
            self.ended = True
            if self._reset:
                self._decompressor = None
        return out

    @property
    def allocated(self) -> bool:
        return self._decompressor is not None
