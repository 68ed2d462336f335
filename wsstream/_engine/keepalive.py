"""Keepalive pings for every connection of a trio run, from one task.

Theory of operation
-------------------
With ``ping_interval`` set (the default, 20 s), each connection is pinged
that long after the pong of its previous ping, and fails with 1011 when a
pong takes longer than ``ping_timeout``. A task per connection doing this
(sleep, ping, wait) cost about 3.6 KiB per idle connection, a fifth of what
an idle connection holds: a task, its frames, and two cancel scopes.

So one :class:`Keepalive` per trio run does it for all of them, from one
system task (``trio.lowlevel.spawn_system_task``): a heap of when each
connection needs attention next, and a sleep until the earliest. At its
time a connection gets a step (:meth:`Pinged.keepalive_step`, synchronous):
send a ping, or check the ping it sent. A ping is checked when its
``ping_timeout`` is up (with no timeout, every ``ping_interval``): if its
pong came, the next ping is due ``ping_interval`` after that pong (at once
if that is past); if not, the connection fails, unless our own backpressure
may be what holds the pong unread (the readable paused reading meanwhile),
in which case it tries again after ``ping_interval``.

A connection that ends empties its entry (it holds no reference to the
connection any more): the heap never keeps a closed connection alive, and
empty entries at its top are dropped at once, so that the task never
sleeps until the time of a connection that is gone; the others go when
their time comes (at most one per connection that ended within the last
``ping_interval`` or ``ping_timeout``). The task lives as long as the run,
sleeping when no connection has a keepalive, and costs nothing between
pings.
"""

from __future__ import annotations

import heapq
import logging
import math
from typing import Protocol

import trio

__all__ = ["Entry", "Keepalive", "Pinged"]

_log = logging.getLogger("wsstream")


class Pinged(Protocol):
    """What the keepalive asks of a connection (the engine's Writer)."""

    def keepalive_step(self, now: float) -> float | None:
        """Ping, or check the last ping; returns when to come back
        (``None``: never, the connection is done)."""


class Entry:
    """A connection's place in the heap: its time, and the connection (or
    ``None`` once it ended)."""

    __slots__ = ("conn", "when")

    def __init__(self, when: float, conn: Pinged) -> None:
        self.when = when
        self.conn: Pinged | None = conn

    def __lt__(self, other: Entry) -> bool:
        return self.when < other.when


_keepalives: trio.lowlevel.RunVar[Keepalive | None] = trio.lowlevel.RunVar(
    "wsstream.keepalive", None
)


class Keepalive:
    """One per trio run with a keepalive connection; see the module docstring."""

    __slots__ = ("_heap", "_scope")

    def __init__(self) -> None:
        self._heap: list[Entry] = []
        # The sleep's scope: its deadline is the earliest entry's time.
        self._scope: trio.CancelScope | None = None

    @classmethod
    def add(cls, conn: Pinged, when: float) -> Entry:
        """Give ``conn`` a step at ``when``; returns its entry (empty it
        with :meth:`Entry.conn` = None when the connection ends)."""
        keepalive = _keepalives.get()
        if keepalive is None:
            keepalive = cls()
            _keepalives.set(keepalive)
            trio.lowlevel.spawn_system_task(keepalive._run, name="wsstream keepalive")
        entry = Entry(when, conn)
        keepalive._push(entry)
        return entry

    @staticmethod
    def remove(entry: Entry) -> None:
        """The connection of ``entry`` ended: it gets no more steps. Empty
        entries at the top of the heap go at once, so that the task never
        sleeps until the time of a connection that is gone (a ``MockClock``
        would jump to it)."""
        entry.conn = None
        keepalive = _keepalives.get()
        if keepalive is None:
            return
        heap = keepalive._heap
        if not heap or heap[0].conn is not None:
            return
        while heap and heap[0].conn is None:
            heapq.heappop(heap)
        if keepalive._scope is not None:
            keepalive._scope.deadline = heap[0].when if heap else math.inf

    def _push(self, entry: Entry) -> None:
        heapq.heappush(self._heap, entry)
        scope = self._scope
        if scope is not None and entry.when < scope.deadline:
            scope.deadline = entry.when

    async def _run(self) -> None:
        heap = self._heap
        while True:
            with trio.CancelScope(deadline=heap[0].when if heap else math.inf) as self._scope:
                await trio.sleep_forever()
            self._scope = None
            now = trio.current_time()
            while heap and heap[0].when <= now:
                entry = heapq.heappop(heap)
                conn = entry.conn
                if conn is None:
                    continue  # the connection ended
                try:
                    when = conn.keepalive_step(now)
                except Exception:
                    # A bug of ours: this connection loses its keepalive,
                    # the others keep theirs (an exception here would end
                    # the run).
                    _log.exception("wsstream: keepalive failed")
                    when = None
                if when is None:
                    entry.conn = None
                else:
                    entry.when = when
                    heapq.heappush(heap, entry)
