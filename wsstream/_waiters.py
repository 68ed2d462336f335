"""A light ParkingLot for one connection's few waiting tasks."""

from __future__ import annotations

from trio.lowlevel import (
    Abort,
    RaiseCancelT,
    Task,
    current_task,
    reschedule,
    wait_task_rescheduled,
)

__all__ = ["Waiters"]


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
        self._tasks: list[Task] = []

    def __bool__(self) -> bool:
        return bool(self._tasks)

    def __len__(self) -> int:
        return len(self._tasks)

    async def park(self) -> None:
        """Wait until woken; a checkpoint (cancellation removes the task)."""
        task = current_task()
        tasks = self._tasks
        tasks.append(task)

        def abort(_: RaiseCancelT) -> Abort:
            tasks.remove(task)
            return Abort.SUCCEEDED

        await wait_task_rescheduled(abort)

    def unpark(self) -> None:
        """Wake the task that parked first, if any."""
        if self._tasks:
            reschedule(self._tasks.pop(0))

    def unpark_all(self) -> None:
        """Wake every parked task."""
        tasks = self._tasks
        if tasks:
            self._tasks = []
            for task in tasks:
                reschedule(task)

