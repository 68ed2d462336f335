"""WPT websockets/stream/tentative/backpressure-receive.any.js (BR1) and
backpressure-send.any.js (BS1), translated.

Runs over ws:// and wss://. The WPT cases measure durations (the server
spent >= 1.8 s sending; a write took >= 1.8 s); here the same facts are
pinned as orderings of events, without wall-clock durations:

* BR1: while the client does not read, the server's ``send()`` stalls (its
  send loop has not finished once every task is blocked); the client's
  buffer stays bounded; once the client reads, the server's sends complete.
* BS1: ``await send(8 MiB)`` returns once queued (the browser's "write
  resolves when buffered"), so the Python form is: with a server that does
  not read, the *following* sends block until the server reads.

The WPT sends 16 MiB; these tests send 32 MiB (BR1) and up to 64 MiB (BS1)
so that the kernel's socket buffers (autotuned up to tcp_rmem's maximum,
32 MiB on the dev machine) cannot absorb the whole load and hide missing
backpressure. Measured on loopback: 4 of 32 server sends (BR1) and 2 of 8
client sends (BS1) return before the stall.
"""

from __future__ import annotations

import trio
import trio.testing

from tests.wpt_handlers import MiB, ReceiveBackpressure, SendBackpressure, WptServer

#: "Every task is blocked" must hold this long (real seconds): a broken
#: backpressure would let the transfer run on meanwhile. Not a timing
#: assertion: with working backpressure the state never changes.
SETTLE = 0.1


async def test_BR1_backpressure_should_be_applied_to_received_messages(
    wpt: WptServer,
) -> None:
    sender = SendBackpressure(count=32)
    url = await wpt.serve(sender, compression=None) + "/send-backpressure"
    async with wpt.client(url) as wss:
        readable, *_ = await wss.opened
        await sender.started.wait()
        await trio.testing.wait_all_tasks_blocked(cushion=SETTLE)
        # The client has not read: the server's sends are stalled.
        assert not sender.done.is_set()
        assert sender.sent < sender.count
        assert wss.statistics().buffered_in <= 3 * MiB
        with trio.fail_after(60):
            assert await readable.receive() == b""
            for _ in range(sender.count):
                assert await readable.receive() == bytes(MiB)
            elapsed = await readable.receive()
            assert isinstance(elapsed, str)
            assert float(elapsed) >= 0.0
            await sender.done.wait()
        assert sender.sent == sender.count


async def test_BS1_backpressure_should_be_applied_to_sent_messages(wpt: WptServer) -> None:
    receiver = ReceiveBackpressure()
    url = await wpt.serve(
        receiver, read_limit=1, max_message_size=None, compression=None
    ) + "/receive-backpressure"
    total = 8
    sent = 0
    all_sent = trio.Event()
    async with wpt.client(url, compression=None) as wss:
        _, writable, *_ = await wss.opened

        async def send_all() -> None:
            nonlocal sent
            for _ in range(total):
                await writable.send(bytes(8 * MiB))
                sent += 1
            all_sent.set()

        async with trio.open_nursery() as nursery:
            nursery.start_soon(send_all)
            await trio.testing.wait_all_tasks_blocked(cushion=SETTLE)
            assert sent >= 1  # the first send returned once queued
            assert sent < total  # a following send is blocked
            assert not all_sent.is_set()
            receiver.release.set()
            with trio.fail_after(60):
                await all_sent.wait()
        wss.close()
        with trio.fail_after(60):
            await wss.closed
    assert receiver.received == total
    assert receiver.bytes == total * 8 * MiB
