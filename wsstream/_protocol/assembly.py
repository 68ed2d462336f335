"""Reassembly of one data message: fragments joined or streamed, deflate
undone, UTF-8 checked as it comes.

A whole uncompressed message in one frame (the common case) never gets
here: the core's parser hands it out directly. Everything else (fragments,
compressed messages, large payloads, streamed messages) goes through an
:class:`Assembly`, one per message, in one of three modes:

* ``WHOLE``: pieces are kept until the last frame, then joined into one
  ``str`` or ``bytes``; past the limit for whole messages the assembly is
  *over* and the core holds the message (see the core's docstring);
* ``STREAM``: every piece goes out at once as a :class:`Chunk` (text split
  on character boundaries), the last one marked ``final``;
* ``DISCARD``: pieces are checked (UTF-8) and dropped.

Compressed input is decompressed in steps no larger than the caller allows
(the decode budget), so a small frame cannot produce more than that at once;
what remains waits in the inflater (:attr:`Assembly.pending`).
"""

from __future__ import annotations

import codecs

from .deflate import Inflater, TooBig

__all__ = ["DISCARD", "STREAM", "WHOLE", "Assembly", "Chunk"]

WHOLE, STREAM, DISCARD = 0, 1, 2

#: The smallest step of a streamed message's decompression, whatever the
#: budget left: tiny chunks would cost more than the bytes they hold.
MIN_STEP = 4096

_utf8_decoder = codecs.getincrementaldecoder("utf-8")

Buffer = bytes | bytearray | memoryview


class Chunk:
    """A piece of a streamed message: ``str`` for text, ``bytes`` for binary;
    ``final`` on the message's last piece (which may be empty)."""

    __slots__ = ("data", "final")

    def __init__(self, data: str | bytes, final: bool) -> None:
        self.data = data
        self.final = final

    def __len__(self) -> int:
        return len(self.data)

    def __repr__(self) -> str:
        more = "..." if len(self.data) > 20 else ""
        return f"Chunk({self.data[:20]!r}{more}, final={self.final})"


class Assembly:
    """The message being received: its kind, mode, sizes and pieces so far."""

    __slots__ = (
        "buffer", "compressed", "decoder", "done", "limit", "mode", "over", "size", "text", "wire",
    )

    def __init__(self, text: bool, compressed: bool, mode: int, limit: int | None) -> None:
        self.text = text
        self.compressed = compressed
        self.mode = mode
        self.limit = limit  # decoded bytes allowed in this mode
        self.size = 0  # decoded bytes so far
        self.wire = 0  # payload bytes on the wire so far
        self.over = False  # WHOLE and past the limit: the core holds it
        self.done = False  # the message's last byte went out (or was dropped)
        # WHOLE: the bytes kept so far (text as UTF-8, already checked), in
        # one buffer: a message of a million one-byte fragments must cost a
        # megabyte, not a million objects.
        self.buffer: bytearray | None = None
        self.decoder: codecs.IncrementalDecoder | None = None

    def add(
        self, payload: Buffer, fin: bool, inflater: Inflater | None, budget: int | None
    ) -> tuple[int, str | bytes | Chunk | None]:
        """One frame's payload (or a piece of it; ``fin`` on the message's
        last): (decoded bytes it added, what to hand out: the whole message,
        a chunk, or ``None``).

        Raises :class:`~.deflate.TooBig` past the limit of a streamed or
        discarded message, :class:`zlib.error` for bad deflate data and
        :class:`UnicodeDecodeError` as soon as text cannot be UTF-8.
        """
        self.wire += len(payload)
        if not self.compressed:
            return self._decoded(payload, fin)
        assert inflater is not None
        inflater.feed(payload, fin)
        return self.drain(inflater, budget)

    def drain(
        self, inflater: Inflater, budget: int | None
    ) -> tuple[int, str | bytes | Chunk | None]:
        """Decompress what waits in the inflater, within the budget (a whole
        message: up to its limit, plus one byte to see it is over)."""
        if self.mode == WHOLE:
            room = None if self.limit is None else self.limit - self.size + 1
            data = inflater.take(room)
        else:
            step = None if budget is None else max(budget, MIN_STEP)
            data = inflater.take(step)
            if self.limit is not None and self.size + len(data) > self.limit:
                raise TooBig
        return self._decoded(data, not inflater.pending and inflater.ended)

    def _decoded(self, data: Buffer, fin: bool) -> tuple[int, str | bytes | Chunk | None]:
        size = len(data)
        self.size += size
        mode = self.mode
        if mode == WHOLE and self.limit is not None and self.size > self.limit:
            self._keep(data, False)
            self.over = True
            return size, None
        self.done = fin
        if mode == WHOLE:
            buffer = self.buffer
            if fin and buffer is None:
                # A whole message in one piece (compressed, or gathered apart).
                if self.text:
                    return size, str(data, "utf-8")
                return size, data if type(data) is bytes else bytes(data)
            self._keep(data, fin)
            if not fin:
                return size, None
            buffer = self.buffer
            assert buffer is not None
            self.buffer = None
            if self.text:
                return size, str(buffer, "utf-8")  # checked as it came
            return size, bytes(buffer)
        if self.text:
            piece: str | bytes = self._text(data, fin)
        else:
            piece = data if type(data) is bytes else bytes(data)
        if mode == DISCARD or (not piece and not fin):
            return size, None
        return size, Chunk(piece, fin)

    def _text(self, data: Buffer, fin: bool) -> str:
        decoder = self.decoder
        if decoder is None:
            decoder = self.decoder = _utf8_decoder()
        # Fails as soon as the bytes cannot begin valid UTF-8, not at the
        # end of the message.
        return decoder.decode(data, fin)

    def _keep(self, data: Buffer, fin: bool) -> None:
        if self.text:
            # Checked now (1007 as soon as it is wrong); decoded once, whole.
            self._text(data, fin)
        if self.buffer is None:
            self.buffer = bytearray(data)
        else:
            self.buffer += data

    def to_stream(self, limit: int | None) -> Chunk | None:
        """Stream the rest of this message: what was kept so far, as the
        first chunk (``None`` if nothing was)."""
        self.mode = STREAM
        self.limit = limit
        self.over = False
        buffer, self.buffer = self.buffer, None
        if limit is not None and self.size > limit:
            raise TooBig
        if not buffer:
            return None
        if not self.text:
            return Chunk(bytes(buffer), False)
        # The decoder holds the start of a character cut by the last piece:
        # the chunk ends before it, the decoder goes on from it.
        assert self.decoder is not None
        pending = len(self.decoder.getstate()[0])
        text = str(memoryview(buffer)[: len(buffer) - pending], "utf-8")
        return Chunk(text, False) if text else None

    def to_discard(self) -> None:
        """Drop the rest of this message (and what was kept)."""
        self.mode = DISCARD
        self.limit = None
        self.over = False
        self.buffer = None
