"""The outgoing buffer: whole frames waiting to be written.

Engine rules 2 and 7: ``send()`` and the reader append here; the flusher
takes everything pending at once and writes it with one system call, so
many frames share one. On plain TCP a user's task may also write, but only
synchronously (:meth:`Outbox.write_now`, a non-blocking ``os.write`` that
no cancellation can interrupt): when it is about to wait for the peer, and
when a ``send()`` left the buffer over ``write_limit``. Whatever the socket
does not take stays first in line for the flusher, so frames are never cut
or reordered. The buffer counts its bytes (pending and being written) for
``write_limit``, and separately what the reader queued (pongs, the Close
echo) for the ping-flood cap.
"""

from __future__ import annotations

import os
from collections.abc import Callable

import trio
from trio.lowlevel import current_task, wait_writable

from ._waiters import Waiters

#: What the outbox holds: frames, or what is left of them (views).
Chunk = bytes | memoryview

#: The most buffers one ``writev`` takes (POSIX guarantees at least 16;
#: Linux takes 1,024).
IOV_MAX = max(16, os.sysconf("SC_IOV_MAX") if hasattr(os, "sysconf") else 16)

__all__ = ["Outbox"]


class Outbox:
    """Frames to write, their byte counts, and the tasks waiting on them."""

    __slots__ = (
        "_chunks", "_flusher", "_senders", "broken", "control_inflight", "control_pending",
        "end_stream", "fd", "full", "sender", "size", "start_flusher", "writing", "written",
    )

    def __init__(self) -> None:
        self._chunks: list[Chunk] = []
        self.size = 0  # pending + being written
        self.control_pending = 0  # of size: queued by the reader, not yet taken
        self.control_inflight = 0  # of size: queued by the reader, being written
        self.end_stream = False  # the core asked to end the stream after these
        self.writing = False  # a send_all is under way
        self.broken = False  # a send_all failed: nothing more can be written
        self.written = 0
        # The socket's descriptor when the stream is plain TCP on a POSIX
        # system, else -1; the engine sets it to -1 before closing the stream.
        self.fd = -1
        self.full = False  # a direct write found the socket full
        self.sender: object = None  # the task that queued the last message
        self._flusher = Waiters()
        self._senders = Waiters()
        # Set by the engine while the flusher could be started but is not
        # yet: the first frames start it (an idle connection has none, and
        # saves a task). Called once, then cleared.
        self.start_flusher: Callable[[], None] | None = None

    def __bool__(self) -> bool:
        return bool(self._chunks)

    @property
    def control(self) -> int:
        """Bytes of control frames the reader queued and the peer has not taken."""
        return self.control_pending + self.control_inflight

    @property
    def unwritten_messages(self) -> int:
        """Bytes of our messages not known to be written yet."""
        return self.size - self.control_pending - self.control_inflight

    def queue(self, data: list[bytes], *, control: bool = False, wake: bool = True) -> int:
        """Append whole frames (``b""`` asks to end the stream after them)
        and, unless told not to, wake the flusher; returns the byte count."""
        n = 0
        chunks = self._chunks
        for chunk in data:
            if chunk:
                chunks.append(chunk)
                n += len(chunk)
            else:
                self.end_stream = True
        self.size += n
        if control:
            self.control_pending += n
        if wake:
            if self._flusher:
                self._flusher.unpark()
            elif n or self.end_stream:
                self._start_flusher()
        return n

    def drop_pending(self) -> None:
        """Forget what the flusher has not taken yet (whole frames only)."""
        self.size -= sum(len(chunk) for chunk in self._chunks)
        self._chunks = []
        self.control_pending = 0

    def pending(self) -> list[Chunk]:
        """What the flusher has not taken yet."""
        return self._chunks

    def clear(self) -> None:
        self._chunks = []
        self.size = 0

    async def wait_for_frames(self) -> None:
        """The flusher's wait for something to write (or to stop)."""
        await self._flusher.park()

    def wake_flusher(self) -> None:
        self._flusher.unpark_all()

    def wake_flusher_if_needed(self) -> None:
        """Wake the flusher if anything is left to write."""
        if self._chunks:
            if self._flusher:
                self._flusher.unpark()
            else:
                self._start_flusher()

    def _start_flusher(self) -> None:
        """Start the flusher if the engine left it for the first frames."""
        start = self.start_flusher
        if start is not None:
            self.start_flusher = None
            start()

    async def write(self, stream: trio.abc.Stream) -> None:
        """Write everything pending with one ``send_all``; the flusher's step.

        On plain TCP the socket is written directly: the write that the
        kernel takes at once costs no schedule point (the flusher has just
        waited for frames), and only a full socket makes it wait.
        Raises what ``send_all`` raises; the batch then counts as written for
        nobody, and ``broken`` tells the engine to stop.
        """
        batch = self._chunks
        if not batch:
            return
        self._chunks = []
        self.control_inflight = self.control_pending
        self.control_pending = 0
        self.writing = True
        try:
            if self.fd >= 0:
                full, self.full = self.full, False
                n = await _write_all(self.fd, batch, full)
            else:
                data = batch[0] if len(batch) == 1 else b"".join(batch)
                await stream.send_all(data)
                n = len(data)
        except BaseException:
            self.broken = True
            raise
        finally:
            self.writing = False
        self._written(n)
        self.control_inflight = 0

    def write_now(self) -> None:
        """Write what the socket takes without waiting; the user's step.

        Called by a task about to wait for the peer (``receive()`` with
        nothing to take): what it sent since it last waited leaves in the
        same schedule pass, not one pass later through the flusher. The
        system call is synchronous, so no cancellation can cut a frame;
        what the socket does not take stays first in line for the flusher.
        Errors are left for the flusher's next write to meet and report.
        """
        batch = self._chunks
        if not batch or self.writing or self.broken or self.fd < 0:
            return
        try:
            n = _write_some(self.fd, batch)
        except OSError:  # would block, or broken: the flusher will know
            n = 0
        rest = _advance(batch, n)
        self._chunks = rest
        if rest:
            # The socket is full: the flusher waits for room before writing
            # the rest (views, not copies, of what is left).
            self.full = True
            self.control_pending = min(self.control_pending, sum(map(len, rest)))
        else:
            self.control_pending = 0
            self.full = False
        if n:
            self._written(n)

    def write_own(self) -> None:
        """:meth:`write_now`, if the calling task sent the last message.

        ``receive()`` calls this before it waits. A task that sent and now
        waits for the answer (a request, a reply to one) wants its bytes out
        at once; when another task is sending, the flusher gathers that
        task's messages into fewer writes instead.
        """
        if self._chunks and self.sender is current_task():
            self.write_now()

    def _written(self, n: int) -> None:
        self.size -= n
        self.written += n
        if self._senders:
            self._senders.unpark_all()

    async def wait_for_writes(self) -> None:
        """A sender's wait until a write finished or :meth:`wake_senders`
        was called (the connection ended); the caller checks again."""
        await self._senders.park()

    def wake_senders(self) -> None:
        self._senders.unpark_all()


