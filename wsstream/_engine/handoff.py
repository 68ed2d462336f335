"""The reader steps aside: a user waiting in ``receive()`` reads the socket.

A mixin of :class:`~wsstream._engine.connection.Connection`, like
:class:`~wsstream._engine.writer.Writer`.

Theory of operation
-------------------
On a plain socket, a message that the reader task reads reaches a user who
waits in ``receive()`` one scheduler pass later: the reader parses it and
wakes the user, trio asks the operating system for events once more
(``epoll_wait`` with no timeout), then runs the user. On each side of a
request/response exchange that pass is on the critical path: measured on
loopback, a bare trio echo server given that one hop answers 20-40 us later
(100 us round trip becomes 120-140), while it costs little CPU.

So when the reader has just handed a message to a waiting user and the
socket is drained, it *steps aside*: it parks, and sets
``Inbox.read_here``. The next ``receive()`` that finds nothing buffered
then reads the socket itself, in the user's task: it waits for the socket,
reads, and parses within the same budgets as the reader, so the message it
returns has made no hop. What it parses on the way (pings, pongs, a Close)
is handled as the reader would (:meth:`Connection._process`).

Anything out of the ordinary hands reading back to the reader (it is woken
and goes on from the top of its loop): the user's wait is cancelled; a read
filled the buffer (the socket may hold more: the reader yields between
reads); a parse budget ran out; a large payload can be read directly; the
readable is full, a message is held or streamed; the connection is no
longer open; the end of the stream.

**Nobody is left reading.** While the reader is aside, the user may leave
``receive()`` with its message and not come back (it awaits something else,
or stopped reading). The run's pass writer (:mod:`.passes`, an instrument
called before every wait for I/O) then hands reading back: at once when trio
is about to sleep (or to find every task blocked: a ``MockClock`` must not
jump past unread input), else after the user's own pass and one more (a
task that answers a message and comes back to ``receive()`` in the same
step never gives reading back). So the socket is watched by the reader or by a user in
``receive()`` whenever trio sleeps, and keepalive, the closing handshake and
the peer's pings behave as they do with the reader reading.

Only one task reads at a time: ``read_here`` is set only while the reader is
parked, and a second ``receive()`` waits for messages as before while
another one reads.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from trio.lowlevel import Abort, RaiseCancelT, Task, current_task, reschedule, wait_task_rescheduled

from .._protocol import Phase
from .._transport import SCRATCH_SIZE, Buffer, SocketTransport
from .inbox import DIRECT_READ_MIN, PARSE_BYTES, PARSE_FRAMES
from .writer import Writer

__all__ = ["Handoff"]

#: Handing back because the user left ``receive()`` waits until this many
#: ends of pass went by (the user's own pass and one more) while trio has
#: tasks to run; when it is about to sleep, it is done at once.
HAND_BACK_PASSES = 2

_OPEN = Phase.OPEN


class Handoff(Writer):
    """The reader's side of the handoff, and ``Inbox.read_here``."""

    __slots__ = ("_aside_task", "_user_reading", "_watch_mark", "_woke_user", "bytes_received")

    # Set by Connection.__init__: the parked reader (while aside); whether a
    # user's receive() is reading now; the pass writer's pass count when
    # this connection was last watched; whether the reader's last parse
    # handed messages to a task waiting for them.
    _aside_task: Task | None
    _user_reading: bool
    _watch_mark: int
    _woke_user: bool

    bytes_received: int  # counted by both readers

    # The Connection's, used here.
    _finished: bool

    if TYPE_CHECKING:
        def _process(self) -> None: ...

    def _feed(self, data: Buffer) -> None:
        """Give the core what a read brought (``b""``: the end)."""
        if data:
            self.bytes_received += len(data)
            self.core.receive_data(data)
        else:
            self.core.receive_eof()

    def _may_step_aside(self, transport: SocketTransport) -> bool:
        """At the reader's read point, with the socket drained: whether to
        leave the next read to the user it just woke."""
        if not self._woke_user:
            return False
        self._woke_user = False
        inbox = self.inbox
        return (
            self._passes is not None
            and not transport.must_yield
            and self.core.lifecycle.phase is _OPEN
            and not self.core.held
            and not inbox.streaming
            and not inbox.full
        )

    async def _step_aside(self) -> None:
        """The reader parks until reading is handed back (or it is
        cancelled with the connection)."""
        passes = self._passes
        assert passes is not None
        self._aside_task = current_task()
        self.inbox.read_here = self._read_here
        self._watch(passes.passes)
        try:
            await wait_task_rescheduled(self._abort_aside)
        finally:
            self._aside_task = None
            self.inbox.read_here = None

    def _abort_aside(self, _: RaiseCancelT) -> Abort:
        # Cancelled (the connection ends): nobody may reschedule it now.
        self._aside_task = None
        return Abort.SUCCEEDED

    def _watch(self, mark: int) -> None:
        """Have the pass writer check that somebody reads (module docstring)."""
        passes = self._passes
        if passes is not None:
            self._watch_mark = mark
            passes.watched.append(self)

    def _hand_back(self) -> None:
        """The reader reads again; a no-op if it is not aside."""
        if self.inbox.read_here is not None:
            self.inbox.read_here = None
            self._wake_aside()

    def _wake_aside(self) -> None:
        task = self._aside_task
        if task is not None:
            self._aside_task = None
            reschedule(task)

    def check_reading(self, idle: bool, passes: int) -> bool:
        """The pass writer's call for a watched connection: hand reading
        back if no user reads; returns whether to keep watching."""
        if self.inbox.read_here is None or self._user_reading:
            # Handed back already, or a user reads (it is watched again
            # when it leaves receive()).
            return False
        writer = self._passes
        assert writer is not None
        if (
            not idle
            and passes - self._watch_mark < HAND_BACK_PASSES
            # A timeout of 0 with nothing runnable: trio is about to find
            # every task blocked or jump a MockClock, which must not happen
            # with input left unread.
            and writer.runnable()
        ):
            return True
        self.inbox.read_here = None
        if idle:
            # trio chose to sleep before asking: a task rescheduled now would
            # wait for that sleep; this wakes it at once.
            writer.wake_soon(self._wake_aside)
        else:
            self._wake_aside()
        return False

    async def _read_here(self) -> bool:
        """``Inbox.read_here``: wait for the socket, read and parse, in the
        calling task. Returns False if it cannot (another task reads); True
        after a read (it waited), whether or not a message came."""
        if self._user_reading:
            return False
        transport = self._transport
        assert isinstance(transport, SocketTransport)
        inbox = self.inbox
        if transport.must_yield:
            self._hand_back()
            return False
        self._user_reading = True
        try:
            data = await transport.receive(inbox.read_size(SCRATCH_SIZE))
        except BaseException:
            # Cancelled (or interrupted) while waiting: nothing was read.
            self._user_reading = False
            self._hand_back()
            raise
        self._user_reading = False
        if self._finished or transport.fd < 0:
            return True  # the connection ended meanwhile: the inbox says how
        core = self.core
        self._feed(data)
        more = core.parse(PARSE_FRAMES, PARSE_BYTES, inbox.room())
        self._process()
        if (
            more
            or not data
            or transport.must_yield
            or core.lifecycle.phase is not _OPEN
            or core.held
            or inbox.streaming
            or inbox.full
            or core.input_buffer(DIRECT_READ_MIN) is not None
        ):
            self._hand_back()
        elif self.inbox.read_here is not None and self._passes is not None:
            # This task may leave receive() now: see that somebody reads.
            self._watch(self._passes.passes)
        return True
