"""Writes at the end of trio's scheduler passes, for plain sockets.

Theory of operation
-------------------
trio runs every runnable task once per pass, then asks the operating system
for I/O events (``epoll_wait``), sleeping if nothing is runnable. Just
before that question it calls the ``before_io_wait`` hook of the run's
instruments (a public trio API). At that moment every task that could add
to this pass's writes has run: it is the natural point to write them, once
per connection, in one non-blocking system call, and with no task switch.

So on the direct path (a plain socket, see :mod:`wsstream._transport`),
``send()`` does not wake the flusher task: it lists its connection with this
run's :class:`PassWriter` (once until the write), and the hook hands each
listed connection's outbox to the socket (``Outbox.write_now``: synchronous,
never cuts a frame, engine rule 7). Waking the flusher was a reschedule, a
task step and a park per pass, about 5 us: a fifth of a trio client's CPU
per small message.

**Deferral** (rule 2, batch writes). While trio has more to run at once (the
hook's timeout is 0) and the connection's user made progress during the
pass (sent a message, or took one while more wait to be answered), its write
waits for the next pass: at most :data:`FLUSH_DEFER_PASSES` passes and
:data:`FLUSH_DEFER_SECONDS` from the pass it was listed in (real time: a pass
that another task makes long, with blocking work, ends the wait), and only
while the outbox is within ``write_limit``. A task that sends one message per
pass (a ``trio.Semaphore`` in the loop yields on every ``acquire``) or
answers a burst over several passes gets one write for the lot. When trio is
about to sleep (timeout > 0), everything listed is written. trio also asks
with a timeout of 0 when nothing is runnable but a task waits in
``wait_all_tasks_blocked`` or a clock autojumps at once: then nothing is
deferred, since trio is about to declare everything blocked or to jump the
clock, and a write held back then would let a ``MockClock`` jump past a
message that was already sent. The one public way to tell the two apart,
``trio.lowlevel.current_statistics()``, counts every descriptor trio waits
on (linear in the connections), so it is asked only under a ``MockClock``
or while at most :data:`EXACT_IDLE_CHECK_USERS` connections use the writer;
beyond that a timeout of 0 counts as busy, and a ``wait_all_tasks_blocked``
may return one pass (at most :data:`FLUSH_DEFER_SECONDS`) before a write.

**What the socket does not take** (it is full, or broken) is the flusher's:
it waits for the socket to become writable. The hook cannot wake a task
itself (trio chose how long to sleep before calling it), so it asks trio to
run the wake-up soon (``TrioToken.run_sync_soon``, which also cuts that
sleep short). While the flusher waits for the socket, the hook leaves the
connection alone.

**Who reads.** The same hook checks, once per pass, the connections whose
reader stands aside for a user in ``receive()`` (:mod:`.handoff`), and hands
reading back to the reader when no user reads.

A connection joins the run's writer when its data phase starts on a plain
socket and leaves it when it finishes; the instrument is installed while
at least one connection uses it, so a program without one pays nothing.
"""

from __future__ import annotations

import contextlib
import logging
import sys
from collections.abc import Callable
from typing import Protocol

import trio

__all__ = [
    "EXACT_IDLE_CHECK_USERS", "FLUSH_DEFER_PASSES", "FLUSH_DEFER_SECONDS", "PassWriter",
    "PassWritten", "ReadWatched",
]

_log = logging.getLogger("wsstream")

#: At most this many passes may a write wait for its user's next messages.
FLUSH_DEFER_PASSES = 64

#: ... and at most this long (seconds of real time since it was listed): a
#: pass can be long when another task blocks, and the passes bound alone
#: then held messages for hundreds of milliseconds.
FLUSH_DEFER_SECONDS = 0.001

#: Up to this many connections, a timeout of 0 is checked against trio's
#: run queue (see the module docstring): about 30 ns a descriptor.
EXACT_IDLE_CHECK_USERS = 64


class PassWritten(Protocol):
    """What the pass writer asks of a connection (the engine's Writer)."""

    def end_of_pass(self, busy: bool) -> bool:
        """Write what is pending, or not yet; returns whether to stay listed.
        ``busy``: trio asked with a timeout of 0 (a write may wait, if
        :meth:`PassWriter.runnable` agrees)."""

    def write_later(self) -> None:
        """The pass writer failed on this connection: the flusher writes."""


class ReadWatched(Protocol):
    """A connection whose reader stands aside (handoff.py)."""

    def check_reading(self, idle: bool, passes: int) -> bool:
        """Hand reading back if no user reads; returns whether to keep
        watching. ``idle``: trio is about to sleep."""


