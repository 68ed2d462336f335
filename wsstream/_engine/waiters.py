"""A light ParkingLot for one connection's few waiting tasks."""

from __future__ import annotations

from collections.abc import Awaitable

from trio.lowlevel import (
    Abort,
    RaiseCancelT,
    Task,
    current_task,
    reschedule,
    wait_task_rescheduled,
)

__all__ = ["Waiters"]


class _Unpark:
    """A parked task's abort function: cancellation takes it off the list.

    An object with two slots instead of a closure (a function and its two
    cells): about 0.15 KiB less for as long as the task is parked.
    """

    __slots__ = ("task", "tasks")

    def __init__(self, tasks: list[Task], task: Task) -> None:
        self.tasks = tasks
        self.task = task

    def __call__(self, _: RaiseCancelT) -> Abort:
        self.tasks.remove(self.task)
        return Abort.SUCCEEDED


class Waiters:
    """Tasks parked until another task wakes them, first parked first woken.

    The same contract as :class:`trio.lowlevel.ParkingLot` for what the
    engine uses (``park``, ``unpark``, ``unpark_all``, truthiness), in a
    list: a connection has at most a handful of waiters, and trio's lot (an
    attrs object with an OrderedDict, plus a record per parked task) cost
    about 1 KiB per idle connection. A cancelled ``park()`` leaves the list
    as it was.
    """

    __slots__ = ("_tasks",)

    def __init__(self) -> None:
        # Made by the first park(): most lots of an idle connection stay
        # empty, and an empty list is 56 bytes.
        self._tasks: list[Task] | None = None

    def __bool__(self) -> bool:
        return bool(self._tasks)

    def __len__(self) -> int:
        return len(self._tasks) if self._tasks else 0

    def park(self) -> Awaitable[None]:
        """Wait until woken; a checkpoint (cancellation removes the task).

        Await it at once: the task is parked when called. Not a coroutine
        of its own, so a parked task holds one frame less (about 0.2 KiB).
        """
        task = current_task()
        tasks = self._tasks
        if tasks is None:
            tasks = self._tasks = []
        tasks.append(task)
        return wait_task_rescheduled(_Unpark(tasks, task))  # noqa: ASYNC105 (the caller awaits it)

    def unpark(self) -> None:
        """Wake the task that parked first, if any."""
        if self._tasks:
            reschedule(self._tasks.pop(0))

    def unpark_all(self) -> None:
        """Wake every parked task."""
        tasks = self._tasks
        if tasks:
            self._tasks = None
            for task in tasks:
                reschedule(task)

