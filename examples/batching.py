"""A stream-processing relay in the batching pattern: take what is buffered
with ``receive_nowait()``, transform it, queue the results with
``send_nowait()``, then await once.

    python examples/batching.py [--count N]

Three parties on 127.0.0.1:

* a *source* server that sends ``--count`` JSON events, as fast as its
  writable lets it;
* a *sink* server that checks every event it gets (in order, transformed)
  and answers ``done`` after the last one;
* the relay, a client of both: it parses each event, adds a field and
  forwards it. It runs twice, as the plain loop (``async for`` and ``await
  send()`` per message) and as the batching loop, and prints both rates.

In the batching loop the ``async for`` is the one ``await`` per batch: it
is where other tasks run and where cancellation is seen. ``send_nowait()``
raises ``trio.WouldBlock`` once more than ``write_limit`` bytes wait to be
written; the loop then awaits ``send()`` for that one message, so a slow
sink still holds the relay (and, through the relay's readable, the source)
back. ``receive_nowait()`` raises ``trio.EndOfChannel`` once the source
closed and everything was taken, like a trio memory channel.
"""

from __future__ import annotations

import argparse
import functools
import json
import sys
import time
from typing import Any

import trio

import wsstream

OPTIONS: dict[str, Any] = {"compression": None}


def transform(message: str | bytes | bytearray) -> str:
    """The relay's work on one event: parse it, add a field, encode it."""
    event = json.loads(message)
    event["seen_by"] = "relay"
    return json.dumps(event)


async def plain_relay(source: wsstream.Readable, sink: wsstream.Writable) -> int:
    """One ``await`` per message each way: the way most scripts start."""
    count = 0
    async for message in source:
        await sink.send(transform(message))
        count += 1
    return count


async def batching_relay(source: wsstream.Readable, sink: wsstream.Writable) -> int:
    """One ``await`` per batch: everything already buffered is handled at once."""
    count = 0
    async for first in source:
        batch = [first]
        while True:
            try:
                batch.append(source.receive_nowait())
            except (trio.WouldBlock, trio.EndOfChannel):
                break  # nothing more yet; after the end, the async for stops next
        for message in batch:
            result = transform(message)
            try:
                sink.send_nowait(result)
            except trio.WouldBlock:
                await sink.send(result)  # over write_limit: wait for room
        count += len(batch)
    return count


async def run_once(relay_name: str, count: int) -> float:
    """Serve a source and a sink, relay ``count`` events between them;
    returns events per second, from the relay's first event to the sink's
    ``done``."""
    relay = {"plain": plain_relay, "batching": batching_relay}[relay_name]
    events = [json.dumps({"seq": seq, "kind": "tick", "value": seq * 7 % 101})
              for seq in range(count)]

    async def source(wss: wsstream.WebSocketStream) -> None:
        _, writable, *_ = await wss.opened
        for event in events:
            await writable.send(event)
        await writable.aclose()

    async def sink(wss: wsstream.WebSocketStream) -> None:
        readable, writable, *_ = await wss.opened
        seq = 0
        async for message in readable:
            event = json.loads(message)
            if event["seq"] != seq or event["seen_by"] != "relay":
                await writable.send(f"wrong event {message!r}, expected seq {seq}")
                return
            seq += 1
            if seq == count:
                await writable.send("done")
                return

    async with trio.open_nursery() as nursery:
        serve = functools.partial(wsstream.serve, host="127.0.0.1", port=0, **OPTIONS)
        source_port = (await nursery.start(functools.partial(serve, source)))[0].socket
        sink_port = (await nursery.start(functools.partial(serve, sink)))[0].socket
        async with (
            wsstream.WebSocketStream(f"ws://127.0.0.1:{sink_port.getsockname()[1]}/",
                                     **OPTIONS) as to_sink,
            wsstream.WebSocketStream(f"ws://127.0.0.1:{source_port.getsockname()[1]}/",
                                     **OPTIONS) as from_source,
        ):
            sink_readable, sink_writable, *_ = await to_sink.opened
            source_readable, *_ = await from_source.opened
            start = time.perf_counter()
            relayed = await relay(source_readable, sink_writable)
            answer = await sink_readable.receive()
            elapsed = time.perf_counter() - start
        nursery.cancel_scope.cancel()
    if answer != "done" or relayed != count:
        raise SystemExit(f"{relay_name}: the sink answered {answer!r} after {relayed} events")
    return count / elapsed


async def main(count: int) -> int:
    print(f"relaying {count} JSON events from a source server to a sink server")
    for name in ("plain", "batching"):
        rate = await run_once(name, count)
        print(f"{name:>8} loop: {rate:10,.0f} events/s, every event checked by the sink")
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--count", type=int, default=50_000)
    args = parser.parse_args()
    sys.exit(trio.run(main, args.count))