def _write_some(fd: int, chunks: list[Chunk]) -> int:
    """One non-blocking system call: what the socket took of ``chunks``."""
    if len(chunks) == 1:
        return os.write(fd, chunks[0])
    return os.writev(fd, chunks[:IOV_MAX])


def _advance(chunks: list[Chunk], n: int) -> list[Chunk]:
    """What is left of ``chunks`` once their first ``n`` bytes are written."""
    i = 0
    while n:
        size = len(chunks[i])
        if n < size:
            rest = chunks[i:]
            rest[0] = memoryview(rest[0])[n:]
            return rest
        n -= size
        i += 1
    return chunks[i:] if i else chunks


async def _write_all(fd: int, chunks: list[Chunk], full: bool) -> int:
    """``send_all`` for a non-blocking socket descriptor, gathering the chunks
    with ``writev`` (no join, so no copy of large payloads), without trio's
    schedule point after a write that did not wait; returns the bytes
    written. A socket that took only part of a write is full: wait for room
    rather than try again at once (``full`` says the last direct write found
    it so)."""
    total = 0
    try:
        if full:
            await wait_writable(fd)
        while chunks:
            try:
                n = _write_some(fd, chunks)
            except BlockingIOError:
                await wait_writable(fd)
                continue
            total += n
            rest = _advance(chunks, n)
            if rest and len(chunks) - len(rest) < IOV_MAX:
                await wait_writable(fd)  # it stopped short: the socket is full
            chunks = rest
        return total
    except OSError as exc:
        raise trio.BrokenResourceError(f"socket connection broken: {exc}") from exc