_writers: trio.lowlevel.RunVar[PassWriter | None] = trio.lowlevel.RunVar("wsstream.pass_writer")


class PassWriter(trio.abc.Instrument):
    """One per trio run while connections use it; see the module docstring."""

    __slots__ = ("_mock_clock", "_runnable", "_users", "listed", "passes", "token", "watched")

    def __init__(self) -> None:
        self.listed: list[PassWritten] = []
        # Connections whose reader stands aside, to check that a user reads
        # (handoff.py), and the count of ends of pass that check counts in.
        self.watched: list[ReadWatched] = []
        self.passes = 0
        self.token = trio.lowlevel.current_trio_token()
        self._users = 0
        self._runnable: bool | None = None  # this pass's answer, once asked
        # A test's clock (it may autojump): always tell idle from busy. (A
        # MockClock means trio.testing is imported; wsstream does not import it.)
        testing = sys.modules.get("trio.testing")
        self._mock_clock = testing is not None and isinstance(
            trio.lowlevel.current_clock(), testing.MockClock
        )

    @classmethod
    def join(cls) -> PassWriter:
        """The current run's writer (installed if it was not)."""
        writer = _writers.get(None)
        if writer is None:
            writer = cls()
            trio.lowlevel.add_instrument(writer)
            _writers.set(writer)
        writer._users += 1
        return writer

    def leave(self) -> None:
        """A connection is done with it: the last one uninstalls it."""
        self._users -= 1
        if self._users <= 0 and _writers.get(None) is self:
            _writers.set(None)
            # Only the listed connections still need it, and they have ended.
            self.listed = []
            self.watched = []
            # KeyError: trio removed it after an error (it logged that).
            with contextlib.suppress(KeyError):
                trio.lowlevel.remove_instrument(self)

    def before_io_wait(self, timeout: float) -> None:
        self.passes += 1
        self._runnable = None
        if self.watched:
            self._check_watched(timeout > 0)
        listed = self.listed
        if not listed:
            return
        self.listed = []
        kept: list[PassWritten] = []
        busy = timeout <= 0
        interrupt: BaseException | None = None
        for conn in listed:
            try:
                if conn.end_of_pass(busy):
                    kept.append(conn)
            except BaseException as exc:
                # Anything leaving this hook makes trio remove the instrument,
                # and every connection's writes with it: this connection's
                # flusher writes instead. Exception is a bug of ours (logged);
                # anything else (SystemExit from a signal handler that ran
                # here) is the program's, re-raised in the run below.
                conn.write_later()
                if isinstance(exc, Exception):
                    _log.exception("wsstream: writing at the end of a pass failed")
                elif interrupt is None:
                    interrupt = exc
        if kept:
            if self.listed:
                kept += self.listed
            self.listed = kept
        if interrupt is not None:
            self._reraise_soon(interrupt)

    def _check_watched(self, idle: bool) -> None:
        watched = self.watched
        self.watched = []
        passes = self.passes
        kept: list[ReadWatched] = []
        for conn in watched:
            try:
                if conn.check_reading(idle, passes):
                    kept.append(conn)
            except Exception:  # a bug of ours: never let it remove the instrument
                _log.exception("wsstream: handing reading back failed")
        if kept:
            kept += self.watched
            self.watched = kept

    def runnable(self) -> bool:
        """Whether trio has tasks to run at once, asked by a connection about
        to defer its write (once per pass, and only then). A timeout of 0
        with nothing runnable is trio about to find every task blocked
        (wait_all_tasks_blocked, an autojumping clock): then nothing waits."""
        runnable = self._runnable
        if runnable is None:
            runnable = self._runnable = (
                self._users > EXACT_IDLE_CHECK_USERS and not self._mock_clock
            ) or trio.lowlevel.current_statistics().tasks_runnable > 0
        return runnable

    def _reraise_soon(self, exc: BaseException) -> None:
        """Raise ``exc`` out of the run (trio ends it with TrioInternalError
        whose cause is ``exc``, as for anything raised outside a task),
        instead of letting trio swallow it with this instrument."""

        def reraise() -> None:
            raise exc

        with contextlib.suppress(trio.RunFinishedError):
            self.token.run_sync_soon(reraise)

    def wake_soon(self, wake: Callable[[], object]) -> None:
        """Run ``wake()`` at the start of the next pass, and make sure that
        pass comes at once (see the module docstring)."""
        with contextlib.suppress(trio.RunFinishedError):  # the run is ending
            self.token.run_sync_soon(wake)
