"""The writing half of a connection: ``send``, the flusher, keepalive.

A mixin of :class:`~wsstream._engine.connection.Connection` (one object per
connection, so no second object and no second set of slots): the module
docstring of ``connection`` tells how the parts fit.
"""

from __future__ import annotations

import logging
from time import perf_counter
from typing import TYPE_CHECKING

import trio
from trio.lowlevel import cancel_shielded_checkpoint, checkpoint_if_cancelled, current_task

from .._errors import WebSocketError
from .._options import Options
from .._protocol import Core, Verdict
from .._streams.messages import encode_message, usv_encode
from .._transport import Transport
from .ending import Ending
from .inbox import YIELD_MASK, Inbox
from .keepalive import Entry
from .outbox import Outbox
from .passes import FLUSH_DEFER_PASSES, FLUSH_DEFER_SECONDS, PassWriter
from .pings import Ping, PingTracker

__all__ = ["FLUSH_DEFER_PASSES", "MAX_PENDING_CONTROL", "Writer"]

_log = logging.getLogger("wsstream")

#: Pongs that the peer does not read may pile up to this many bytes; past it
#: the peer is flooding us and the connection fails with 1008.
MAX_PENDING_CONTROL = 128 * 1024


class Writer(Ending):
    """send(), send_nowait(), ping(), the flusher and keepalive."""

    __slots__ = (
        "_ka_entry", "_ka_epoch", "_ka_payload", "_ka_ping", "_parts", "_pass_deferred",
        "_pass_listed", "_pass_sent", "_pass_since", "_pass_taken", "_passes", "messages_sent",
    )

    _parts: int  # set by Connection.__init__
    # The run's pass writer on a plain socket, None otherwise (the flusher
    # writes); whether this connection is listed with it; what its user had
    # sent and taken at the last end of pass, and how many passes in a row
    # its write waited (see passes.py). Set by Connection.__init__.
    _passes: PassWriter | None
    _pass_listed: bool
    _pass_sent: int
    _pass_taken: int
    _pass_deferred: int
    _pass_since: float

    # The Connection's, used here.
    core: Core
    inbox: Inbox
    options: Options
    pings: PingTracker
    id: str
    messages_sent: int  # set by Connection.__init__
    _out: Outbox
    _transport: Transport | None
    _write_limit: int
    _reader_done: bool
    _nursery: trio.Nursery | None
    _scope: trio.CancelScope
    # The keepalive (keepalive.py): this connection's entry, and the ping
    # it sent with the readable's pause count then. Set by Connection.__init__.
    _ka_entry: Entry | None
    _ka_ping: Ping | None
    _ka_payload: bytes
    _ka_epoch: int

    if TYPE_CHECKING:
        def _fail(self, code: int, reason: str) -> None: ...
        def _error(self, verdict: Verdict) -> WebSocketError: ...
        def _peer_closed(self) -> WebSocketError: ...

    # -- flusher ---------------------------------------------------------

    def _start_flusher(self) -> None:
        assert self._nursery is not None
        self._nursery.start_soon(self._flusher)

    async def _flusher(self) -> None:
        # Started by the first frames queued, maybe after the connection
        # was cancelled: a flusher parked from the start would have been
        # cancelled then, without writing them.
        await checkpoint_if_cancelled()
        transport = self._transport
        assert transport is not None
        out, inbox, core = self._out, self.inbox, self.core
        while True:
            while not out:
                if core.eof_wanted:
                    await self._end_the_stream()
                    return
                if self._reader_done or out.broken:
                    return
                await out.wait_for_frames()
            if inbox:
                # The user has messages to handle: let it run first, so that
                # its replies to a burst share one write (rule 2). Stop once
                # a pass goes by in which it neither took nor sent.
                for _ in range(FLUSH_DEFER_PASSES):
                    progress = inbox.taken + self.messages_sent
                    await cancel_shielded_checkpoint()
                    if (
                        inbox.taken + self.messages_sent == progress
                        or out.size > self._write_limit
                    ):
                        break
                if not out:  # the user wrote it (Outbox.write_now)
                    continue
            try:
                await out.flush(transport)
            except (trio.BrokenResourceError, trio.ClosedResourceError) as exc:
                _log.debug("connection %s: write failed: %r", self.id, exc)
                # The peer is gone: nothing more can be said to it.
                self._scope.cancel()
                return

    async def _end_the_stream(self) -> None:
        transport = self._transport
        assert transport is not None
        if not await transport.send_eof() and not self._reader_done:
            # No half-close (TLS): the only way to end our side is to close
            # the stream, which the peer is waiting for.
            self._scope.cancel()

    def _write_own(self) -> None:
        """What the calling task sent, written now if the socket takes it:
        ``receive()`` calls this before it waits. A task that sent and now
        waits for the answer wants its bytes out at once; when another task
        is sending, the end of the pass gathers its messages into fewer
        writes (passes.py)."""
        out = self._out
        if (
            out and out.sender is current_task() and not out.inflight and not out.stalled
            and not out.write_now(self._transport)  # type: ignore[arg-type]
        ):
            out.wake_flusher()  # the rest waits for the socket

    # -- writes at the end of a scheduler pass (plain sockets, passes.py) -------

    def _schedule_write(self) -> None:
        """Frames were queued: have them written, at the end of this pass on
        a plain socket, else by the flusher."""
        passes = self._passes
        if passes is None:
            self._out.wake_flusher()
        elif not self._pass_listed:
            self._pass_listed = True
            # Listed by a send or a take in this very pass: that counts as
            # progress, so a busy loop defers the write at least once.
            self._pass_sent = self.messages_sent - 1
            self._pass_deferred = 0
            self._pass_since = perf_counter()
            passes.listed.append(self)

    def end_of_pass(self, busy: bool) -> bool:
        """The pass writer's call (see passes.py): write now, or stay
        listed (returns True) while the user is still producing."""
        out = self._out
        passes = self._passes
        if passes is None or not out or out.broken or out.stalled:
            # Ended, written meanwhile, or the flusher's (it waits for the
            # socket, or meets the error).
            self._pass_listed = False
            return False
        sent, taken = self.messages_sent, self.inbox.taken
        if (
            busy
            and self._pass_deferred < FLUSH_DEFER_PASSES
            and out.size <= self._write_limit
            and (sent != self._pass_sent or (taken != self._pass_taken and self.inbox))
            and perf_counter() - self._pass_since < FLUSH_DEFER_SECONDS
            and passes.runnable()
        ):
            self._pass_sent, self._pass_taken = sent, taken
            self._pass_deferred += 1
            return True
        self._pass_listed = False
        self._pass_sent, self._pass_taken = sent, taken
        if not out.write_now(self._transport):  # type: ignore[arg-type]
            # The socket is full (or broken): the flusher takes over.
            passes.wake_soon(out.wake_flusher)
        return False

    def write_later(self) -> None:
        self._pass_listed = False
        if self._passes is not None:
            self._passes.wake_soon(self._out.wake_flusher)

    # -- keepalive -------------------------------------------------------

    def keepalive_step(self, now: float) -> float | None:
        """The run's keepalive calls this (see keepalive.py): ping, or check
        the ping sent; returns when to come back, None once done."""
        if self._reader_done or not self.core.is_open or self._send_error is not None:
            return None
        interval = self.options.ping_interval
        timeout = self.options.ping_timeout
        assert interval is not None
        ping = self._ka_ping
        if ping is None:
            payload = self.pings.payload_for(b"")
            self._out.queue_control(list(self.core.send_ping(payload)))
            self._ka_ping = self.pings.track(payload)
            self._ka_payload = payload
            self._ka_epoch = self.inbox.pause_epoch
            return now + (interval if timeout is None else timeout)
        if ping.event.is_set():
            self._ka_ping = None
            if ping.rtt is None:
                return None  # the connection ended
            return max(ping.sent_at + ping.rtt + interval, now)
        if timeout is None:
            return now + interval  # no timeout: wait on
        self._ka_ping = None
        self.pings.forget(self._ka_payload)
        if self.inbox.paused or self._ka_epoch != self.inbox.pause_epoch:
            # Our own backpressure may hold the pong unread: try again later.
            return now + interval
        self._fail(1011, "keepalive ping timeout")
        return None

    async def send(self, message: object) -> None:
        """Queue one message; see :meth:`Writable.send`."""
        text, payload = encode_message(message)
        await checkpoint_if_cancelled()
        out = self._out
        # A message sent in parts goes first: data frames never interleave.
        while (out.size > self._write_limit or self._parts) and self._send_error is None:
            await out.wait_for_writes()
        self._queue(payload, text)
        if not self.messages_sent & YIELD_MASK:
            await cancel_shielded_checkpoint()

    def send_nowait(self, message: object) -> None:
        """Queue one message without waiting; see :meth:`Writable.send_nowait`."""
        text, payload = encode_message(message)
        if (self._out.size > self._write_limit or self._parts) and self._send_error is None:
            raise trio.WouldBlock
        self._queue(payload, text)

    # -- a message sent in parts (Writable.send_stream) --------------------------

    def begin_parts(self) -> None:
        """A message sent in parts starts (see :meth:`Writable.send_stream`)."""
        if self._parts:
            raise trio.BusyResourceError("another message is being sent in parts")
        self._parts = 1  # 1 + the frames queued

    async def send_part(
        self, data: str | bytes | bytearray | memoryview, text: bool, fin: bool
    ) -> None:
        """Queue one frame of the message; waits while over write_limit.
        Cancellation is safe: a cancelled call queued nothing."""
        # Text as the browser sends it: lone surrogates become U+FFFD.
        payload = usv_encode(data) if text else data  # type: ignore[arg-type]
        await checkpoint_if_cancelled()
        out = self._out
        while out.size > self._write_limit and self._send_error is None:
            await out.wait_for_writes()
        if self._send_error is not None:
            raise self._send_error.with_traceback(None)
        core = self.core
        if not core.is_open:
            raise self._not_open_error()
        frame = core.send_part(text, payload, self._parts == 1, fin)  # type: ignore[arg-type]
        self._parts += 1
        out.queue_message(frame)
        self._queued(out)

    def end_parts(self, text: bool, failed: bool) -> None:
        """The message sent in parts ends. Normally with an empty last frame
        (queued at once: it needs no room); cut short after a frame was
        queued, it cannot be taken back: the connection fails with 1011."""
        started = self._parts > 1
        try:
            if failed:
                if started:
                    self._fail(1011, "a message sent in parts was cut short")
                return
            if self._send_error is None and self.core.is_open:
                self._out.queue_message(self.core.send_part(text, b"", not started, True))
                self.messages_sent += 1
                self._queued(self._out)
            elif started:
                raise self._send_error or self._not_open_error()
        finally:
            self._parts = 0
            self._out.wake_senders()

    def broadcast_nowait(
        self,
        payload: bytes,
        text: bool,
        frame: tuple[bytes, ...] | None,
    ) -> None:
        """:meth:`send_nowait` for :func:`wsstream.broadcast`, which checked
        and encoded the message once for all connections (``text`` and
        ``payload`` from :func:`~wsstream._streams.messages.encode_message`) and may
        have built its frame once for many: ``frame``, from
        :func:`~wsstream._protocol.core.shared_frame`, is then queued as it
        is, and may be given only where ``core.shares_frames`` (the bytes
        this core would have built; else :class:`RuntimeError`, as an
        unmasked frame from a client would break the protocol). Everything
        else is ``send_nowait``'s: :class:`trio.WouldBlock` over
        ``write_limit``, the same errors, the same statistics.
        """
        if self._out.size > self._write_limit and self._send_error is None:
            raise trio.WouldBlock
        self._queue(payload, text, frame)

    def _queue(
        self, payload: bytes, text: bool, frame: tuple[bytes, ...] | None = None
    ) -> None:
        """Frame one message (its payload from encode_message) into the outbox
        (or raise why it cannot go); ``frame``: already encoded (see
        :meth:`broadcast_nowait`)."""
        if self._send_error is not None:
            raise self._send_error.with_traceback(None)
        core = self.core
        if not core.is_open:
            raise self._not_open_error()
        if frame is None:
            frame = core.send_message(text, payload)
        elif not core.shares_frames:
            raise RuntimeError("a shared frame for a connection that masks or compresses")
        self.messages_sent += 1
        out = self._out
        out.queue_message(frame)
        self._queued(out)

    def _queued(self, out: Outbox) -> None:
        """A message frame was queued by the calling task: write it now if
        it took the outbox over the limit, else have it written."""
        out.sender = current_task()
        if (
            out.size > self._write_limit and not out.inflight and self._passes is not None
            # Over the limit, the next send() would wait for the flusher:
            # on a plain socket, give it what it takes now, as asyncio's
            # transports do (no schedule pass per big message).
            and (out.stalled or not out.write_now(self._transport))  # type: ignore[arg-type]
        ):
            out.wake_flusher()  # the socket is full: the flusher waits for it
            return
        if out:
            self._schedule_write()

    def _not_open_error(self) -> BaseException:
        verdict = self.core.lifecycle.verdict
        if verdict is not None and not verdict.clean:
            return self._error(verdict)
        if self.core.lifecycle.close_received is not None:
            return self._peer_closed()
        return trio.ClosedResourceError("the connection is closed")

    async def ping(self, payload: bytes | bytearray | memoryview = b"") -> float:
        """Send a Ping and wait for its Pong; returns the round trip in seconds."""
        payload = self.pings.payload_for(payload)
        if self._send_error is not None:
            raise self._send_error.with_traceback(None)
        if not self.core.is_open:
            raise self._not_open_error()
        self._out.queue_control(list(self.core.send_ping(payload)))
        rtt = await self.pings.wait(payload)
        if rtt is None:  # the connection ended first
            error = self._send_error or trio.ClosedResourceError("the connection is closed")
            raise error.with_traceback(None)
        return rtt

