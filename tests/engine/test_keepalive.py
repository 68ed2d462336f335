"""Keepalive from one task per run (wsstream/_engine/keepalive.py).

Every connection with ``ping_interval`` used to run a keepalive task of its
own (about 3.6 KiB per idle connection); one system task per trio run now
pings them all from a heap. These tests pin the schedule each connection
keeps, that no task is added per connection, and that a closed connection
is not kept alive by the heap.
"""

from __future__ import annotations

import contextlib
import math
from typing import Any

import pytest
import trio
import trio.testing

import wsstream
from wsstream._engine.keepalive import _keepalives
from wsstream.testing import open_pair


async def echo(wss: wsstream.WebSocketStream) -> None:
    readable, writable, *_ = await wss.opened
    async for message in readable:
        await writable.send(message)


def _all_tasks() -> int:
    count = 0
    stack = [trio.lowlevel.current_root_task()]
    while stack:
        task = stack.pop()
        assert task is not None
        count += 1
        for nursery in task.child_nurseries:
            stack.extend(nursery.child_tasks)
    return count


async def _tasks_with_pairs(n: int, **options: Any) -> int:
    async with contextlib.AsyncExitStack() as stack:
        for _ in range(n):
            wss = await stack.enter_async_context(
                open_pair(echo, server_options=options, **options)
            )
            await wss.opened
        await trio.testing.wait_all_tasks_blocked()
        return _all_tasks()


async def test_no_task_per_connection(autojump_clock: Any) -> None:
    without = await _tasks_with_pairs(10, ping_interval=None)
    with_keepalive = await _tasks_with_pairs(10, ping_interval=20)
    # 20 connections with keepalive (both ends of 10 pairs): one task more in
    # all (the run's keepalive), not 20.
    assert with_keepalive - without <= 1, (without, with_keepalive)


async def test_each_connection_keeps_its_own_interval(autojump_clock: Any) -> None:
    async with open_pair(echo, ping_interval=5, ping_timeout=2) as fast, open_pair(
        echo, ping_interval=7, ping_timeout=2
    ) as slow:
        await fast.opened
        await slow.opened
        start = trio.current_time()
        await trio.sleep(35.5)
        assert trio.current_time() - start == pytest.approx(35.5)
        # Pings at 5, 10, ... 35 and 7, 14, ... 35; each answered.
        assert fast.statistics().pings_sent == 7
        assert slow.statistics().pings_sent == 5
        assert fast.statistics().pongs_received == 7
        assert slow.statistics().pongs_received == 5


async def test_without_a_timeout_pings_go_on(autojump_clock: Any) -> None:
    async with open_pair(echo, ping_interval=10, ping_timeout=None) as wss:
        readable, writable, *_ = await wss.opened
        await trio.sleep(45)
        assert wss.statistics().pings_sent == 4
        assert wss.statistics().pongs_received == 4
        await writable.send("open")
        assert await readable.receive() == "open"


async def test_a_closed_connection_is_not_kept_by_the_keepalive(autojump_clock: Any) -> None:
    # The keepalive's heap still holds the closed connection's entry (until
    # its time, 1000 s away), but not the connection.
    async with open_pair(echo, ping_interval=1000) as wss:
        await wss.opened
        conn = wss._conn
        keepalive = _keepalives.get()
        assert keepalive is not None
        assert any(entry.conn is conn for entry in keepalive._heap)
    assert not any(entry.conn is conn for entry in keepalive._heap)


async def test_the_keepalive_does_not_wake_for_a_closed_connection(autojump_clock: Any) -> None:
    # Its sleep must not end at the time of a connection that is gone: a
    # MockClock jumps to the earliest deadline when every task is blocked.
    async with open_pair(echo, ping_interval=50) as wss:
        await wss.opened
        keepalive = _keepalives.get()
        assert keepalive is not None
    assert not keepalive._heap
    assert keepalive._scope is not None
    assert keepalive._scope.deadline == math.inf
    with trio.move_on_after(200):
        await trio.sleep_forever()
    assert trio.current_time() == pytest.approx(200)


async def test_a_new_connection_with_an_earlier_ping_wakes_the_keepalive(
    autojump_clock: Any,
) -> None:
    # The keepalive sleeps until the earliest entry (1000 s); a connection
    # that needs a ping sooner must get it on time.
    async with open_pair(echo, ping_interval=1000) as slow:
        await slow.opened
        await trio.sleep(1)
        async with open_pair(echo, ping_interval=3) as fast:
            await fast.opened
            await trio.sleep(3.5)
            assert fast.statistics().pings_sent == 1
            assert fast.statistics().pongs_received == 1
        assert slow.statistics().pings_sent == 0
