"""The connection engine: one protocol core, one transport, a few tasks.

Theory of operation
-------------------
A connection runs as one task, :meth:`Connection.run`, inside a nursery that
the user owns (the client's ``async with``, or ``serve``). That task opens
the stream (client), runs the opening handshake under ``open_timeout``, then
the connection's tasks run in a nursery whose scope is the run scope:

* the **reader**, the run task itself, reads the transport, feeds the core
  and lets it parse within budgets: at most 64 frames or 256 KiB of input per
  step, yielding to trio between steps (rule 4: one connection's input, even
  frames that carry nothing, cannot hold the others up), and no more decoded
  bytes than the readable has room for (rule 3: ``read_limit`` plus at most
  one message, whatever the compression ratio). Complete messages go to the
  inbox, the core's own replies (pongs, the Close echo) to the outbox. It
  never waits on the writer (rule 1), except for the one event the lifecycle
  needs when the peer's Close came first while a write was under way.
  On a plain socket, once it has handed a message to a task waiting in
  ``receive()``, it steps aside (:mod:`.handoff`): that task's next
  ``receive()`` reads and parses itself, so an answer makes no hop through
  the reader; reading comes back to the reader whenever no user reads.
* the **flusher**, started by the first frames it has to write (an idle
  connection never has one), writes everything queued at once (rule 2),
  lets a user with messages to answer go first so that replies to a burst
  share a write, and ends the transport when the core asks (after the
  closing handshake on a server, after failing the connection on either
  side). On a plain socket it only writes what the socket did not take at
  once, and the core's own frames: messages are written at the end of
  trio's scheduler pass (below).
* keepalive, when ``ping_interval`` is set, is not a task of its own: one
  task per trio run pings every connection that needs it (:mod:`.keepalive`).

``send()`` serialises into the outbox and returns; it first waits while the
outbox holds more than ``write_limit`` bytes. On a plain socket no task is
woken for it: the run's pass writer (:mod:`.passes`, a trio instrument)
writes every connection's new messages once per scheduler pass, after all
runnable tasks have run, deferring while the user is still producing. The
user's task also writes, synchronously and without waiting, when it is
about to wait in ``receive()`` for an answer to what it sent, or when a
``send()`` left the outbox over ``write_limit`` (rule 7: such a write
cannot be cut). Any other transport is written by the flusher.

How the connection stands and how it ended is the core's lifecycle; the
engine keeps no ending flags of its own. It turns the lifecycle's verdict
into what the user sees in one place, :meth:`Connection._error`: the same
exception object for ``closed``, the readable and the writable.

Deadlines are cancel scopes: ``open_timeout`` around the handshake, and
``close_timeout`` on the run scope as soon as a Close was sent or received
or the connection failed. A deadline or an abort cancels the run scope; the
stream is then closed and the verdict is what the lifecycle decided (1006
when nothing did).
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
from collections.abc import Awaitable, Callable
from typing import Any

import trio
from trio.lowlevel import checkpoint, wait_readable

from .._endpoints.client import Dialer
from .._endpoints.handshake import ClientHandshake, HandshakeFailure, ServerHandshake
from .._endpoints.http import Request
from .._errors import AbortError, HandshakeError, WebSocketError
from .._options import CloseInfo, Options, Statistics
from .._protocol import Core, Phase, Verdict
from .._streams.promise import Promise
from .._transport import (
    SCRATCH_SIZE,
    Buffer,
    SocketTransport,
    Transport,
    peer_address,
    transport_for,
)
from .handoff import Handoff
from .inbox import DIRECT_READ_MIN, PARSE_BYTES, PARSE_FRAMES, Inbox
from .keepalive import Keepalive
from .outbox import Outbox
from .passes import PassWriter
from .pings import PingTracker
from .writer import MAX_PENDING_CONTROL

__all__ = [
    "DIRECT_READ_MIN", "PARSE_BYTES", "PARSE_FRAMES", "RUN_TASK_NAME", "Connection",
]

_log = logging.getLogger("wsstream")

#: The run task's name, as trio would spell it: given, it is one shared str
#: instead of one built per connection.
RUN_TASK_NAME = "wsstream._engine.connection.Connection.run"

#: How long a forceful close (cancellation) lets the Close frame leave when
#: the socket cannot take it at once.
FORCEFUL_CLOSE_GRACE = 0.05

_OPEN = Phase.OPEN
_REMOTE_CLOSING = Phase.REMOTE_CLOSING
_ENDED = Phase.ENDED


def _deadline_after(seconds: float | None) -> float:
    return math.inf if seconds is None else trio.current_time() + seconds


class Connection(Handoff):
    """One WebSocket connection; see the module docstring."""

    # Slots: a connection is long-lived and numerous on a server; a dict
    # per instance would cost about 1.5 KiB.
    __slots__ = (
        "_abort_exc", "_connect", "_finished", "_forceful", "_handshake", "_held_marked",
        "_nursery", "_open_info", "_out", "_reader_done", "_scope",
        "_signal_scope", "_transport", "_write_limit",
        "closed", "core", "extensions", "id", "inbox", "messages_received",
        "opened", "options", "pings", "request", "stream", "subprotocol",
    )

    def __init__(
        self,
        handshake: ClientHandshake | ServerHandshake,
        options: Options,
        open_info: Callable[[Connection], Any],
        *,
        stream: trio.abc.Stream | None = None,
        connect: Callable[[], Awaitable[trio.abc.Stream]] | None = None,
    ) -> None:
        self._handshake: ClientHandshake | ServerHandshake | None = handshake
        self.core = Core(
            client=isinstance(handshake, ClientHandshake),
            max_message_size=options.max_message_size,
            max_streamed_size=options.max_streamed_size,
        )
        self.options = options
        self.stream = stream
        self._transport: Transport | None = None
        self._connect = connect
        self._open_info = open_info
        self.opened: Promise[Any] = Promise()
        self.closed: Promise[CloseInfo] = Promise()
        self.id = os.urandom(4).hex()
        self.extensions = ""
        self.subprotocol = ""
        self.request: Request | None = None

        self._scope = trio.CancelScope()
        self._nursery: trio.Nursery | None = None  # while the flusher may be started
        self._abort_exc: WebSocketError | None = None
        self._finished = False

        self.inbox = Inbox(options.read_limit)
        self.inbox.control = self
        self._held_marked = False
        self._out = Outbox()
        self._write_limit = options.write_limit
        self._reader_done = False
        # What send() raises: ClosedResourceError (we closed) or a
        # WebSocketError (the peer closed, or the connection failed).
        self._send_error: BaseException | None = None
        # The verdict last acted on, and the user's exceptions built from
        # the lifecycle (see _error).
        self._verdict_seen: Verdict | None = None
        self._errors: dict[tuple[int, str], WebSocketError] | None = None

        self.pings = PingTracker()
        self._ka_entry = None
        self._ka_ping = None
        self._ka_payload = b""
        self._ka_epoch = 0
        self._signal_scope: trio.CancelScope | None = None
        self._forceful = False

        self.messages_sent = 0
        self._parts = 0  # a message sent in parts: 1 + its frames queued
        self._passes = None
        self._pass_listed = False
        self._pass_sent = self._pass_taken = self._pass_deferred = 0
        self._pass_since = 0.0
        self._aside_task = None
        self._user_reading = False
        self._woke_user = False
        self._watch_mark = 0
        self.messages_received = 0
        self.bytes_received = 0

    @property
    def is_open(self) -> bool:
        return self.core.is_open

    # ------------------------------------------------------------------
    # The connection's task

    async def run(self) -> None:
        """Open, run and close the connection; never raises but Cancelled.

        Settles ``opened`` and ``closed``. Cancellation of the caller closes
        the connection forcefully (see :meth:`close_forcefully`).
        """
        try:
            if self._abort_exc is None:
                async with trio.open_nursery() as nursery:
                    self._adopt_scope(nursery.cancel_scope)
                    if await self._open():
                        self._start_tasks(nursery)
                        try:
                            await self._reader()
                            self._reader_finished()
                        finally:
                            # No flusher is started once the reader is done.
                            self._out.start_flusher = None
                            self._nursery = None
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
        transport = self._transport
        assert transport is not None
        if transport.direct:
            self.inbox.before_wait = self._write_own
            # Messages are written at the end of the scheduler pass that
            # queued them (passes.py), not by waking the flusher.
            self._passes = PassWriter.join()
        # The flusher starts with the first frames to write: an idle
        # connection never needs it.
        if self._out or self.core.eof_wanted:
            nursery.start_soon(self._flusher)
        else:
            self._nursery = nursery
            self._out.start_flusher = self._start_flusher
        if self.options.ping_interval is not None:
            self._ka_entry = Keepalive.add(self, trio.current_time() + self.options.ping_interval)

    def _reader_finished(self) -> None:
        self._arm_close_deadline()
        self._reader_done = True
        out = self._out
        if not out:
            out.start_flusher = None  # nothing to write: none is started
        # The flusher writes what is left (the pass writer stops with the
        # connection), then ends.
        out.wake_flusher()
        # Keepalive has nothing left to do; the flusher finishes.
        self._leave_keepalive()

    async def _open(self) -> bool:
        """The opening handshake; returns True if the connection is open."""
        scope = trio.CancelScope(deadline=_deadline_after(self.options.open_timeout))
        failure: WebSocketError | None = None
        handshake = self._handshake
        self._handshake = None  # not kept for the connection's life
        assert handshake is not None
        result = None
        with scope:
            try:
                if self.stream is None:
                    assert self._connect is not None
                    self.stream = await self._connect()
                if isinstance(handshake, ServerHandshake):
                    outcome = await handshake.run(self.stream, peer_address(self.stream))
                else:
                    outcome = await handshake.run(self.stream)
                if isinstance(outcome, HandshakeFailure):
                    # The server answered the request with an HTTP error.
                    failure = HandshakeError(
                        str(outcome), status=outcome.status,
                        headers=outcome.headers, body=outcome.body,
                    )
                else:
                    result = outcome
            except HandshakeFailure as exc:
                failure = HandshakeError(
                    str(exc), status=exc.status, headers=exc.headers, body=exc.body,
                    proxy=exc.proxy,
                )
                # EOFError when the server closed during the handshake.
                failure.__cause__ = exc.__cause__
            except trio.BrokenResourceError as exc:  # TLS failures come this way too
                # Our dialler words its own errors (TLS with host:port...);
                # trio's say little beyond their cause.
                cause = str(exc) or exc.__cause__ or repr(exc)
                failure = HandshakeError(f"the connection broke during the handshake: {cause}")
                failure.__cause__ = exc
            except OSError as exc:
                failure = HandshakeError(f"could not connect: {exc}")
                failure.__cause__ = exc
        if self._signal_scope is not None:
            self._signal_scope.cancel()
        if scope.cancelled_caught and failure is None and self._abort_exc is None:
            # A client still waiting for its proxy says so: the proxy is
            # then the one to look at, not the server.
            proxy = (
                self._connect.waiting_for_proxy if isinstance(self._connect, Dialer) else None
            )
            where = f", waiting for the proxy {proxy}" if proxy is not None else ""
            failure = HandshakeError(
                f"the opening handshake timed out after {self.options.open_timeout} s{where}",
                proxy=proxy,
            )
            failure.__cause__ = trio.TooSlowError()
        if failure is not None and self._abort_exc is None:
            self._abort_exc = failure
        if result is None or self._abort_exc is not None:
            return False
        options = self.options
        self.extensions = result.extensions
        self.subprotocol = result.subprotocol
        self.request = result.request
        deflate = options.deflate
        if deflate is not None and result.deflate is not None:
            self.core.open(
                result.deflate, level=deflate.level, mem_level=deflate.mem_level,
                min_size=deflate.min_size,
            )
        else:
            self.core.open(None)
        self._transport = transport_for(self.stream)  # type: ignore[arg-type]
        self.opened.resolve(self._open_info(self))
        if result.rest:  # frames right behind the handshake
            self.core.receive_data(result.rest)
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
        core, inbox = self.core, self.inbox
        life = core.lifecycle
        transport = self._transport
        assert transport is not None
        direct = transport if isinstance(transport, SocketTransport) else None
        while True:
            if inbox.full:
                # The core borrows what it was given until it parses it: the
                # read buffer is shared, so it must own it before waiting.
                core.own_input()
                await inbox.wait_for_room()
            if core.held:
                await self._wait_decision()
                continue
            more = core.parse(PARSE_FRAMES, PARSE_BYTES, inbox.room())
            self._process()
            if core.held:
                continue  # the top of the loop marks it and waits
            phase = life.phase
            if phase is _REMOTE_CLOSING:
                await self._settle_remote_close()
                phase = life.phase
            if phase is _ENDED:
                return
            if more:
                # A budget ran out: let the others run before the next step.
                await checkpoint()
                continue
            if transport.must_yield:
                # The socket may hold more: yield before reading it (when
                # drained, the wait for more is the yield).
                await checkpoint()
            if direct is not None and (target := core.input_buffer(DIRECT_READ_MIN)):
                with target:
                    size = await direct.receive_into(target)
                if size:
                    self.bytes_received += size
                    core.input_filled(size)
                else:
                    core.receive_eof()
                continue
            if direct is not None and self._may_step_aside(direct):
                # The user this parse woke reads next (handoff.py).
                await self._step_aside()
                continue
            if direct is None:
                data: Buffer | None = await transport.receive(inbox.read_size(SCRATCH_SIZE))
            else:
                # The wait in this frame, the read without one: an idle
                # connection holds no more frames than it must.
                if not direct.must_yield and direct.fd >= 0:
                    try:
                        await wait_readable(direct.fd)
                    except (OSError, trio.BrokenResourceError, trio.ClosedResourceError):
                        core.receive_eof()  # as receive() returns b""
                        continue
                data = direct.read_ready(inbox.read_size(SCRATCH_SIZE))
            if data is None:
                continue  # woken with nothing there: wait again
            self._feed(data)

    def _process(self) -> None:
        """Move what the core produced to the inbox and the outbox."""
        core = self.core
        messages = core.take_messages()
        if messages:
            self.messages_received += len(messages)
            if self.inbox.put(messages):
                self._woke_user = True
        if core.pongs:
            self.pings.on_pongs(core.take_pongs())
        replies = core.data_to_send()
        out = self._out
        if replies:
            out.queue_control(replies)
            if out.control > MAX_PENDING_CONTROL:
                self._fail(1008, "too many control frames left unread")
        if core.eof_wanted and not out:
            out.wake_flusher()
        if core.lifecycle.phase is not _OPEN:  # nothing to act on while open
            self._on_lifecycle()

    async def _wait_decision(self) -> None:
        """The core holds a message over max_message_size: its place in the
        inbox is marked, and reading waits for the user's next call to
        decide (stream it, or fail with 1009); nobody reading, or closing,
        drops it."""
        core, inbox = self.core, self.inbox
        if inbox.discard or inbox.closing:
            self._held_marked = False
            core.release(None)
            return
        if not self._held_marked:
            self._held_marked = True
            inbox.put_held()
        core.own_input()
        await inbox.wait_decision()

    # StreamControl: the inbox's requests, from the user's task.

    def release_held(self, stream: bool | None) -> None:
        self._held_marked = False
        self.core.release(stream)
        self._process()
        self.inbox.wake_reader()

    def stream_next(self) -> None:
        self.core.stream_message()
        self._process()
        self.inbox.wake_reader()

    def abandon_stream(self) -> None:
        self.core.drop_message()
        self.inbox.wake_reader()

    # ------------------------------------------------------------------
    # Used by the streams (send, send_nowait and ping are the Writer's)

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
        chunks = self.core.send_close(code, reason)
        if chunks:
            self._out.queue_control(list(chunks))
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
        if self.opened.settled:
            chunks = self.core.send_close(code, reason)
            if chunks:
                self._out.queue_control(list(chunks))
        self._forceful = True

    def _arm_close_deadline(self) -> None:
        deadline = _deadline_after(self.options.close_timeout)
        if deadline < self._scope.deadline:
            self._scope.deadline = deadline

    # ------------------------------------------------------------------
    # The end

    async def _finish(self) -> None:
        """Close the stream and settle everything; runs shielded."""
        out = self._out
        transport = self._transport
        self.inbox.before_wait = None
        self.inbox.read_here = None
        self._leave_keepalive()
        out.sender = None
        if self._passes is not None:
            self._passes.leave()
            self._passes = None
        if transport is not None:
            if self._forceful and out and not out.inflight and not out.broken:
                # A last chance for the Close frame (and what is before it).
                with trio.move_on_after(FORCEFUL_CLOSE_GRACE), contextlib.suppress(
                    trio.BrokenResourceError, trio.ClosedResourceError, trio.BusyResourceError
                ):
                    await transport.stream.send_all(b"".join(out.pending_chunks()))
            transport.stop()
            if self._scope.cancelled_caught and not self._forceful and (
                trio.current_time() >= self._scope.deadline
            ):
                # close_timeout expired: reset, so that a peer that stopped
                # reading learns at once that we are gone.
                transport.reset_on_close()
        if self.stream is not None:
            await trio.aclose_forcefully(self.stream)
        self._finished = True
        core = self.core
        if not self.opened.settled and self._abort_exc is None:
            self._abort_exc = WebSocketError._build(
                "the connection closed during the handshake", 1006
            )
        core.abort(self._abort_exc)
        verdict = core.lifecycle.verdict
        assert verdict is not None
        if verdict.clean:
            self.closed.resolve(CloseInfo(verdict.code, verdict.reason))
            self.inbox.finish(trio.EndOfChannel(), replace_clean_end=False)
            if self._send_error is None:
                self._send_error = trio.ClosedResourceError("the connection is closed")
        else:
            error = self._error(verdict)
            self.opened.reject(error)
            self.closed.reject(error)
            self._set_ends(error, error)
        out.clear()
        self.pings.release_all()
        self.inbox.wake_all()
        out.wake_all()

    def _leave_keepalive(self) -> None:
        entry = self._ka_entry
        if entry is not None:
            self._ka_entry = None
            Keepalive.remove(entry)  # the heap keeps no closed connection alive

    async def closed_event(self) -> None:
        """Wait until ``closed`` settled, whatever the outcome."""
        await self.closed.settled_event()

    @property
    def bytes_written(self) -> int:
        """Bytes written to the transport: ``statistics().bytes_sent``, read
        alone (ServerStatistics sums it over every open connection)."""
        return self._out.written

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
