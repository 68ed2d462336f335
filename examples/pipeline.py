"""A structured-concurrency pipeline: readable -> transform -> writable, with
backpressure from end to end.

    python examples/pipeline.py [--count N] [--size BYTES] [--rate PER_SECOND]

Three parties on 127.0.0.1:

* a *source* server that sends ``--count`` binary messages as fast as
  ``send()`` lets it;
* a *sink* server that reads only ``--rate`` messages a second;
* the pipeline, a client of both: one nursery, three tasks joined by small
  ``trio`` memory channels::

      source.readable -> [pump in] -> chan(4) -> [transform]
                      -> chan(4) -> [pump out] -> sink.writable

Nothing in the pipeline counts or throttles: every stage simply awaits the
next one. When the sink reads slowly, ``sink.writable.send()`` waits, the
channels fill, the pipeline stops receiving, its readable fills up to
``read_limit``, wsstream stops reading the socket, TCP's window closes, and
the source's ``send()`` waits. A monitor prints, every quarter second, how
many messages each party has handled: the source stays a bounded distance
ahead of the sink (the sum of the buffers on the way), instead of finishing
at once.
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import sys
import time

import trio

import wsstream

# Small limits, so that the buffers on the way are visibly bounded.
LIMITS = {"read_limit": 64 * 1024, "write_limit": 64 * 1024, "compression": None}


class Counters:
    def __init__(self) -> None:
        self.sent_by_source = 0
        self.through_pipeline = 0
        self.read_by_sink = 0
        self.source_done_at: float | None = None
        self.sink_done_at: float | None = None
        self.sink_done = trio.Event()


async def transform(message: bytes | bytearray) -> bytes:
    """The work of the middle stage: a checksum in front of the payload."""
    await trio.lowlevel.checkpoint()
    return hashlib.blake2b(message, digest_size=8).digest() + message


async def pipeline(source_url: str, sink_url: str, counters: Counters) -> None:
    async with (
        wsstream.WebSocketStream(source_url, **LIMITS) as source,
        wsstream.WebSocketStream(sink_url, **LIMITS) as sink,
    ):
        source_readable, *_ = await source.opened
        _, sink_writable, *_ = await sink.opened
        raw_in, raw_out = trio.open_memory_channel[bytes | bytearray](4)
        cooked_in, cooked_out = trio.open_memory_channel[bytes](4)

        async def pump_in() -> None:
            async with raw_in:
                async for message in source_readable:  # ends when the source closes
                    assert not isinstance(message, str)
                    await raw_in.send(message)  # waits while the transform is busy

        async def transform_stage() -> None:
            async with raw_out, cooked_in:
                async for message in raw_out:
                    await cooked_in.send(await transform(message))

        async def pump_out() -> None:
            async with cooked_out:
                async for message in cooked_out:
                    await sink_writable.send(message)  # waits while the sink is slow
                    counters.through_pipeline += 1
            await sink_writable.aclose()  # Close, and wait for the closing handshake

        async with trio.open_nursery() as nursery:
            nursery.start_soon(pump_in)
            nursery.start_soon(transform_stage)
            nursery.start_soon(pump_out)


async def main(count: int, size: int, rate: float) -> int:
    counters = Counters()
    start = time.perf_counter()
    payload = bytes(size)

    async def source(wss: wsstream.WebSocketStream) -> None:
        _, writable, *_ = await wss.opened
        for _ in range(count):
            await writable.send(payload)  # backpressure from the pipeline lands here
            counters.sent_by_source += 1
        counters.source_done_at = time.perf_counter() - start

    async def sink(wss: wsstream.WebSocketStream) -> None:
        readable, *_ = await wss.opened
        async for message in readable:
            assert len(message) == size + 8
            counters.read_by_sink += 1
            await trio.sleep(1 / rate)  # a slow consumer
        counters.sink_done_at = time.perf_counter() - start
        counters.sink_done.set()

    async def monitor() -> None:
        print(f"{'time':>6} {'source sent':>12} {'pipeline':>9} {'sink read':>10} "
              f"{'in flight':>10}")
        while True:
            c = counters
            print(f"{time.perf_counter() - start:5.2f}s {c.sent_by_source:12} "
                  f"{c.through_pipeline:9} {c.read_by_sink:10} "
                  f"{c.sent_by_source - c.read_by_sink:10}", flush=True)
            await trio.sleep(0.25)

    print(f"pipeline: {count} messages of {size} bytes; the sink reads {rate:g} a second "
          f"(read_limit and write_limit {LIMITS['read_limit'] // 1024} KiB)")
    async with trio.open_nursery() as nursery:
        serve = functools.partial(wsstream.serve, host="127.0.0.1", port=0, **LIMITS)
        source_port = (await nursery.start(functools.partial(serve, source)))[0]
        sink_port = (await nursery.start(functools.partial(serve, sink)))[0]
        nursery.start_soon(monitor)
        await pipeline(f"ws://127.0.0.1:{source_port.socket.getsockname()[1]}/",
                       f"ws://127.0.0.1:{sink_port.socket.getsockname()[1]}/", counters)
        await counters.sink_done.wait()  # the sink's handler ends just after us
        nursery.cancel_scope.cancel()

    unthrottled = count / rate
    assert counters.source_done_at is not None and counters.sink_done_at is not None
    print(f"source finished sending at {counters.source_done_at:.2f} s, sink finished "
          f"reading at {counters.sink_done_at:.2f} s (it needs {unthrottled:.2f} s at "
          f"{rate:g}/s)")
    if counters.source_done_at > unthrottled / 2:
        print("backpressure: the slow sink held the source back, across two connections "
              "and three tasks")
        return 0
    print("the buffers on the way absorbed everything: use more messages (--count)")
    return 1


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--count", type=int, default=600)
    parser.add_argument("--size", type=int, default=16 * 1024)
    parser.add_argument("--rate", type=float, default=300.0)
    args = parser.parse_args()
    sys.exit(trio.run(main, args.count, args.size, args.rate))
