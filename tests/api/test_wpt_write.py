"""WPT websockets/stream/tentative/write.any.js, translated (W1-W6).

Runs over ws:// and wss:// (``?default`` and ``?wss``). Python meanings:

* W1/W2: ``send()`` returns once the message is queued, so "a write that was
  incomplete at close time" is the send parked on ``write_limit`` when the
  peer's Close arrives; it raises the connection's error, later sends raise
  the same object, and ``closed`` raises it too (unwritten data: not a clean
  close). The browser's InvalidStateError for these writes is, per API.md,
  the ``BrokenResourceError``-derived :class:`wsstream.WebSocketError`.
  W2's garbage collection is ``gc.collect()`` while that send is parked.
* W3: an object that is neither ``str`` nor bytes-like -> TypeError.
* W4/W5 (resizable / shared ArrayBuffers): a mutable buffer mutated after
  ``send()`` returned does not change what the peer receives.
* W6: dropping the stream while writes are pending neither crashes nor
  leaks: the block exits, no task survives it, and the stream object is
  collectable afterwards.
"""

from __future__ import annotations

import gc
import weakref

import pytest
import trio
import trio.testing

import wsstream
from tests.wpt_handlers import (
    ECHO_OPTIONS,
    MiB,
    WptServer,
    echo,
    silent_peer,
    stalling_echo_exit,
)


async def test_W1_a_write_that_was_incomplete_at_close_time_should_reject(
    wpt: WptServer,
) -> None:
    goodbye_seen, drain = trio.Event(), trio.Event()
    peer = await wpt.raw(stalling_echo_exit(goodbye_seen, drain))
    async with wpt.client(peer.url + "/echo_exit", compression=None) as wss:
        _, writable, *_ = await wss.opened
        await writable.send("Goodbye")
        await writable.send(bytes(8 * MiB))  # queued at once
        with trio.fail_after(10):
            with pytest.raises(wsstream.WebSocketError) as big_write:
                await writable.send(bytes(8 * MiB))  # parked when the Close arrives
        assert goodbye_seen.is_set()
        with pytest.raises(wsstream.WebSocketError) as word:
            await writable.send("word")
        assert word.value is big_write.value
        drain.set()
        with trio.fail_after(10):
            with pytest.raises(wsstream.WebSocketError) as closed:
                await wss.closed
        assert closed.value is big_write.value


async def test_W2_garbage_collection_after_close_with_a_pending_write_should_not_crash(
    wpt: WptServer,
) -> None:
    goodbye_seen, drain = trio.Event(), trio.Event()
    peer = await wpt.raw(stalling_echo_exit(goodbye_seen, drain))
    outcome: list[BaseException] = []
    async with wpt.client(peer.url + "/echo_exit", compression=None) as wss:
        _, writable, *_ = await wss.opened
        await writable.send("Goodbye")
        await writable.send(bytes(8 * MiB))

        async def big_write() -> None:
            try:
                await writable.send(bytes(8 * MiB))
            except wsstream.WebSocketError as exc:
                outcome.append(exc)

        with trio.fail_after(10):
            async with trio.open_nursery() as nursery:
                nursery.start_soon(big_write)
                await trio.testing.wait_all_tasks_blocked()
                for _ in range(5):
                    gc.collect()
        drain.set()
    assert len(outcome) == 1
    assert isinstance(outcome[0], wsstream.WebSocketError)


async def test_W3_writing_a_value_that_is_neither_str_nor_bytes_like_should_raise_type_error(
    wpt: WptServer,
) -> None:
    url = await wpt.serve(echo, **ECHO_OPTIONS) + "/echo"
    async with wpt.client(url) as wss:
        readable, writable, *_ = await wss.opened
        for value in (object(), 42, ["list"], {"a": 1}, None):
            with pytest.raises(TypeError):
                await writable.send(value)  # type: ignore[arg-type]
        # Nothing was queued and the connection is fine.
        await writable.send("after")
        assert await readable.receive() == "after"
        assert wss.statistics().messages_sent == 1


@pytest.mark.parametrize("view", [False, True], ids=["bytearray", "memoryview"])
async def test_W4_W5_mutating_a_buffer_after_send_does_not_change_the_message(
    wpt: WptServer, view: bool
) -> None:
    url = await wpt.serve(echo, **ECHO_OPTIONS) + "/echo"
    async with wpt.client(url) as wss:
        readable, writable, *_ = await wss.opened
        buffer = bytearray(b"original" * 1024)
        message: bytearray | memoryview = memoryview(buffer)[8:] if view else buffer
        expected = bytes(message)
        await writable.send(message)
        buffer[:] = b"x" * len(buffer)
        assert await readable.receive() == expected


async def test_W6_dropping_a_stream_while_writes_are_pending_does_not_crash_or_leak(
    wpt: WptServer,
) -> None:
    peer = await wpt.raw(silent_peer())
    parent = trio.lowlevel.current_task()
    children_before = len(parent.child_nurseries)
    gc.collect()
    writables_before = _count(wsstream.Writable)
    cancelled = 0
    with trio.CancelScope() as scope:
        async with wpt.client(peer.url + "/", compression=None) as wss:
            ref = weakref.ref(wss)
            _, writable, *_ = await wss.opened

            async def write(channel: wsstream.Writable) -> None:
                nonlocal cancelled
                try:
                    await channel.send(bytes(100_000))
                except trio.Cancelled:
                    cancelled += 1
                    raise

            async with trio.open_nursery() as nursery:
                for _ in range(20):
                    nursery.start_soon(write, writable)
                await trio.testing.wait_all_tasks_blocked()
                assert wss.statistics().buffered_out > 0  # writes are pending
                scope.cancel()
    assert scope.cancelled_caught
    assert cancelled > 0
    assert len(parent.child_nurseries) == children_before
    del wss, writable, nursery, write
    for _ in range(3):
        gc.collect()
    assert ref() is None
    # The connection behind the stream went too (Writable has no weakref slot).
    assert _count(wsstream.Writable) == writables_before


def _count(cls: type) -> int:
    return sum(1 for obj in gc.get_objects() if isinstance(obj, cls))
