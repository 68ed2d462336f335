"""The protocol core: the data phase of one WebSocket connection, Sans-I/O.

Theory of operation
-------------------
Bytes come in through :meth:`Core.receive_data` (copied into the core's own
buffer, so the caller may reuse its buffer at once) and
:meth:`Core.receive_eof`. :meth:`Core.parse` turns them into complete
messages (``str`` for text, ``bytes`` for binary) in :attr:`Core.messages`,
pong payloads in :attr:`Core.pongs`, and the replies the core decides on by
itself (a Pong for each Ping, the Close echo) in :meth:`Core.data_to_send`.
It never does more than it is allowed in one call: at most ``max_frames``
frames and about ``max_bytes`` bytes of input (so one connection's input
cannot hold the event loop for long, engine rule 4), and no new frame once
the messages it completed reach ``max_decoded`` bytes (so decoded data
waiting for the user stays bounded whatever the compression ratio, rule 3).
It returns ``True`` when it stopped for a budget: call it again, after
letting others run, before feeding more.

Sending: :meth:`Core.send_text`, :meth:`Core.send_binary`,
:meth:`Core.send_ping`, :meth:`Core.send_pong` and :meth:`Core.send_close`
*return* the bytes to write (one or two chunks per frame: a large payload is
not copied behind its header); what the core decides by itself waits in
:meth:`Core.data_to_send`. When :attr:`Core.eof_wanted` becomes true, the
transport should be ended once everything before it was written (a server
after the closing handshake, either side after failing the connection).

Limits: ``max_message_size`` counts decoded bytes (after decompression); a
frame may carry deflate's overhead, so the wire size of a compressed
message is checked against a slightly larger bound (:func:`wire_limit`).

Large frames: a payload of :data:`BIG_FRAME` bytes or more that is not yet
all there is read into one buffer of its exact size as it arrives (no
growing buffer, no joins), and unmasked with one call.

Holding and streaming (messages larger than memory): a message that grows
past ``max_message_size`` is not failed at once; the core stops there
(:attr:`Core.held`) and keeps it until the engine learns what the user's
next call wants: :meth:`Core.release` with ``stream=True`` streams it,
``False`` fails it with 1009, ``None`` drops it. :meth:`Core.stream_message`
asks for the message in progress (or the next) to be streamed. A streamed
message comes out as :class:`~.assembly.Chunk` objects as its frames arrive,
a frame's payload in pieces if it is not all there, bounded by
``max_streamed_size`` (``None``: any size) and, per step, by the decode
budget.

The lifecycle (:mod:`.lifecycle`) is the only record of how the connection
stands and, in the end, how it ended.
"""

from __future__ import annotations

from .assembly import DISCARD, STREAM, WHOLE, Assembly, Chunk
from .deflate import DeflateParams, Deflater, Inflater, TooBig
from .frames import (
    BINARY,
    CLOSE,
    CONT,
    PING,
    PONG,
    TEXT,
    close_body,
    frame,
)
from .lifecycle import Event, Lifecycle, Phase
from .receiver import BIG_FRAME, Receiver, wire_limit

__all__ = ["BIG_FRAME", "Core", "shared_frame", "wire_limit"]

_OPEN = Phase.OPEN
_LOCAL_CLOSING = Phase.LOCAL_CLOSING


def shared_frame(text: bool, data: bytes | bytearray | memoryview) -> tuple[bytes, ...]:
    """A message frame as every core whose :attr:`Core.shares_frames` builds
    it (``data``: the payload, UTF-8 for text): built once, it can be
    queued on all of them."""
    return frame(0x80 | (TEXT if text else BINARY), data, False)


