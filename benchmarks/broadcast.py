"""Micro-benchmark: ``wsstream.broadcast`` against a loop of ``send_nowait``.

``python -m benchmarks.broadcast [--conns 1000] [--size 100 4096] [--rounds 200]``

In one process, no sockets: ``--conns`` server connections over trio memory
streams, each with a hand-written client that completes the opening
handshake and then drains what it is sent. Each round queues one text
message of each ``--size`` on every connection, timed alone (the flushers
write between rounds, untimed), first with ``broadcast``, then with
``send_nowait`` in a loop (skipping connections over ``write_limit``, as
broadcast does); without compression (one shared frame) and with
permessage-deflate (one compression per connection either way).
"""

from __future__ import annotations

import argparse
import base64
import functools
import os
import statistics
import time

import trio
import trio.testing

import wsstream

OFFER = "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n"


async def open_members(
    nursery: trio.Nursery, count: int, compression: str | None
) -> list[wsstream.WebSocketStream]:
    arrivals, arrived = trio.open_memory_channel[wsstream.WebSocketStream](count)

    async def handler(wss: wsstream.WebSocketStream) -> None:
        await arrivals.send(wss)
        await trio.sleep_forever()

    async def client(stream: trio.abc.Stream) -> None:
        key = base64.b64encode(os.urandom(16)).decode()
        await stream.send_all((
            "GET / HTTP/1.1\r\nHost: bench\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
            f"{OFFER if compression else ''}\r\n"
        ).encode())
        head = b""
        while b"\r\n\r\n" not in head:
            head += await stream.receive_some()
        while await stream.receive_some(1 << 20):  # drain, so memory stays flat
            pass

    for _ in range(count):
        server_side, client_side = trio.testing.memory_stream_pair()
        nursery.start_soon(functools.partial(
            wsstream.serve_stream, handler, server_side,
            compression=compression, ping_interval=None,
        ))
        nursery.start_soon(client, client_side)
    return [await arrived.receive() for _ in range(count)]


def loop_of_send_nowait(streams: list[wsstream.Writable], message: str) -> None:
    for writable in streams:
        # Not contextlib.suppress: a context manager per call would tax the
        # loop with a cost broadcast does not pay.
        try:  # noqa: SIM105
            writable.send_nowait(message)
        except trio.WouldBlock:
            pass


async def measure(count: int, size: int, rounds: int, compression: str | None) -> None:
    message = "x" * size
    async with trio.open_nursery() as nursery:
        streams = await open_members(nursery, count, compression)
        writables = [(await wss.opened).writable for wss in streams]
        # CPU time of this process (the machine may be shared: wall time
        # would count the other processes' turns) and wall time, per round.
        cpu: dict[str, list[int]] = {"broadcast": [], "send_nowait loop": []}
        wall: dict[str, list[int]] = {"broadcast": [], "send_nowait loop": []}
        for _ in range(rounds):
            for name in cpu:  # interleaved, so both meet the same conditions
                start_cpu, start = time.process_time_ns(), time.perf_counter_ns()
                if name == "broadcast":
                    result = wsstream.broadcast(streams, message)
                    assert result.sent == count, result
                else:
                    loop_of_send_nowait(writables, message)
                wall[name].append(time.perf_counter_ns() - start)
                cpu[name].append(time.process_time_ns() - start_cpu)
                await trio.testing.wait_all_tasks_blocked()  # the flushers write
        label = f"{size} B, {'deflate' if compression else 'no compression'}"
        medians = {name: statistics.median(samples) / 1e3 for name, samples in cpu.items()}
        for name in cpu:
            print(f"{label:24} {name:17} CPU median {medians[name]:7.0f} us per broadcast "
                  f"({medians[name] * 1000 / count:5.0f} ns per connection), "
                  f"wall best {min(wall[name]) / 1e3:7.0f} us")
        ratio = medians["send_nowait loop"] / medians["broadcast"]
        print(f"{label:24} broadcast is {ratio:.2f}x as fast as the loop")
        nursery.cancel_scope.cancel()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--conns", type=int, default=1000)
    parser.add_argument("--size", type=int, nargs="+", default=[100, 4096])
    parser.add_argument("--rounds", type=int, default=200)
    args = parser.parse_args()
    print(f"{args.conns} connections, one text message per round, {args.rounds} rounds")
    for size in args.size:
        for compression in (None, "deflate"):
            trio.run(measure, args.conns, size, args.rounds, compression)


if __name__ == "__main__":
    main()
