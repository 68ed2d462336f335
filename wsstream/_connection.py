"""The connection engine: one framing core, one trio stream, a few tasks.

Theory of operation
-------------------
A connection runs as one task, :meth:`Connection.run`, inside a nursery that
the user owns (the client's ``async with``, or ``serve``). That task opens
the stream (client), does the opening handshake under ``open_timeout``, then
two tasks run until the connection is over, in a nursery whose scope is the
connection's run scope:

* the **reader**, the run task itself, reads the stream in large chunks,
  feeds the core, puts complete messages in the inbox (``_inbox.py``; the
  readable takes from it) and whatever the core wants to send (pongs, the
  Close echo) in the outbox (``_outbox.py``). It never waits on the writer
  (engine rule 1). It stops reading while the inbox holds ``read_limit``
  bytes or more, and resumes once the user has taken it down to half of
  that (backpressure, rule 3).
* the **flusher**, started by the first frames queued (an idle connection
  never has any: one task less), waits for the outbox to be non-empty and
  writes all of it with one system call (rule 2), then wakes senders blocked on
  ``write_limit``. When it wakes while the user still has messages to
  answer, it lets the user run first, so the replies to a burst share a
  write. Only the flusher ever waits for the socket to take data, so a
  cancelled user can never leave half a frame on the wire (rule 7).

``send()`` serialises into the outbox and returns. It first waits while the
outbox holds more than ``write_limit`` bytes (in flight included), so a slow
peer slows the writer.

Plain TCP on POSIX (the common case) takes a shorter path, because each
schedule pass is a measurable part of a round trip: the reader and the
flusher use the socket's descriptor directly (``os.readv`` into a shared
scratch buffer, ``os.write``) and yield only when they wait or when the
socket stayed full, where trio's ``SocketStream`` adds a pass after every
system call; and the user's task writes what it sent, synchronously and
without waiting, when it is about to wait in ``receive()`` for an answer
to what it sent, or when a ``send()`` left the outbox over ``write_limit``
(:meth:`Outbox.write_now`).
A request/response exchange then costs two passes per hop, as a bare trio
echo does.

Closing: the core decides what goes on the wire; the engine arms the
``close_timeout`` deadline on the run scope as soon as a Close has been sent
or received, so the whole tail of the connection is bounded (rule 5). When
the reader has seen the end of the stream and the flusher has written what
was left, the stream is closed and ``closed`` settles. A deadline or an abort
cancels the run scope; the stream is then closed forcefully and the outcome
is computed from what the core saw (1006 unless Close frames were exchanged).

Wake-ups use :class:`~wsstream._waiters.Waiters` (a light ParkingLot), so
nothing is allocated per message (rule 6).
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import socket
import struct
import threading
from collections.abc import Awaitable, Callable

import trio
from trio.lowlevel import (
    cancel_shielded_checkpoint,
    checkpoint,
    checkpoint_if_cancelled,
    current_task,
    wait_readable,
)

from ._channels import OpenInfo, Readable, Writable
from ._core import Core, HandshakeFailure
from ._errors import AbortError, HandshakeError, WebSocketError
from ._handshake import client_handshake, server_handshake
from ._inbox import YIELD_MASK, Inbox
from ._options import CloseInfo, Options, ServerHooks, Statistics
from ._outbox import Outbox
from ._pings import PingTracker
from ._promise import Promise

__all__ = ["CloseInfo", "Connection", "Options", "ServerHooks", "Statistics"]

_log = logging.getLogger("wsstream")

#: Pongs and Close echoes that the peer does not read may pile up to this many
#: bytes; past it the peer is flooding us and the connection fails with 1008.
MAX_PENDING_CONTROL = 128 * 1024

#: At most this many schedule passes may a flusher wait for the user to
#: answer messages already in the inbox before it writes.
FLUSH_DEFER_PASSES = 64

#: The run task's name, as trio would spell it: given, it is one shared str
#: instead of one built per connection.
RUN_TASK_NAME = "wsstream._connection.Connection.run"

#: How long a forceful close (cancellation) lets the Close frame leave when
#: the socket cannot take it at once.
FORCEFUL_CLOSE_GRACE = 0.05


def _reset_on_close(stream: trio.abc.Stream) -> None:
    while not isinstance(stream, trio.SocketStream):
        inner = getattr(stream, "transport_stream", None)
        if not isinstance(inner, trio.abc.Stream):
            return
        stream = inner
    with contextlib.suppress(OSError):
        stream.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))


#: The largest read on the plain-TCP path: big messages arrive in a few
#: system calls (and a few schedule passes) rather than sixteen per MiB.
SCRATCH_SIZE = 256 * 1024


class _Scratch(threading.local):
    """One read buffer per thread, shared by every connection of a trio run:
    the bytes read are fed to the core (which copies them) before the
    reader can yield, so no two reads ever overlap in it, and no read
    allocates."""

    def __init__(self) -> None:
        self.view = memoryview(bytearray(SCRATCH_SIZE))


_scratch = _Scratch()


def _plain_fd(stream: trio.abc.Stream) -> int:
    """The descriptor of a plain TCP stream on POSIX, else -1.

    The engine reads and writes such a socket itself: trio's SocketStream
    adds a schedule point after every system call that did not wait, one
    more task switch on each hop of a round trip.
    """
    if type(stream) is trio.SocketStream and os.name == "posix":
        return stream.socket.fileno()
    return -1


def _readv_nowait(fd: int, buffer: memoryview) -> int:
    """Read what the socket holds into ``buffer``: the byte count, ``0`` at
    the end of the stream (or a reset), ``-1`` if nothing is there yet.

    A function of its own so that the frequent BlockingIOError never passes
    through the reader's frame: a traceback through it would give that
    frame a frame object kept as long as the connection (about 0.25 KiB).
    """
    try:
        return os.readv(fd, [buffer])
    except BlockingIOError:
        return -1
    except OSError:
        return 0


def _dropped() -> WebSocketError:
    return WebSocketError._build("the connection closed without a closing handshake", 1006)


def _deadline_after(seconds: float | None) -> float:
    return math.inf if seconds is None else trio.current_time() + seconds


class Connection:
    """One WebSocket connection; see the module docstring."""

    # Slots: a connection is long-lived and numerous on a server; a dict
    # per instance would cost about 1.5 KiB.
    __slots__ = (
        "_abort_exc", "_close_initiated", "_close_pending", "_close_seen", "_connect",
        "_finished", "_forceful", "_held", "_keepalive_scope", "_nursery", "_out", "_reader_done",
        "_scope", "_send_error", "_server", "_signal_scope", "_unclean", "_write_limit",
        "bytes_received", "closed", "core", "error", "id", "inbox", "messages_received",
        "messages_sent", "opened", "options", "pings", "stream",
    )

    def __init__(
        self,
        core: Core,
        options: Options,
        *,
        stream: trio.abc.Stream | None = None,
        connect: Callable[[], Awaitable[trio.abc.Stream]] | None = None,
        server: ServerHooks | None = None,
    ) -> None:
        self.core = core
        self.options = options
        self.stream = stream
        self._connect = connect
        self._server = server
        self.opened: Promise[OpenInfo] = Promise()
        self.closed: Promise[CloseInfo] = Promise()
        self.id = os.urandom(4).hex()

        self._scope = trio.CancelScope()
        self._nursery: trio.Nursery | None = None  # while the flusher may be started
        self._abort_exc: WebSocketError | None = None
        self._finished = False

        self.inbox = Inbox(options.read_limit)
        self._out = Outbox()
        self._write_limit = options.write_limit
        self._reader_done = False
        # What send() raises: ClosedResourceError (we closed) or a
        # WebSocketError (the peer closed, or the connection failed).
        self._send_error: BaseException | None = None

        # Closing.
        self._close_initiated = False  # we sent a Close before receiving one
        self._close_seen = False
        self._close_pending = False  # the peer's Close is in, cleanliness undecided
        self._held: list[bytes] | None = None  # output held until then (the Close echo)
        self._unclean: WebSocketError | None = None
        self.error: WebSocketError | None = None  # the connection's error, once known

        # Pings in flight and round trips.
        self.pings = PingTracker()
        self._keepalive_scope: trio.CancelScope | None = None
        self._signal_scope: trio.CancelScope | None = None
        self._forceful = False

        # Statistics.
        self.messages_sent = 0
        self.messages_received = 0
        self.bytes_received = 0

    # ------------------------------------------------------------------
    # The connection's task

    async def run(self) -> None:
        """Open, run and close the connection; never raises but Cancelled.

        Settles ``opened`` and ``closed``. Cancellation of the caller closes
        the connection forcefully (see :meth:`close_forcefully`).
        """
        try:
            # The task's steps inline, not in a coroutine of their own: one
            # frame less held for as long as the connection lives.
            if self._abort_exc is None:
                async with trio.open_nursery() as nursery:
                    self._adopt_scope(nursery.cancel_scope)
                    if await self._open():
                        self._start_tasks(nursery)
                        try:
                            await self._reader()
                        finally:
                            # No flusher is started once the reader is done.
                            self._out.start_flusher = None
                            self._nursery = None
                        self._reader_finished()
        except* trio.Cancelled:
            # Cancelled from outside (the owner's scope): a forceful close,
            # even if the owner's code has not reached close_forcefully yet.
            self._queue_forceful_close(1001, "")
            raise
        except* Exception as group:
            # A bug of ours: report it as an internal error, never leak it.
            _log.error("connection %s: internal error", self.id, exc_info=group)
            if self._abort_exc is None:
                self._abort_exc = WebSocketError._build("internal error in wsstream", 1011)
        finally:
            with trio.CancelScope(shield=True):
                await self._finish()

    def _adopt_scope(self, scope: trio.CancelScope) -> None:
        """Make the nursery's scope the run scope (one scope less per
        connection): it takes over what was asked of the scope made in
        __init__, which stood in for it until now."""
        scope.deadline = self._scope.deadline
        if self._scope.cancel_called:
            scope.cancel()
        self._scope = scope

    def _start_tasks(self, nursery: trio.Nursery) -> None:
        """The handshake is done: set up the writes, start keepalive."""
        out = self._out
        fd = _plain_fd(self.stream)  # type: ignore[arg-type]
        if fd >= 0:
            out.fd = fd
            self.inbox.before_wait = out.write_own
        # The flusher starts with the first frames to write: an idle
        # connection never needs it.
        if out or out.end_stream:
            nursery.start_soon(self._flusher)
        else:
            self._nursery = nursery
            out.start_flusher = self._start_flusher
        if self.options.ping_interval is not None:
            nursery.start_soon(self._keepalive)

    def _reader_finished(self) -> None:
        self._arm_close_deadline()
        self._reader_done = True
        self._out.wake_flusher()
        # Keepalive has nothing left to do; the flusher finishes.
        if self._keepalive_scope is not None:
            self._keepalive_scope.cancel()

    async def _open(self) -> bool:
        """The opening handshake; returns True if the connection is open."""
        scope = trio.CancelScope(deadline=_deadline_after(self.options.open_timeout))
        failure: WebSocketError | None = None
        ok = False
        with scope:
            try:
                if self.stream is None:
                    assert self._connect is not None
                    self.stream = await self._connect()
                if self._server is not None:
                    rejected, early = await server_handshake(
                        self.stream, self.core, self._server
                    )
                    if rejected is not None:
                        self._abort_exc = rejected
                    elif early:
                        self.core.receive_data(early)  # now that the 101 is out
                    ok = rejected is None
                else:
                    await client_handshake(self.stream, self.core)
                    ok = True
            except HandshakeFailure as exc:
                failure = HandshakeError(
                    str(exc), status=exc.status, headers=exc.headers, body=exc.body
                )
            except trio.BrokenResourceError as exc:  # TLS failures come this way too
                cause = exc.__cause__ or exc
                failure = HandshakeError(f"the connection broke during the handshake: {cause}")
            except OSError as exc:
                failure = HandshakeError(f"could not connect: {exc}")
        if self._signal_scope is not None:
            self._signal_scope.cancel()
        if scope.cancelled_caught and failure is None and self._abort_exc is None:
            failure = HandshakeError(
                f"the opening handshake timed out after {self.options.open_timeout} s"
            )
        if failure is not None and self._abort_exc is None:
            self._abort_exc = failure
        if not ok or self._abort_exc is not None:
            return False
        self.opened.resolve(
            OpenInfo(Readable(self), Writable(self), self.core.extensions, self.core.subprotocol)
        )
        self._process_incoming()  # messages pipelined behind the handshake
        return True

    async def watch_signal(self, signal: trio.Event) -> None:
        """Abort if ``signal`` is set before the handshake finished.

        Runs beside :meth:`run` in the owner's nursery; ends when the
        handshake ends, whatever the outcome.
        """
        if self.opened.settled or self._finished:
            return
        with trio.CancelScope() as self._signal_scope:
            await signal.wait()
            self.abort(AbortError())

    # -- reader ----------------------------------------------------------

    async def _reader(self) -> None:
        # No bound methods kept in locals: this frame lives as long as the
        # connection, and each would cost 64 bytes.
        stream, core = self.stream, self.core
        assert stream is not None
        inbox = self.inbox
        fd = self._out.fd
        drained = False
        data: bytes | bytearray | memoryview
        while not core.is_closed:
            await inbox.wait_for_room()
            if fd >= 0:
                data = b""
                try:
                    if drained:
                        # The last read emptied the socket: wait first, rather
                        # than spend a system call to learn it is still empty.
                        await wait_readable(fd)
                except (OSError, trio.BrokenResourceError, trio.ClosedResourceError):
                    pass  # closed: the end of the stream
                else:
                    size = inbox.read_size(SCRATCH_SIZE)
                    view = _scratch.view
                    n = _readv_nowait(fd, view[:size])
                    if n < 0:
                        drained = True
                        continue
                    if n:  # else reset by the peer: the end of the stream
                        data = view[:n]
                    drained = n < size
            else:
                try:
                    data = await stream.receive_some(inbox.read_size())
                except (trio.BrokenResourceError, trio.ClosedResourceError):
                    data = b""
            if data:
                self.bytes_received += len(data)
                core.receive_data(data)
            else:
                core.receive_eof()
            self._process_incoming()
            if self._close_pending:
                # One schedule point lets a flusher whose write completed
                # account for it (trio runs every runnable task before the
                # reader resumes), so a clean close is not mistaken for one
                # with unsent messages.
                await cancel_shielded_checkpoint()
                self._settle_close()
            elif fd >= 0 and not drained:
                # The socket may hold more: yield before reading it, so that
                # a peer that never lets it run dry cannot starve the other
                # tasks (when drained, the wait for more is the yield).
                await checkpoint()

    def _process_incoming(self) -> None:
        """Move what the core produced to the inbox and the outbox."""
        core = self.core
        messages = core.take_messages()
        if messages:
            self.messages_received += len(messages)
            self.inbox.put(messages)
        if core.pongs:
            self.pings.on_pongs(core.take_pongs())
        if not self._close_seen and core.close_received is not None:
            self._on_close_received()
        data = core.data_to_send()
        if data and self._close_pending:
            # The Close echo waits for the decision.
            self._held = self._held + data if self._held else data
        elif data:
            self._out.queue(data, control=True)
            if self._out.control > MAX_PENDING_CONTROL:
                self._fail(1008, "too many control frames left unread")
        if core.failure is not None or core.protocol.parser_exc is not None:
            self._on_failure()
        if core.is_closed and core.close_received is None and self.error is None:
            # The stream ended without a Close: say so now, not at the end,
            # so that a send() racing with the end gets this error too.
            self.error = _dropped()
            self._set_ends(self.error, self.error)
        if not core.is_open:
            self._arm_close_deadline()

    def _not_open_error(self) -> BaseException:
        # The core left OPEN before the engine settled on an error (the
        # peer's Close is being judged): report the peer's side of it.
        received = self.core.close_received
        if received is not None:
            return WebSocketError._build("the peer closed the connection", *received)
        return self.error or _dropped()

    def _on_close_received(self) -> None:
        self._close_seen = True
        if self.core.protocol_failure is not None:
            return
        if not self._close_initiated and self._out.unwritten_messages > 0:
            # Maybe our messages are still unwritten; maybe the flusher's
            # last write just finished and it has not run since to say so.
            # The reader lets it run once, then decides (_settle_close).
            self._close_pending = True
            return
        self._settle_close()

    def _settle_close(self) -> None:
        """The peer's Close is in: decide whether the close is clean."""
        self._close_pending = False
        code, reason = self.core.close_received  # type: ignore[misc]
        if not self._close_initiated and self._out.unwritten_messages > 0:
            # The peer closed while our messages were unwritten: they will
            # never be read, so drop what is not on the wire yet and let the
            # Close echo go out at once (RFC 6455 5.5.1 allows it). Such a
            # close is not clean (the browser's remote-close rule).
            self._out.drop_pending()
            self._unclean = WebSocketError._build(
                "the peer closed the connection with messages still unsent", code, reason
            )
            self._set_ends(self._unclean, self._unclean)
        else:
            if self._send_error is None:
                self._send_error = WebSocketError._build(
                    "the peer closed the connection", code, reason
                )
                self._out.wake_senders()
            self.inbox.finish(trio.EndOfChannel(), replace_clean_end=False)
        held, self._held = self._held, None
        if held:
            self._out.queue(held, control=True)

    def _on_failure(self) -> None:
        failure = self.core.protocol_failure
        if failure is None or self.error is not None:
            return
        code, reason = failure
        self.inbox.stop_pausing()
        error = WebSocketError._build(
            f"the connection failed: {reason or code}", code, reason
        )
        self.error = error
        self._set_ends(error, error)

    def _fail(self, code: int, reason: str) -> None:
        if self.core.is_closed or self.core.failure is not None:
            return
        self.core.fail(code, reason)
        self._out.queue(self.core.data_to_send())
        self._on_failure()
        self._arm_close_deadline()

    def _set_ends(self, recv_end: BaseException, send_error: BaseException) -> None:
        self.inbox.finish(recv_end)
        if self._send_error is None or not isinstance(self._send_error, WebSocketError):
            self._send_error = send_error
        self._out.wake_senders()

    # -- flusher ---------------------------------------------------------

    def _start_flusher(self) -> None:
        assert self._nursery is not None
        self._nursery.start_soon(self._flusher)

    async def _flusher(self) -> None:
        # Started by the first frames queued, maybe after the connection
        # was cancelled: a flusher parked from the start would have been
        # cancelled then, without writing them.
        await checkpoint_if_cancelled()
        stream = self.stream
        assert stream is not None
        out, inbox = self._out, self.inbox
        while True:
            while not out:
                if out.end_stream:
                    await self._end_the_stream()
                    return
                if self._reader_done or out.broken:
                    return
                await out.wait_for_frames()
            if inbox:
                # The user has messages to handle: let it run first, so that
                # its replies to a burst share one send_all (rule 2). Stop
                # once a pass goes by in which it neither took nor sent.
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
                await out.write(stream)
            except (trio.BrokenResourceError, trio.ClosedResourceError) as exc:
                _log.debug("connection %s: write failed: %r", self.id, exc)
                # The peer is gone: nothing more can be said to it.
                self._scope.cancel()
                return

    async def _end_the_stream(self) -> None:
        stream = self.stream
        if isinstance(stream, trio.abc.HalfCloseableStream):
            with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError):
                await stream.send_eof()
        elif not self._reader_done:
            # No half-close (TLS): the only way to end our side is to close
            # the stream, which the peer is waiting for.
            self._scope.cancel()

    # -- keepalive -------------------------------------------------------

    async def _keepalive(self) -> None:
        interval = self.options.ping_interval
        timeout = self.options.ping_timeout
        assert interval is not None
        with trio.CancelScope() as self._keepalive_scope:
            while self.core.is_open:
                await trio.sleep(interval)
                if not self.core.is_open:
                    return
                epoch = self.inbox.pause_epoch
                with trio.move_on_after(math.inf if timeout is None else timeout) as wait:
                    try:
                        await self.ping()
                    except (trio.BrokenResourceError, trio.ClosedResourceError):
                        return
                if wait.cancelled_caught:
                    if self.inbox.paused or epoch != self.inbox.pause_epoch:
                        # Our own backpressure may hold the pong unread.
                        continue
                    self._fail(1011, "keepalive ping timeout")
                    return

    # ------------------------------------------------------------------
    # Used by the streams

    async def send(self, message: str | bytes | bytearray | memoryview) -> None:
        """Queue one message; see :meth:`Writable.send`."""
        if isinstance(message, str):
            text = True
        elif isinstance(message, (bytes, bytearray, memoryview)):
            text = False
        else:
            raise TypeError(
                f"a message must be str or a bytes-like object, not {type(message).__name__}"
            )
        await checkpoint_if_cancelled()
        out = self._out
        while out.size > self._write_limit and self._send_error is None:
            await out.wait_for_writes()
        if self._send_error is not None:
            raise self._send_error.with_traceback(None)
        if not self.core.is_open:
            raise self._not_open_error()
        if text:
            self.core.send_text(message)  # type: ignore[arg-type]
        else:
            self.core.send_binary(message)  # type: ignore[arg-type]
        self.messages_sent += 1
        out.queue(self.core.data_to_send(), wake=False)
        out.sender = current_task()
        if out.size > self._write_limit:
            # Over the limit, the next send() would wait for the flusher:
            # on plain TCP, give the socket what it takes now, as asyncio's
            # transports do (no schedule pass per big message).
            out.write_now()
        out.wake_flusher_if_needed()
        if not self.messages_sent & YIELD_MASK:
            await cancel_shielded_checkpoint()

    def stop_reading(self) -> None:
        """The user will read no more: drop buffered and future messages."""
        self.inbox.close()

    def discard_incoming(self) -> None:
        """Drop messages from now on without closing the readable."""
        self.inbox.clear(discard=True)

    def close(self, code: int | None, reason: str) -> None:
        """Start the closing handshake (arguments already validated).

        Before the handshake finished, abandons it: ``opened`` and ``closed``
        raise a :class:`WebSocketError` with code 1006.
        """
        if self._finished:
            return
        if self._send_error is None:
            self._send_error = trio.ClosedResourceError("this side closed the connection")
            self._out.wake_senders()
        if not self.opened.settled:
            self.abort(WebSocketError._build(
                "the connection was closed before the opening handshake finished", 1006
            ))
            return
        core = self.core
        if core.is_open:
            if not self._close_seen:
                self._close_initiated = True
            core.send_close(code, reason)
            self._out.queue(core.data_to_send())
        self.inbox.stop_pausing()
        self._arm_close_deadline()

    def abort(self, exc: WebSocketError) -> None:
        """Stop at once: close the stream; ``opened`` (if pending) and
        ``closed`` raise ``exc``."""
        if self._finished:
            return
        if self._abort_exc is None and not self.opened.settled:
            self._abort_exc = exc
        self._scope.cancel()

    def close_forcefully(self, code: int, reason: str) -> None:
        """Queue a Close if possible, then stop at once (cancellation path)."""
        if self._finished:
            return
        self.discard_incoming()
        self._queue_forceful_close(code, reason)
        self._scope.cancel()

    def _queue_forceful_close(self, code: int, reason: str) -> None:
        if self.opened.settled and self.core.is_open:
            self._close_initiated = True
            self.core.send_close(code, reason)
            self._out.queue(self.core.data_to_send())
        self._forceful = True

    def _arm_close_deadline(self) -> None:
        timeout = self.options.close_timeout
        deadline = _deadline_after(timeout)
        if deadline < self._scope.deadline:
            self._scope.deadline = deadline

    async def ping(self, payload: bytes | bytearray | memoryview = b"") -> float:
        """Send a Ping and wait for its Pong; returns the round trip in seconds."""
        payload = self.pings.payload_for(payload)
        if self._send_error is not None:
            raise self._send_error.with_traceback(None)
        if not self.core.is_open:
            raise self._not_open_error()
        self.core.send_ping(payload)
        self._out.queue(self.core.data_to_send())
        rtt = await self.pings.wait(payload)
        if rtt is None:  # the connection ended first
            error = self._send_error or trio.ClosedResourceError("the connection is closed")
            raise error.with_traceback(None)
        return rtt

    # ------------------------------------------------------------------
    # The end

    async def _finish(self) -> None:
        """Close the stream and settle everything; runs shielded."""
        out = self._out
        out.fd = -1  # the descriptor may be reused once the stream is closed
        out.sender = None
        self.inbox.before_wait = None
        if self._forceful and out and not out.writing and not out.broken \
                and self.stream is not None:
            with trio.move_on_after(FORCEFUL_CLOSE_GRACE), contextlib.suppress(
                trio.BrokenResourceError, trio.ClosedResourceError
            ):
                await self.stream.send_all(b"".join(out.pending()))
        if self.stream is not None:
            if self._scope.cancelled_caught and not self._forceful and (
                trio.current_time() >= self._scope.deadline
            ):
                # close_timeout expired: reset the connection, so that a peer
                # that stopped reading learns at once that it is gone (a FIN
                # would wait behind the unread bytes).
                _reset_on_close(self.stream)
            await trio.aclose_forcefully(self.stream)
        self._finished = True
        core = self.core
        outcome: CloseInfo | WebSocketError
        if self._abort_exc is not None:
            outcome = self._abort_exc
        elif not self.opened.settled:
            outcome = WebSocketError._build("the connection closed during the handshake", 1006)
        else:
            failure = core.protocol_failure
            received = core.close_received
            if failure is not None:
                outcome = self.error or WebSocketError._build(
                    f"the connection failed: {failure[1] or failure[0]}", *failure
                )
            elif self._unclean is not None:
                outcome = self._unclean
            elif received is not None and core.close_sent is not None:
                outcome = CloseInfo(*received)
            else:
                outcome = self.error or _dropped()
        if isinstance(outcome, CloseInfo):
            self.closed.resolve(outcome)
            self._set_ends_clean()
        else:
            self.error = outcome
            self.opened.reject(outcome)
            self.closed.reject(outcome)
            self._set_ends(outcome, outcome)
        out.clear()
        self.pings.release_all()
        self.inbox.wake_all()
        out.wake_senders()
        out.wake_flusher()

    def _set_ends_clean(self) -> None:
        self.inbox.finish(trio.EndOfChannel(), replace_clean_end=False)
        if self._send_error is None:
            self._send_error = trio.ClosedResourceError("the connection is closed")

    async def closed_event(self) -> None:
        """Wait until ``closed`` settled, whatever the outcome."""
        await self.closed.settled_event()

    def statistics(self) -> Statistics:
        return Statistics(
            messages_sent=self.messages_sent,
            messages_received=self.messages_received,
            messages_discarded=self.inbox.discarded,
            bytes_sent=self._out.written,
            bytes_received=self.bytes_received,
            buffered_in=self.inbox.size,
            buffered_out=self._out.size,
            pings_sent=self.pings.pings_sent,
            pongs_received=self.pings.pongs_received,
            latency=self.pings.latency,
        )
