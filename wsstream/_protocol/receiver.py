"""The receiving half of the protocol core: bytes in, messages out.

A mixin of :class:`~wsstream._protocol.core.Core` (one object per
connection); the core's module docstring is the theory of operation: the
parse budgets, large frames, holding and streaming.
"""

from __future__ import annotations

import zlib
from typing import TYPE_CHECKING

from .assembly import DISCARD, STREAM, WHOLE, Assembly, Chunk
from .buffers import spare as _spare
from .deflate import Inflater, TooBig
from .frames import (
    BINARY,
    CLOSE,
    CONT,
    MAX_CONTROL_PAYLOAD,
    PING,
    PONG,
    TEXT,
    apply_mask,
    close_body,
    frame,
    parse_close,
)
from .lifecycle import Event, Lifecycle, Phase

__all__ = ["BIG_FRAME", "Receiver", "wire_limit"]

#: Payloads at least this long that are not complete yet are gathered in a
#: buffer of their own size (see the core's docstring).
BIG_FRAME = 16 * 1024

#: The smallest piece of a streamed frame handed out, whatever the budget.
_MIN_PIECE = 4096

#: _check's answer for a message to hold (see the core's docstring).
_HOLD = (1009, "hold")

_OPEN = Phase.OPEN
_LOCAL_CLOSING = Phase.LOCAL_CLOSING


def wire_limit(max_message_size: int | None) -> int | None:
    """The most bytes a compressed message may take on the wire.

    Deflate can make incompressible data larger: zlib's stored blocks cost
    5 bytes per block of ``2 ** (memLevel + 6)`` bytes (3.9 % at memLevel
    1, 0.2 % at 8), plus a few bytes per flush. 1/16 more and 1 KiB leaves
    room for any zlib encoder while still refusing a frame that no message
    within the limit could need.
    """
    if max_message_size is None:
        return None
    return max_message_size + (max_message_size >> 4) + 1024



