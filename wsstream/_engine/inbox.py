"""The readable's buffer: received messages waiting for the user.

It bounds what waits (engine rule 3): the reader stops reading the stream
while the buffer holds ``read_limit`` or more and resumes below half of it.
Each message counts its payload plus :data:`MESSAGE_OVERHEAD`, so that a
flood of empty messages is bounded too. Once nobody will read (the readable
closed, the ``async with`` left) messages are dropped on arrival; once this
side is closing, reading never pauses and what arrives over the limit is
dropped, so that the peer's Close is never stuck behind our backpressure.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Awaitable, Callable
from typing import Protocol

import trio
from trio.lowlevel import cancel_shielded_checkpoint, checkpoint_if_cancelled

from .._protocol.assembly import Chunk
from .waiters import Waiters

__all__ = [
    "DIRECT_READ_MIN",
    "HELD",
    "MESSAGE_OVERHEAD",
    "MIN_RECEIVE",
    "PARSE_BYTES",
    "PARSE_FRAMES",
    "RECEIVE_SIZE",
    "YIELD_MASK",
    "Inbox",
    "StreamControl",
]

#: The parse budget per step (engine rule 4). 64 empty frames take about
#: 30 us to parse, 256 KiB of payload about as long to copy: each step stays
#: well under a millisecond, and the yield between steps costs about 1 us.
PARSE_FRAMES = 64
PARSE_BYTES = 256 * 1024

#: On a plain socket, the rest of a large payload of at least this many bytes
#: is read straight into the buffer that holds it (Core.input_buffer), not
#: through the read buffer and a copy.
DIRECT_READ_MIN = 64 * 1024

#: Bytes asked of the stream per read. 64 KiB is trio's own default and stays
#: below glibc's mmap threshold, so each read is a cheap allocation.
RECEIVE_SIZE = 65536

#: The smallest read, when the buffer is close to ``read_limit``.
MIN_RECEIVE = 4096

#: What a buffered message counts for beyond its payload, towards
#: read_limit: about what Python spends on the object and its slot, so that a
#: flood of empty or tiny messages is bounded in memory too.
MESSAGE_OVERHEAD = 64

#: send() and receive() that need not wait yield to the scheduler only when
#: their own count reaches a multiple of 16: a task switch per message was
#: most of the cost of a small message (trio's docs allow a checkpoint that
#: does not always switch; each call still checks for cancellation).
YIELD_MASK = 15


class _Held:
    """Where a message over ``max_message_size`` waits for the user's next
    call to decide (see the protocol core's docstring)."""

    __slots__ = ()

    def __len__(self) -> int:
        return 0

    def __repr__(self) -> str:
        return "HELD"


#: The marker of a held message in the inbox.
HELD = _Held()

#: What the inbox holds: whole messages, chunks of a streamed one, HELD.
Item = str | bytes | Chunk | _Held


class StreamControl(Protocol):
    """What the inbox asks of the engine for streamed and held messages."""

    def release_held(self, stream: bool | None) -> None: ...

    def stream_next(self) -> None: ...

    def abandon_stream(self) -> None: ...


class Inbox:
    """Messages in arrival order, their cost, and who waits on them.

    Besides whole messages it may hold the chunks of a streamed message
    (:class:`~wsstream._protocol.assembly.Chunk`) and the :data:`HELD`
    marker; ``_special`` counts those, so that ``receive()`` of whole
    messages pays one test for them.
    """

    __slots__ = (
        "_messages", "_readers", "_resume", "_resume_at", "_special", "before_wait", "closing",
        "control", "discard", "discarded", "end", "limit", "pause_epoch", "paused", "read_here",
        "size", "streaming", "taken",
    )

    def __init__(self, read_limit: int) -> None:
        # Made with the first message: an idle connection never needs one
        # (an empty deque is about 0.75 KiB).
        self._messages: deque[Item] | None = None
        self._special = 0  # chunks and HELD markers in _messages
        self.streaming = False  # a streamed message is being read
        self.control: StreamControl | None = None  # set by the engine
        self.size = 0  # counted against the limit: payload + overhead
        self.limit = read_limit
        self._resume_at = read_limit // 2
        self.paused = False
        self.pause_epoch = 0  # counts pauses, for keepalive's fairness rule
        self.discard = False  # nobody will read: drop on arrival
        self.closing = False  # this side sent its Close: never pause again
        self.discarded = 0
        self.taken = 0
        self._readers = Waiters()
        self._resume = Waiters()
        # What receive() raises once the buffer is empty: EndOfChannel (clean
        # end), the connection's error, or ClosedResourceError (we stopped
        # reading). None while messages may still come.
        self.end: BaseException | None = None
        # Called by receive() before it waits: the engine writes what the
        # user sent meanwhile (see Outbox.write_own).
        self.before_wait: Callable[[], None] | None = None
        # Set while the engine's reader stands aside (handoff.py): receive()
        # with nothing buffered reads the socket itself through it rather
        # than wait to be woken. False: it cannot (another task reads).
        self.read_here: Callable[[], Awaitable[bool]] | None = None

    def __bool__(self) -> bool:
        return bool(self._messages)

    # -- the reader's side -------------------------------------------------

    def put(self, messages: list[str | bytes | Chunk]) -> bool:
        """Add what the core assembled, or drop it (see the module docstring);
        returns whether a task waiting in receive() was woken."""
        if self.discard:
            self.discarded += len(messages)
            return False
        queue = self._messages
        if queue is None:
            queue = self._messages = deque()
        n = self.size
        limit = self.limit if self.closing else None
        for message in messages:
            if type(message) is Chunk:
                self._special += 1
            if limit is not None and n >= limit:
                self.discarded += 1
            else:
                n += len(message) + MESSAGE_OVERHEAD
                queue.append(message)
        self.size = n
        if self._readers:
            self._readers.unpark_all()
            return True
        return False

    def put_held(self) -> None:
        """The core holds a message over max_message_size: mark its place."""
        queue = self._messages
        if queue is None:
            queue = self._messages = deque()
        queue.append(HELD)
        self._special += 1
        if self._readers:
            self._readers.unpark_all()

    async def wait_decision(self) -> None:
        """The reader's wait while the core holds a message (woken by the
        user's decision, or by the end)."""
        await self._resume.park()

    @property
    def full(self) -> bool:
        """Whether :meth:`wait_for_room` would wait."""
        return self.size >= self.limit and not (self.discard or self.closing)

    async def wait_for_room(self) -> None:
        """If the buffer is full, wait until the user took it below half."""
        if self.size >= self.limit and not (self.discard or self.closing):
            self.paused = True
            self.pause_epoch += 1
            while self.size > self._resume_at and not (self.discard or self.closing):
                await self._resume.park()
            self.paused = False

    def read_size(self, most: int = RECEIVE_SIZE) -> int:
        """How much to ask of the stream, at most ``most``: less near the
        limit, since what one read brings in lands here whole (this keeps the
        buffer within read_limit plus MIN_RECEIVE for uncompressed data)."""
        room = self.limit - self.size
        return most if room >= most else max(room, MIN_RECEIVE)

    def room(self) -> int | None:
        """How many decoded bytes the core may add before the reader stops
        (the decode budget); ``None`` while nothing pauses reading."""
        if self.discard or self.closing:
            return None
        return max(self.limit - self.size, 1)

    def stop_pausing(self) -> None:
        """This side is closing: read on whatever the user does."""
        self.closing = True
        self._resume.unpark_all()

    def finish(self, end: BaseException, *, replace_clean_end: bool = True) -> None:
        """No more messages will come: ``receive()`` raises ``end`` once empty.

        An error replaces a clean end already set (unless told not to); a
        ClosedResourceError set by :meth:`close` is kept.
        """
        if self.end is None or (replace_clean_end and isinstance(self.end, trio.EndOfChannel)):
            self.end = end
        self._readers.unpark_all()

    def clear(self, *, discard: bool) -> None:
        """Drop every buffered message; with ``discard``, every future one too."""
        if discard:
            self.discard = True
        if self._messages is not None:
            self.discarded += len(self._messages)
            self._messages = None
        self.size = 0
        self._resume.unpark_all()

    def close(self) -> None:
        """The user stopped reading: drop everything, receive() raises
        ClosedResourceError from now on."""
        self.clear(discard=True)
        self.end = trio.ClosedResourceError("the readable was closed")
        self._readers.unpark_all()

    def wake_all(self) -> None:
        self._readers.unpark_all()
        self._resume.unpark_all()

    def wake_reader(self) -> None:
        """Wake the engine's reader if it waits (for room or a decision)."""
        self._resume.unpark_all()

    # -- the user's side ---------------------------------------------------

    def receive_nowait(self) -> str | bytes:
        """Take the next message if one is buffered; see
        :meth:`Readable.receive_nowait`."""
        if self.streaming:
            raise trio.BusyResourceError("a streamed message is being read")
        while True:
            messages = self._messages
            if not messages:
                if self.end is not None:
                    raise self.end.with_traceback(None)
                raise trio.WouldBlock
            message = self._take()
            if type(message) is str or type(message) is bytes:
                return message
            self._whole_or_not(message)

    async def receive(self, *, iterating: bool = False) -> str | bytes:
        """Take the next message; see :meth:`Readable.receive`.

        ``iterating``: for ``async for``, the clean end raises
        StopAsyncIteration instead of EndOfChannel.
        """
        await checkpoint_if_cancelled()
        waited = False
        while True:
            if self.streaming:
                raise trio.BusyResourceError("a streamed message is being read")
            while not self._messages:  # the first put() may make a new deque
                if self.end is not None:
                    if iterating and isinstance(self.end, trio.EndOfChannel):
                        raise StopAsyncIteration
                    raise self.end.with_traceback(None)
                if self.before_wait is not None:
                    self.before_wait()
                read_here = self.read_here
                if read_here is not None and await read_here():
                    waited = True
                    continue
                await self._readers.park()
                waited = True
                if self.streaming:
                    raise trio.BusyResourceError("a streamed message is being read")
            message = self._take()
            if self._special and not (type(message) is str or type(message) is bytes):
                self._whole_or_not(message)
                continue
            # The periodic yield, unless this call already waited (a yield).
            if not self.taken & YIELD_MASK and not waited:
                await cancel_shielded_checkpoint()
            return message  # type: ignore[return-value]

    def _take(self) -> Item:
        messages = self._messages
        assert messages
        message = messages.popleft()
        if not messages:
            self._messages = None  # an empty deque is 0.75 KiB per idle connection
        self.taken += 1
        self.size -= len(message) + MESSAGE_OVERHEAD
        if self._resume and self.size <= self._resume_at:
            self._resume.unpark_all()
        return message

    def _whole_or_not(self, item: Item) -> None:
        """receive() met something that is not a whole message: a held one
        cannot be whole (it fails the connection with 1009); a stray chunk
        (of a stream that was left) is dropped."""
        self._special -= 1
        if item is HELD:
            assert self.control is not None
            self.control.release_held(False)

    # -- streamed messages -------------------------------------------------------

    def open_stream(self) -> str | bytes | None:
        """A streamed read starts: returns the next message if it is already
        whole (it is then the stream's only chunk), else ``None`` and its
        chunks will come. Raises what receive() raises at the end."""
        if self.streaming:
            raise trio.BusyResourceError("a streamed message is already being read")
        control = self.control
        assert control is not None
        while True:
            messages = self._messages
            if not messages:
                if self.end is not None:
                    raise self.end.with_traceback(None)
                self.streaming = True
                control.stream_next()
                return None
            head = messages[0]
            if type(head) is str or type(head) is bytes:
                return self._take()  # type: ignore[return-value]
            if head is HELD:
                self._take()
                self._special -= 1
                self.streaming = True
                control.release_held(True)
                return None
            # Chunks already there (the core was streaming this message).
            self.streaming = True
            return None

    async def receive_chunk(self) -> Chunk:
        """The next chunk of the message being streamed."""
        await checkpoint_if_cancelled()
        while not self._messages:
            if self.end is not None:
                raise self.end.with_traceback(None)
            if self.before_wait is not None:
                self.before_wait()
            await self._readers.park()
        chunk = self._take()
        assert type(chunk) is Chunk, chunk
        self._special -= 1
        return chunk

    def close_stream(self, finished: bool) -> None:
        """The streamed read ended; if before the last chunk, the rest of the
        message is dropped (what is buffered now, and what comes)."""
        self.streaming = False
        if finished:
            return
        messages = self._messages
        while messages:
            item = messages[0]
            if type(item) is not Chunk:
                break
            self._take()
            self._special -= 1
            self.discarded += 1
            if item.final:
                return
            messages = self._messages
        # The rest is still to come: the core drops it.
        if self.control is not None:
            self.control.abandon_stream()
