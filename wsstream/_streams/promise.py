"""A settle-once awaitable, the Python form of a JavaScript promise.

``opened`` and ``closed`` are :class:`Promise` objects: any number of tasks
may await one, before or after it settles, any number of times. Once settled
it gives the same value, or raises the same exception object, every time; the
traceback is reset before each raise so that it does not grow with every
await.
"""

from __future__ import annotations

from collections.abc import Generator
from typing import Any, Generic, TypeVar

import trio

from .._errors import InvalidStateError

T = TypeVar("T")

__all__ = ["Promise", "StartedPromise"]


class Promise(Generic[T]):
    """A value that becomes available once; await it to get it.

    Awaiting is a trio checkpoint. Cancelling a task that awaits a promise
    only stops that task's wait; the promise itself is unaffected.
    """

    __slots__ = ("_event", "_exc", "_settled", "_value")

    def __init__(self) -> None:
        # The Event is made only when a task has to wait: a server keeps two
        # promises per connection, mostly settled before anyone awaits them.
        self._event: trio.Event | None = None
        self._settled = False
        self._value: T | None = None
        self._exc: BaseException | None = None

    @property
    def settled(self) -> bool:
        """Whether the promise has a value or an exception."""
        return self._settled

    def _settle(self) -> None:
        self._settled = True
        event = self._event
        if event is not None:
            # Waiters hold the event themselves; later awaits need none.
            self._event = None
            event.set()

    def resolve(self, value: T) -> None:
        """Settle with ``value``; does nothing if already settled."""
        if not self._settled:
            self._value = value
            self._settle()

    def reject(self, exc: BaseException) -> None:
        """Settle with ``exc``; does nothing if already settled."""
        if not self._settled:
            self._exc = exc
            self._settle()

    def result(self) -> T:
        """The value without waiting; raises the exception if rejected.

        Raises :class:`RuntimeError` if the promise has not settled yet.
        """
        if not self._settled:
            raise RuntimeError("the promise has not settled yet")
        if self._exc is not None:
            raise self._exc.with_traceback(None)
        return self._value  # type: ignore[return-value]

    def exception(self) -> BaseException | None:
        """The exception it was rejected with, or ``None``; does not wait."""
        return self._exc

    async def settled_event(self) -> None:
        """Wait until settled, whatever the outcome; never raises it."""
        if self._settled:
            await trio.lowlevel.checkpoint()
            return
        if self._event is None:
            self._event = trio.Event()
        await self._event.wait()

    async def wait(self) -> T:
        """Wait until settled, then return the value or raise the exception."""
        await self.settled_event()
        return self.result()

    def __await__(self) -> Generator[Any, None, T]:
        return self.wait().__await__()

    def __repr__(self) -> str:
        if not self._settled:
            state = "pending"
        elif self._exc is not None:
            state = f"rejected with {self._exc!r}"
        else:
            state = f"resolved with {self._value!r}"
        return f"<Promise {state}>"


class StartedPromise(Promise[T]):
    """A client's promise: it can settle only once its connection started.

    Until :meth:`start` is called (by the client's ``async with``), awaiting
    it raises :class:`InvalidStateError` at once, with the message given,
    instead of waiting for ever: nothing would ever settle it. Reading it or
    passing it around is fine; a promise taken before ``async with`` may be
    awaited inside the block.
    """

    __slots__ = ("_not_started",)

    def __init__(self, not_started: str) -> None:
        super().__init__()
        self._not_started: str | None = not_started

    def start(self) -> None:
        """The connection runs: from now on, awaiting waits as usual."""
        self._not_started = None

    async def wait(self) -> T:
        if self._not_started is not None:
            raise InvalidStateError(self._not_started)
        return await super().wait()
