"""The outgoing buffer: whole frames waiting to be written, as bytes.

It knows nothing of sockets; the transport writes what it gathers. Frames
wait in four queues, written in this order:

1. ``first``: what must go before anything else: the rest of a frame that a
   write took only part of (frames are never cut or reordered, engine rule
   7), and whatever came behind it in that write;
2. control frames the engine or the core queued (pongs, pings): they may go
   between any two frames (RFC 6455 5.4), so they do not wait behind
   megabytes of messages;
3. message frames, in the order ``send()`` queued them;
4. the Close frame, once every message before it is out (5.5.1: nothing
   after it, so it waits for the messages).

Byte counts: ``size`` (everything not written yet, for ``write_limit``),
``data_pending`` and ``data_inflight`` (message bytes not handed to the
transport, and those being written by an unfinished ``send_all``: how the
engine judges a close the peer started, see the lifecycle), and ``control``
(what the reader queued and the peer has not taken: the ping-flood cap).

Two ways to write: :meth:`Outbox.write_now`, synchronous and non-blocking,
for transports that can (a plain socket: any task may call it, no
cancellation can cut it), and :meth:`Outbox.flush`, the flusher's, which may
wait. A ``trio.abc.Stream`` is written in pieces of at most
:data:`MAX_INFLIGHT` bytes, so that what is in flight at any moment is
bounded and the rest can still be judged "unsent".
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Callable, Sequence

import trio

from .._transport import Transport
from .waiters import Waiters

__all__ = ["IOV_MAX", "MAX_INFLIGHT", "Outbox"]

#: What the outbox holds: frames' bytes, or what is left of them (views).
Chunk = bytes | memoryview
#: One frame: one chunk, or header and payload.
Frame = Sequence[Chunk]

#: The most buffers one ``writev`` takes (POSIX guarantees at least 16;
#: Linux takes 1,024).
IOV_MAX = max(16, os.sysconf("SC_IOV_MAX") if hasattr(os, "sysconf") else 16)

#: The largest piece handed to a stream's ``send_all`` at once.
MAX_INFLIGHT = 256 * 1024

_CONTROL, _DATA, _CLOSE = 0, 1, 2


def _length(frame: Frame) -> int:
    return len(frame[0]) if len(frame) == 1 else sum(map(len, frame))


def _advance(frame: Frame, n: int) -> list[Chunk]:
    """What is left of ``frame`` once its first ``n`` bytes are written."""
    rest = list(frame)
    while n:
        size = len(rest[0])
        if n < size:
            rest[0] = memoryview(rest[0])[n:]
            return rest
        n -= size
        del rest[0]
    return rest


class Outbox:
    """Frames to write, their byte counts, and who waits on them."""

    __slots__ = (
        "_close", "_control", "_data", "_first", "_flusher", "_inflight_done", "_senders",
        "broken", "control", "data_inflight", "data_pending", "end_stream", "inflight",
        "sender", "size", "stalled", "start_flusher", "started", "written",
    )

    def __init__(self) -> None:
        # Made by the first frame of their kind: an idle connection has none.
        self._first: list[tuple[Frame, int]] = []
        self._control: deque[Frame] | None = None
        self._data: deque[Frame] | None = None
        self._close: Frame | None = None
        self.size = 0
        self.data_pending = 0
        self.data_inflight = 0
        self.control = 0
        self.inflight = 0  # bytes handed to an unfinished send_all
        self.started = False  # first[0] was partly written
        self.end_stream = False  # end the transport once all is written
        self.broken = False  # a write failed: nothing more can be written
        self.stalled = False  # the flusher waits for the socket to take more
        self.written = 0
        self.sender: object = None  # the task that queued the last message
        self._flusher = Waiters()
        self._senders = Waiters()
        self._inflight_done = Waiters()
        # Set by the engine while the flusher could be started but is not
        # yet: the first frames start it (an idle connection has none, and
        # saves a task). Called once, then cleared.
        self.start_flusher: Callable[[], None] | None = None

    def __bool__(self) -> bool:
        """Whether anything waits to be handed to the transport."""
        return bool(self._first or self._control or self._data or self._close)

    # -- queueing --------------------------------------------------------------

    def queue_message(self, frame: Frame) -> None:
        """One message frame from ``send()`` (the caller wakes the flusher)."""
        data = self._data
        if data is None:
            data = self._data = deque()
        data.append(frame)
        n = len(frame[0]) if len(frame) == 1 else sum(map(len, frame))
        self.size += n
        self.data_pending += n

    def queue_control(self, chunks: list[bytes]) -> None:
        """Frames the core or the engine decided on (each one chunk): pongs,
        pings, and Close frames, which wait behind the messages."""
        for chunk in chunks:
            n = len(chunk)
            if chunk[0] & 0x0F == 0x8:
                self._close = (chunk,)
            else:
                control = self._control
                if control is None:
                    control = self._control = deque()
                control.append((chunk,))
                self.control += n
            self.size += n
        self.wake_flusher()

    def drop_unstarted_messages(self) -> None:
        """Forget every message frame no byte of which was written: the peer
        closed and will read none of them. A frame partly written is kept
        (the peer's parser would take what follows for its payload)."""
        kept: list[tuple[Frame, int]] = []
        for i, (frame, kind) in enumerate(self._first):
            if kind == _DATA and not (i == 0 and self.started):
                n = _length(frame)
                self.size -= n
                self.data_pending -= n
            else:
                kept.append((frame, kind))
        self._first = kept
        if self._data:
            n = sum(map(_length, self._data))
            self.size -= n
            self.data_pending -= n
        self._data = None
        if self._senders:
            self._senders.unpark_all()

    def pending_chunks(self) -> list[Chunk]:
        """Everything queued, in write order (for a last write at the end)."""
        frames = list(self._first)
        frames += [(f, _CONTROL) for f in self._control or ()]
        frames += [(f, _DATA) for f in self._data or ()]
        if self._close is not None:
            frames.append((self._close, _CLOSE))
        return [chunk for frame, _ in frames for chunk in frame]

    def clear(self) -> None:
        self._first = []
        self._control = self._data = None
        self._close = None
        self.size = self.data_pending = self.control = 0

    # -- writing ---------------------------------------------------------------

    def _frames(self) -> list[tuple[Frame, int]]:
        """Frames in write order, up to what one ``writev`` takes."""
        frames = list(self._first)
        budget = IOV_MAX
        for queue, kind in ((self._control, _CONTROL), (self._data, _DATA)):
            if queue:
                for frame in queue:
                    if len(frames) >= budget // 2:
                        return frames
                    frames.append((frame, kind))
        if self._close is not None and not self._data:
            frames.append((self._close, _CLOSE))
        return frames

    def _detach(self, frames: list[tuple[Frame, int]]) -> None:
        """Take ``frames`` (the head of the queues, from :meth:`_frames`)
        off their queues; the caller puts back what it does not write."""
        first_count = len(self._first)
        self._first = []
        for _, kind in frames[first_count:]:
            if kind == _CONTROL:
                self._control.popleft()  # type: ignore[union-attr]
            elif kind == _DATA:
                self._data.popleft()  # type: ignore[union-attr]
            else:
                self._close = None
        # Empty deques go: 0.75 KiB each on every connection that ever sent.
        if not self._control:
            self._control = None
        if not self._data:
            self._data = None

    def _account(self, kind: int, n: int) -> None:
        if kind == _DATA:
            self.data_pending -= n
        elif kind == _CONTROL:
            self.control -= n

    def _consume(self, frames: list[tuple[Frame, int]], n: int) -> None:
        """``n`` bytes of ``frames`` were written: what is left of them goes
        first in line, a frame cut short at its head."""
        self._detach(frames)
        rest: list[tuple[Frame, int]] = []
        started = False
        written = n
        for frame, kind in frames:
            size = _length(frame)
            taken = min(size, n)
            n -= taken
            self._account(kind, taken)
            if taken < size:
                if taken:
                    started = True  # the first frame not done: rest[0]
                    frame = _advance(frame, taken)
                rest.append((frame, kind))
        self._first = rest
        self.started = started
        self._written(written)

    def write_now(self, transport: Transport) -> bool:
        """Hand the transport what it takes without waiting; returns whether
        everything was taken. Only for transports that can (``direct``).

        Synchronous: no cancellation can cut a frame. Errors are left for
        the flusher's next write to meet and report: a caller that gets
        ``False`` makes sure the flusher runs.
        """
        if self.broken:
            return False
        data = self._data
        if (
            data is not None and not self._first and self._control is None
            and self._close is None and len(data) <= IOV_MAX // 2
        ):
            # The common case: only message frames, all in one writev.
            chunks = [chunk for frame in data for chunk in frame]
            total = self.size  # nothing else is queued
            try:
                n = transport.write_some(chunks)
            except OSError:
                self.broken = True
                return False
            if n == total:
                self._data = None
                self.data_pending = 0
                self._written(n)
                return True
            if n:
                self._consume([(frame, _DATA) for frame in data], n)
            return False
        while self:
            frames = self._frames()
            chunks = [chunk for frame, _ in frames for chunk in frame]
            try:
                n = transport.write_some(chunks)
            except OSError:
                # Broken: the flusher meets it and ends the connection.
                self.broken = True
                return False
            if n:
                self._consume(frames, n)
            if n < sum(map(len, chunks)):
                return False
        return True

    async def flush(self, transport: Transport) -> None:
        """Write everything queued, waiting for the transport as needed; the
        flusher's step. Raises what the transport raises (``broken`` is
        then set and nothing more is written)."""
        try:
            if transport.direct:
                while not self.write_now(transport):
                    if self.broken:
                        raise trio.BrokenResourceError("the connection broke while writing")
                    self.stalled = True
                    try:
                        await transport.wait_writable()
                    finally:
                        self.stalled = False
                return
            while self:
                chunks, data = self._take(MAX_INFLIGHT)
                n = sum(map(len, chunks))
                self.inflight = n
                self.data_inflight = data
                try:
                    await transport.write(chunks)
                finally:
                    self.inflight = self.data_inflight = 0
                    if self._inflight_done:
                        self._inflight_done.unpark_all()
                self._written(n)
        except BaseException:
            self.broken = True
            raise

    def _take(self, most: int) -> tuple[list[Chunk], int]:
        """Take about ``most`` bytes of frames off the queues for one write:
        (the chunks, how many of their bytes are message data). A frame over
        the rest of the budget is cut; its tail goes first in line."""
        frames = self._frames()
        self._detach(frames)
        chunks: list[Chunk] = []
        rest: list[tuple[Frame, int]] = []
        total = data = 0
        started = False
        for frame, kind in frames:
            if total >= most:
                rest.append((frame, kind))
                continue
            size = _length(frame)
            take = min(size, most - total)
            if take < size:
                left = take
                for chunk in frame:
                    if not left:
                        break
                    piece = chunk if len(chunk) <= left else memoryview(chunk)[:left]
                    chunks.append(piece)
                    left -= len(piece)
                rest.append((_advance(frame, take), kind))
                started = True
            else:
                chunks.extend(frame)
            self._account(kind, take)
            total += take
            if kind == _DATA:
                data += take
        self._first = rest
        self.started = started
        return chunks, data

    def _written(self, n: int) -> None:
        self.size -= n
        self.written += n
        if self._senders:
            self._senders.unpark_all()

    # -- waiting ---------------------------------------------------------------

    async def wait_for_frames(self) -> None:
        """The flusher's wait for something to write (or to stop)."""
        await self._flusher.park()

    def wake_flusher(self) -> None:
        """Wake the flusher, or start it if the engine left that for now."""
        if self._flusher:
            self._flusher.unpark_all()
        elif self.start_flusher is not None:
            start, self.start_flusher = self.start_flusher, None
            start()

    async def wait_for_writes(self) -> None:
        """A sender's wait until a write finished or :meth:`wake_senders`
        was called (the connection ended); the caller checks again."""
        await self._senders.park()

    def wake_senders(self) -> None:
        self._senders.unpark_all()

    async def wait_inflight(self) -> None:
        """Wait until the write under way finished (or failed)."""
        while self.inflight:
            await self._inflight_done.park()

    def wake_all(self) -> None:
        self._flusher.unpark_all()
        self._senders.unpark_all()
        self._inflight_done.unpark_all()