class Receiver:
    """receive_data(), receive_eof(), parse() and what they need."""

    __slots__ = (
        "_big",
        "_big_fill",
        "_big_head",
        "_big_key",
        "_big_len",
        "_borrowed",
        "_buf",
        "_eof",
        "_message",
        "_next_mode",
        "_piece_head",
        "_piece_key",
        "_piece_left",
        "_piece_offset",
        "eof_wanted",
        "held",
        "messages",
        "pings_received",
        "pongs",
    )

    # The Core's, used here.
    _client: bool
    _inflater: Inflater | None
    _max_size: int | None
    _max_streamed: int | None
    _max_wire: int | None
    _out: list[bytes]
    lifecycle: Lifecycle
    # Set by Core.__init__.
    _big: bytearray | None
    _big_len: int
    _big_fill: int
    _big_head: int
    _big_key: bytes
    _buf: bytes | bytearray | memoryview
    _borrowed: bool
    _eof: bool
    _message: Assembly | None
    _next_mode: int
    _piece_head: int
    _piece_key: bytes
    _piece_left: int
    _piece_offset: int
    held: bool
    messages: list[str | bytes | Chunk]
    pongs: list[bytes]
    pings_received: int

    if TYPE_CHECKING:
        def fail(self, code: int, reason: str = "") -> None: ...

    @property
    def accepts_input(self) -> bool:
        """Whether received bytes still matter: not once the peer's Close
        is in or the connection failed (later input is ignored)."""
        phase = self.lifecycle.phase
        return phase is _OPEN or phase is _LOCAL_CLOSING

    @property
    def buffered(self) -> int:
        """Bytes received and not parsed yet."""
        return len(self._buf) + self._big_fill

    # -- input ---------------------------------------------------------------

    def receive_data(self, data: bytes | bytearray | memoryview) -> None:
        """Take bytes from the network.

        ``data`` is borrowed until the next :meth:`parse` (or
        :meth:`own_input`), which copies whatever it leaves unparsed: the
        caller must not change ``data`` before calling one of them. So a
        read that is parsed at once is never copied.
        """
        if not data or not self.accepts_input:
            return
        big = self._big
        if big is not None:
            # Straight into the large payload's own buffer.
            view = memoryview(data)
            fill = self._big_fill
            take = min(self._big_len - fill, len(view))
            big[fill : fill + take] = view[:take]
            self._big_fill = fill + take
            if take == len(view):
                return
            data = view[take:]
        if not self._buf:
            self._buf = data
            self._borrowed = True
            return
        if self._borrowed:
            self._buf = bytearray(self._buf)
            self._borrowed = False
        self._buf += data  # type: ignore[operator]

    def input_buffer(self, min_size: int) -> memoryview | None:
        """Where the next read may go directly: the rest of a large payload
        in progress, when it is at least ``min_size`` bytes and no other
        input waits; else None. Read into it, release it, then call
        :meth:`input_filled` with the count. It saves copying the payload
        from a read buffer (a tenth of the CPU of a 1 MiB echo)."""
        big = self._big
        if big is None or self._buf or not self.accepts_input:
            return None
        fill, length = self._big_fill, self._big_len
        if length - fill < min_size:
            return None
        with memoryview(big) as whole:
            return whole[fill:length]

    def input_filled(self, size: int) -> None:
        """``size`` bytes were read into :meth:`input_buffer`'s view."""
        assert self._big is not None and self._big_fill + size <= self._big_len
        self._big_fill += size

    def own_input(self) -> None:
        """Copy borrowed input (see :meth:`receive_data`) before the caller
        waits without parsing it."""
        if self._borrowed:
            self._buf = bytearray(self._buf)
            self._borrowed = False

    def receive_eof(self) -> None:
        """The transport ended: no more bytes will come."""
        self._eof = True

    def parse(
        self,
        max_frames: int = 64,
        max_bytes: int = 256 * 1024,
        max_decoded: int | None = None,
    ) -> bool:
        """Parse what was received, within the budgets (module docstring).

        Returns ``True`` if it stopped for a budget with input left to
        parse, ``False`` once it needs more bytes, is held, or will parse no
        more.
        """
        if self.held or not self.accepts_input:
            return self._end_of_input() if not self.held else False
        message = self._message
        decoded = 0
        if message is not None and message.compressed and self._inflater is not None and (
            self._inflater.pending
        ):
            # Decompressed data a budget held back, before any new input.
            decoded = self._add(None, False, max_decoded)
            if self.held or not self.accepts_input:
                return False
            if self._inflater.pending:
                return True
        if self._big is not None:
            if self._big_fill < self._big_len:
                return self._end_of_input()
            self._finish_big()
            if self.held or not self.accepts_input:
                return False
        buf = self._buf
        if not buf:
            return self._end_of_input()
        pos = 0
        end = len(buf)
        frames = 0
        stopped = False
        payload: bytes | memoryview = b""
        # For the common frame's checks, inline (see below).
        mask_bit = 0 if self._client else 0x80
        max_size = self._max_size
        append = self.messages.append
        with memoryview(buf) as view:
            while True:
                if self._piece_left:
                    # The rest of a frame delivered in pieces.
                    n = min(self._piece_left, end - pos)
                    if max_decoded is not None:
                        n = min(n, max(max_decoded - decoded, _MIN_PIECE))
                    if not n:
                        break
                    pos, added = self._piece(view, pos, n)
                    decoded += added
                    if not self.accepts_input or self.held or self._stalled():
                        stopped = self.accepts_input and not self.held
                        break
                    if self._piece_left and pos < end:
                        stopped = True  # the budget, not the input, ran out
                        break
                    continue
                if end - pos < 2:
                    break
                if frames >= max_frames or pos >= max_bytes:
                    stopped = True
                    break
                head = buf[pos]
                if max_decoded is not None and decoded >= max_decoded and head & 0x0F < CLOSE:
                    # No more message data now; control frames right behind
                    # (a ping) are still answered.
                    stopped = True
                    break
                second = buf[pos + 1]
                length = second & 0x7F
                start = pos + 2
                if length == 126:
                    if end - pos < 4:
                        break
                    length = (buf[pos + 2] << 8) | buf[pos + 3]
                    start = pos + 4
                elif length == 127:
                    if end - pos < 10:
                        break
                    length = int.from_bytes(view[pos + 2 : pos + 10], "big")
                    start = pos + 10
                masked = second & 0x80
                if masked:
                    start += 4
                if start > end:
                    break
                # The common frame: a whole uncompressed text or binary
                # message, masked as it must be, within the size limit, no
                # message in progress. It passes every check of _check,
                # which the others go through (5.2, 5.5) before their payload.
                simple = (
                    (head == 0x82 or head == 0x81)
                    and masked == mask_bit
                    and (max_size is None or length <= max_size)
                    and self._message is None
                    and self._next_mode == WHOLE
                )
                if not simple:
                    problem = self._check(head, length, masked)
                    if problem:
                        if problem is _HOLD:
                            self.held = True
                        else:
                            self.fail(*problem)
                        break
                stop = start + length
                if stop > end:
                    if head & 0x0F < CLOSE and self._mode_of(head) != WHOLE:
                        # A streamed (or dropped) message: its frame in pieces.
                        self._begin(head)
                        self._piece_head = head
                        self._piece_key = bytes(view[start - 4 : start]) if masked else b""
                        self._piece_left = length
                        self._piece_offset = 0
                        pos = start
                        frames += 1
                        continue
                    if length >= BIG_FRAME:
                        self._start_big(head, view[start:end], length,
                                        bytes(view[start - 4 : start]) if masked else b"")
                        pos = end
                    break
                if masked:
                    payload = apply_mask(
                        view[start:stop], bytes(view[start - 4 : start])
                    )
                else:
                    payload = view[start:stop]
                pos = stop
                frames += 1
                if simple:
                    if head == 0x81:
                        try:
                            append(str(payload, "utf-8"))
                        except UnicodeDecodeError as exc:
                            self.fail(1007, f"invalid UTF-8: {exc.reason}")
                            break
                    else:
                        append(payload if type(payload) is bytes else bytes(payload))
                    decoded += length
                else:
                    decoded += self._frame(head, payload, max_decoded)
                    if not self.accepts_input or self.held:
                        break
                    if self._stalled():
                        stopped = True
                        break
            # No view of the buffer may outlive the loop: it could not be
            # resized (BufferError) while one exists.
            payload = b""
        if self._buf is not buf:
            pass  # failed or closed: _discard_input replaced it
        elif pos >= end:
            self._buf = b""
        elif self._borrowed:
            self._buf = bytearray(buf[pos:])  # the caller's buffer: copy the rest
        elif pos:
            del buf[:pos]  # type: ignore[union-attr]  # owned: a bytearray
        self._borrowed = False
        if stopped:
            return True
        if self.held:
            return False
        if self._big is not None and self._big_fill == self._big_len:
            return True  # a large payload completed by this very input
        return self._end_of_input() if self._eof else False

    def _stalled(self) -> bool:
        """Whether decompressed data waits for the next step (a budget)."""
        message = self._message
        inflater = self._inflater
        return (
            message is not None and message.compressed and inflater is not None
            and inflater.pending
        )

    def _piece(self, view: memoryview, pos: int, n: int) -> tuple[int, int]:
        """``n`` more bytes of a frame delivered in pieces."""
        key = self._piece_key
        data: bytes | memoryview = view[pos : pos + n]
        if key:
            offset = self._piece_offset & 3
            data = apply_mask(data, key[offset:] + key[:offset])
        self._piece_offset += n
        self._piece_left -= n
        head = self._piece_head
        fin = bool(head & 0x80) and not self._piece_left
        return pos + n, self._add(data, fin, None)

    def _end_of_input(self) -> bool:
        if self._eof and self.lifecycle.phase is not Phase.REMOTE_CLOSING:
            self._discard_input()
            self.lifecycle.handle(Event.TRANSPORT_ENDED)
        return False

    def _check(
        self, head: int, length: int, masked: int
    ) -> tuple[int, str] | None:
        """Why a frame header is not acceptable here, as (code, reason)."""
        opcode = head & 0x0F
        if bool(masked) == self._client:
            # 5.1: clients mask every frame, servers none.
            return 1002, ("a masked frame from the server" if self._client
                          else "an unmasked frame from the client")
        if head & 0x30 or (head & 0x40 and (
            self._inflater is None or opcode == CONT or opcode >= CLOSE
        )):
            return 1002, "reserved bits set"  # 5.2; RSV1 is deflate's (7692 6)
        if opcode >= CLOSE:
            if opcode > PONG:
                return 1002, f"reserved opcode {opcode}"
            if not head & 0x80:
                return 1002, "a fragmented control frame"
            if length > MAX_CONTROL_PAYLOAD:
                return 1002, "a control frame over 125 bytes"
            return None
        if opcode > BINARY:
            return 1002, f"reserved opcode {opcode}"
        if length >> 63:
            return 1002, "a frame length with the most significant bit set"
        message = self._message
        if opcode == CONT:
            if message is None:
                return 1002, "a continuation frame outside a message"
            compressed = message.compressed
            mode = message.mode
        else:
            if message is not None:
                return 1002, "a new message before the previous one ended"
            compressed = bool(head & 0x40)
            mode = self._next_mode
        if mode == DISCARD:
            return None
        so_far = 0 if message is None else (message.wire if compressed else message.size)
        if mode == STREAM:
            limit = self._max_streamed
            if compressed:
                limit = wire_limit(limit)
            if limit is not None and so_far + length > limit:
                return 1009, f"streamed message over {self._max_streamed} bytes"
            return None
        limit = self._max_wire if compressed else self._max_size
        if limit is not None and so_far + length > limit:
            # Over the limit for whole messages: wait for the engine to say
            # whether the user streams it (see the module docstring).
            return _HOLD
        return None

    def _mode_of(self, head: int) -> int:
        """The mode of the message a data frame belongs to."""
        message = self._message
        if head & 0x0F == CONT and message is not None:
            return message.mode
        return self._next_mode

    def _start_big(self, head: int, part: memoryview, length: int, key: bytes) -> None:
        big = _spare.take(length)
        big[: len(part)] = part
        self._big = big
        self._big_len = length
        self._big_fill = len(part)
        self._big_head = head
        self._big_key = key

    def _finish_big(self) -> None:
        big = self._big
        assert big is not None
        self._big = None
        self._big_fill = 0
        key = self._big_key
        self._big_key = b""
        with memoryview(big) as whole, whole[: self._big_len] as view:
            # Every use of the payload copies it (unmasking, bytes(), str(),
            # decompression): the buffer can go back to the spares after.
            self._frame(self._big_head, apply_mask(view, key) if key else view)
        _spare.give(big)

    def _frame(
        self, head: int, payload: bytes | bytearray | memoryview, budget: int | None = None
    ) -> int:
        """Everything but a whole uncompressed message; returns the decoded
        bytes it added to messages (for the decode budget)."""
        opcode = head & 0x0F
        if opcode >= CLOSE:
            self._control(opcode, payload)
            return 0
        self._begin(head)
        return self._add(payload, bool(head & 0x80), budget)

    def _begin(self, head: int) -> None:
        """A data frame arrives: a new message starts unless it continues one."""
        if head & 0x0F != CONT:
            mode = self._next_mode
            self._next_mode = WHOLE
            limit = (
                self._max_size if mode == WHOLE else self._max_streamed if mode == STREAM else None
            )
            self._message = Assembly(head & 0x0F == TEXT, bool(head & 0x40), mode, limit)

    def _add(
        self, payload: bytes | bytearray | memoryview | None, fin: bool, budget: int | None
    ) -> int:
        """Add a frame's payload to the message in progress, or (``payload``
        None) decompress more of what a budget stopped; returns the decoded
        size. One place maps the assembly's errors to close codes."""
        message = self._message
        assert message is not None
        try:
            if payload is None:
                assert self._inflater is not None
                size, out = message.drain(self._inflater, budget)
            else:
                size, out = message.add(payload, fin, self._inflater, budget)
        except TooBig:
            self.fail(1009, f"message over {message.limit} bytes")
            return 0
        except zlib.error:
            self.fail(1007, "invalid compressed data")
            return 0
        except UnicodeDecodeError as exc:
            self.fail(1007, f"invalid UTF-8: {exc.reason}")
            return 0
        self._deliver(message, out)
        return size

    def _deliver(self, message: Assembly, out: str | bytes | Chunk | None) -> None:
        if out is not None:
            self.messages.append(out)
        if message.done:
            self._message = None
        elif message.over:
            self.held = True  # whole, and past the limit: see release()

    def _control(self, opcode: int, payload: bytes | bytearray | memoryview) -> None:
        if opcode == PING:
            self.pings_received += 1
            if self.lifecycle.phase is _OPEN:
                self._out.extend(frame(0x80 | PONG, payload, self._client))
        elif opcode == PONG:
            self.pongs.append(bytes(payload))
        else:
            try:
                code, reason = parse_close(bytes(payload))
            except UnicodeDecodeError as exc:
                self.fail(1007, f"invalid UTF-8 in a Close reason: {exc.reason}")
                return
            except ValueError as exc:
                self.fail(1002, str(exc))
                return
            self._close_received(code, reason)

    def _close_received(self, code: int, reason: str) -> None:
        lifecycle = self.lifecycle
        was = lifecycle.phase
        # A message cut by the Close is dropped (control frames may come
        # between fragments, 5.4; the message will never end).
        self._drop_message()
        lifecycle.handle(Event.RECV_CLOSE, code=code, reason=reason)
        if was is _OPEN:
            # The echo (5.5.1), with the code received, as is customary.
            echo = None if code == 1005 else code
            self._out.extend(frame(0x80 | CLOSE, close_body(echo, reason), self._client))
            lifecycle.handle(Event.SEND_CLOSE, code=code, reason=reason)
        if not self._client:
            # 7.1.1: the server closes the TCP connection first.
            self.eof_wanted = True
        self._discard_input()

    def _drop_message(self) -> None:
        self._message = None

    def _discard_input(self) -> None:
        self._buf = b""
        self._borrowed = False
        if self._big is not None:
            _spare.give(self._big)
            self._big = None
        self._big_fill = 0

