"""Reassembly of one data message: fragments joined, deflate undone, UTF-8
checked as it comes.

A whole uncompressed message in one frame (the common case) never gets
here: the core's parser hands it out directly. Everything else (fragments,
compressed messages, large payloads gathered apart) goes through an
:class:`Assembly`, one per message.
"""

from __future__ import annotations

import codecs

from .deflate import Inflater

__all__ = ["Assembly"]

_utf8_decoder = codecs.getincrementaldecoder("utf-8")

Buffer = bytes | bytearray | memoryview


class Assembly:
    """The message being received: its kind, sizes and pieces so far."""

    __slots__ = ("compressed", "decoder", "parts", "size", "text", "wire")

    def __init__(self, text: bool, compressed: bool) -> None:
        self.text = text
        self.compressed = compressed
        self.size = 0  # decoded bytes so far
        self.wire = 0  # payload bytes on the wire so far
        self.parts: list[bytes] | list[str] | None = None
        self.decoder: codecs.IncrementalDecoder | None = None

    def add(
        self, payload: Buffer, fin: bool, inflater: Inflater | None, max_size: int | None
    ) -> tuple[int, str | bytes | None]:
        """One frame's payload: (decoded bytes it added, the whole message
        once ``fin``, else ``None``).

        Raises :class:`~.deflate.TooBig` past ``max_size`` (decoded),
        :class:`zlib.error` for bad deflate data and
        :class:`UnicodeDecodeError` as soon as text cannot be UTF-8 (not at
        the end of the message).
        """
        self.wire += len(payload)
        data: Buffer = payload
        if self.compressed:
            assert inflater is not None
            room = None if max_size is None else max_size - self.size
            data = inflater.feed(payload, fin, room)
        size = len(data)
        self.size += size
        if fin and self.parts is None:
            # A whole message in one frame (compressed, or gathered apart).
            if self.text:
                return size, str(data, "utf-8")
            return size, data if type(data) is bytes else bytes(data)
        if self.text:
            decoder = self.decoder
            if decoder is None:
                decoder = self.decoder = _utf8_decoder()
                self.parts = []
            piece = decoder.decode(data, fin)
            if piece:
                self.parts.append(piece)  # type: ignore[union-attr, arg-type]
        else:
            if self.parts is None:
                self.parts = []
            self.parts.append(data if type(data) is bytes else bytes(data))  # type: ignore[arg-type]
        if not fin:
            return size, None
        parts = self.parts
        assert parts is not None
        if self.text:
            return size, "".join(parts)  # type: ignore[arg-type]
        return size, b"".join(parts)  # type: ignore[arg-type]