class Core(Receiver):
    """One connection's protocol state after the opening handshake (the
    receiving half is :class:`~.receiver.Receiver`'s)."""

    __slots__ = (
        "_client",
        "_deflater",
        "_inflater",
        "_max_size",
        "_max_streamed",
        "_max_wire",
        "_out",
        "lifecycle",
    )

    def __init__(
        self,
        *,
        client: bool,
        max_message_size: int | None,
        max_streamed_size: int | None = None,
    ) -> None:
        self._client = client
        self._max_size = max_message_size
        self._max_wire = wire_limit(max_message_size)
        self._max_streamed = max_streamed_size
        self.lifecycle = Lifecycle()
        self._deflater: Deflater | None = None
        self._inflater: Inflater | None = None
        # Input not parsed yet; b"" (shared, immutable) while there is none,
        # so an idle connection holds no buffer.
        self._buf: bytes | bytearray | memoryview = b""
        self._borrowed = False  # _buf is the caller's (see receive_data)
        self._eof = False
        # A large payload being gathered: its buffer, bytes so far, the
        # frame's first byte and masking key.
        self._big: bytearray | None = None
        self._big_len = 0
        self._big_fill = 0
        self._big_head = 0
        self._big_key = b""
        # The message being assembled (fragmented, compressed or streamed),
        # and the mode the next one starts in (WHOLE, or STREAM/DISCARD as
        # the engine asked).
        self._message: Assembly | None = None
        self._next_mode = WHOLE
        # A frame delivered in pieces (streamed messages): its first byte,
        # masking key, bytes left and the key's offset.
        self._piece_head = 0
        self._piece_key = b""
        self._piece_left = 0
        self._piece_offset = 0
        #: True while parsing waits at a message over max_message_size.
        self.held = False
        self.messages: list[str | bytes | Chunk] = []
        self.pongs: list[bytes] = []
        self.pings_received = 0
        self._out: list[bytes] = []
        self.eof_wanted = False

    def open(
        self, deflate: DeflateParams | None, *, level: int = 6, mem_level: int = 5,
        min_size: int = 0,
    ) -> None:
        """The opening handshake succeeded with these deflate parameters;
        ``level``, ``mem_level`` and ``min_size`` tune our compressor (see
        :class:`~wsstream._protocol.deflate.Deflater`)."""
        if deflate is not None:
            self._deflater = Deflater(
                deflate.local_max_window_bits, deflate.local_no_context_takeover,
                level=level, mem_level=mem_level, min_size=min_size,
            )
            self._inflater = Inflater(
                deflate.remote_max_window_bits, deflate.remote_no_context_takeover
            )
        self.lifecycle.handle(Event.OPENED)

    # -- state -------------------------------------------------------------

    @property
    def phase(self) -> Phase:
        return self.lifecycle.phase

    @property
    def is_open(self) -> bool:
        return self.lifecycle.phase is _OPEN

    @property
    def compressing(self) -> bool:
        return self._deflater is not None

    @property
    def shares_frames(self) -> bool:
        """Whether this core's message frames depend on the message alone:
        a server (no mask, 5.1) without compression (no context), so that
        one :func:`shared_frame` may go to many connections."""
        return not self._client and self._deflater is None

    # -- output --------------------------------------------------------------

    def data_to_send(self) -> list[bytes]:
        """What the core decided to send by itself (pongs, the Close echo,
        a failure's Close), in order; empties the list."""
        out = self._out
        if out:
            self._out = []
        return out

    def take_messages(self) -> list[str | bytes | Chunk]:
        """The complete messages parsed since the last call, in order."""
        messages = self.messages
        if messages:
            self.messages = []
        return messages

    def take_pongs(self) -> list[bytes]:
        pongs = self.pongs
        if pongs:
            self.pongs = []
        return pongs

    def send_text(self, data: bytes | bytearray | memoryview) -> tuple[bytes, ...]:
        """A text message (``data`` is its UTF-8) as chunks to write."""
        return self.send_message(True, data)

    def send_binary(self, data: bytes | bytearray | memoryview) -> tuple[bytes, ...]:
        """A binary message as chunks to write."""
        return self.send_message(False, data)

    def send_message(self, text: bool, data: bytes | bytearray | memoryview) -> tuple[bytes, ...]:
        """A text (``data``: its UTF-8) or binary message as chunks to
        write: :meth:`send_text` and :meth:`send_binary` in one call, the
        engine's, for every message it sends."""
        if self.lifecycle.phase is not _OPEN:
            raise RuntimeError(f"cannot send a message: the connection is {self.phase.value}")
        deflater = self._deflater
        if deflater is not None and len(data) >= deflater.min_size:
            payload = deflater.compress(data)
            if payload is not None:
                return frame(0xC1 if text else 0xC2, payload, self._client)
        return frame(0x81 if text else 0x82, data, self._client)

    def send_part(
        self, text: bool, data: bytes | bytearray | memoryview, first: bool, fin: bool
    ) -> tuple[bytes, ...]:
        """One frame of a message sent in parts (first, continuations, the
        last with ``fin``); compressed as one deflate stream across them."""
        if self.lifecycle.phase is not _OPEN:
            raise RuntimeError(f"cannot send a message: the connection is {self.phase.value}")
        opcode = (TEXT if text else BINARY) if first else CONT
        deflater = self._deflater
        if deflater is not None:
            head = (0xC0 if first else 0x80) if fin else (0x40 if first else 0)
            return frame(head | opcode, deflater.compress_part(data, fin), self._client)
        return frame((0x80 if fin else 0) | opcode, data, self._client)

    def send_ping(self, payload: bytes) -> tuple[bytes, ...]:
        if self.lifecycle.phase is not _OPEN:
            raise RuntimeError(f"cannot send a ping: the connection is {self.phase.value}")
        return frame(0x80 | PING, payload, self._client)

    def send_pong(self, payload: bytes) -> tuple[bytes, ...]:
        if self.lifecycle.phase is not _OPEN:
            raise RuntimeError(f"cannot send a pong: the connection is {self.phase.value}")
        return frame(0x80 | PONG, payload, self._client)

    def send_close(self, code: int | None, reason: str = "") -> tuple[bytes, ...]:
        """Start the closing handshake (7.1.2): the Close frame to write, or
        nothing if a Close was already sent or received."""
        if self.lifecycle.phase is not _OPEN:
            return ()
        chunks = frame(0x80 | CLOSE, close_body(code, reason), self._client)
        self.lifecycle.handle(
            Event.SEND_CLOSE, code=1005 if code is None else code, reason=reason
        )
        return chunks

    def fail(self, code: int, reason: str = "") -> None:
        """Fail the connection (7.1.7): a Close with ``code`` if none was sent
        (none for 1006), no more parsing, and the transport ended after it."""
        lifecycle = self.lifecycle
        if lifecycle.phase in (Phase.CONNECTING, Phase.CLOSED, Phase.ENDED):
            return
        if lifecycle.close_sent is None and code != 1006:
            self._out.extend(frame(0x80 | CLOSE, close_body(code, reason), self._client))
        lifecycle.handle(Event.FAIL, code=code, reason=reason)
        self.eof_wanted = True
        self._drop_message()
        self._discard_input()

    # -- holding and streaming -------------------------------------------------

    def stream_message(self) -> None:
        """Stream the message in progress, or the next one to start: its
        data comes out as chunks (what was assembled so far first)."""
        if self.held:
            self.release(True)
            return
        message = self._message
        if message is None:
            self._next_mode = STREAM
            return
        if message.mode == WHOLE:
            try:
                first = message.to_stream(self._max_streamed)
            except TooBig:
                self.fail(1009, f"streamed message over {self._max_streamed} bytes")
                return
            if first is not None:
                self.messages.append(first)

    def drop_message(self) -> None:
        """The user left a streamed message before its end: drop the rest
        of it (the message in progress, or the one about to start)."""
        message = self._message
        if message is not None and message.mode == STREAM:
            message.to_discard()
        elif message is None and self._next_mode == STREAM:
            self._next_mode = DISCARD

    def release(self, stream: bool | None) -> None:
        """The user decided about the held message: stream it (``True``),
        fail it with 1009 (``False``), or drop it (``None``)."""
        if not self.held:
            return
        self.held = False
        message = self._message
        if stream is False:
            self.fail(1009, f"message over {self._max_size} bytes")
            return
        if message is None:
            # Held at its first frame's header: it starts in that mode.
            self._next_mode = STREAM if stream else DISCARD
            return
        if stream:
            self.stream_message()
        else:
            message.to_discard()

    # -- the engine's part of the lifecycle -------------------------------------

    def writes_settled(self, all_written: bool) -> None:
        """After the peer's Close came first: were all our messages written
        when it arrived? Decides whether the close is clean."""
        self.lifecycle.handle(Event.WRITES_CONFIRMED if all_written else Event.WRITES_DROPPED)
        if self._eof:
            self._end_of_input()

    def abort(self, error: object = None) -> None:
        """The engine stopped the connection (``error``: its reason, kept
        as the verdict's error if nothing was decided before)."""
        self._discard_input()
        self.lifecycle.handle(Event.ABORT, error=error)

    @property
    def allocated(self) -> int:
        """How many zlib contexts exist now (0-2), for memory tests."""
        return sum(
            1 for z in (self._deflater, self._inflater) if z is not None and z.allocated
        )
