"""``python -m wsstream bench``: round trips and throughput against an echo server."""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import sys
import time
from collections.abc import Sequence
from typing import Any, TextIO

import trio

from .._errors import WebSocketError
from .._streams.stream import WebSocketStream
from .common import EXIT_OK, CliError, _client_options, _describe, _open

# -- bench --------------------------------------------------------------------


class Progress:
    """A progress line on stderr: redrawn in place on a terminal, a few plain
    lines otherwise (so that logs stay readable)."""

    def __init__(self, stream: TextIO, label: str, total: int, unit: str) -> None:
        self.stream = stream
        self.label = label
        self.total = total
        self.unit = unit
        self.tty = stream.isatty()
        self.start = time.perf_counter()
        self.last_draw = 0.0
        self.next_quarter = 0.25
        if not self.tty:
            self._line(f"{label}: {total} {unit}...")

    def _line(self, text: str) -> None:
        self.stream.write(text + "\n")
        self.stream.flush()

    def update(self, done: int, extra: str = "") -> None:
        fraction = done / self.total if self.total else 1.0
        now = time.perf_counter()
        if self.tty:
            if now - self.last_draw < 0.1 and done < self.total:
                return
            self.last_draw = now
            width = 30
            filled = int(width * fraction)
            bar = "#" * filled + "-" * (width - filled)
            self.stream.write(
                f"\r{self.label:<12} [{bar}] {fraction * 100:5.1f}% "
                f"{done}/{self.total} {self.unit} {extra}\x1b[K"
            )
            self.stream.flush()
        elif fraction >= self.next_quarter and done < self.total:
            while fraction >= self.next_quarter:
                self.next_quarter += 0.25
            self._line(f"{self.label}: {fraction * 100:.0f}% {extra}".rstrip())

    def finish(self, summary: str) -> None:
        elapsed = time.perf_counter() - self.start
        if self.tty:
            self.stream.write("\r\x1b[K")
        self._line(f"{self.label}: done in {elapsed:.2f} s; {summary}")


def _percentile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))
    return ordered[index]


async def _bench(args: argparse.Namespace) -> int:
    """Round trips one message at a time, then a stream of messages both ways."""
    err = sys.stderr
    options = _client_options(args)
    # A benchmark must not fail on the size it chose: allow echoes of it.
    options["max_message_size"] = max(2**20, args.size * 2)
    # Random bytes are incompressible: deflate cannot flatter the numbers.
    payload: str | bytes = "x" * args.size if args.text else os.urandom(args.size)
    results: dict[str, Any] = {"url": args.url, "size": args.size}
    async with WebSocketStream(args.url, **options) as wss:
        readable, writable, extensions, _ = await _open(wss)
        results["extensions"] = extensions

        async def expect_echo() -> None:
            try:
                reply = await readable.receive()
            except trio.EndOfChannel:
                raise CliError("the server closed the connection: is it an echo server?") from None
            if len(reply) != len(payload) or type(reply) is not type(payload):
                raise CliError("the reply is not an echo of the message: is it an echo server?")

        try:
            # 1. Round trips: one message out, wait for its echo, again.
            progress = Progress(err, "round trips", args.round_trips, "messages")
            rtts: list[float] = []
            for i in range(args.round_trips):
                t0 = time.perf_counter()
                await writable.send(payload)
                await expect_echo()
                rtts.append(time.perf_counter() - t0)
                progress.update(i + 1)
            median = statistics.median(rtts)
            results["round_trip_ms"] = {
                "min": min(rtts) * 1e3, "median": median * 1e3,
                "p99": _percentile(rtts, 0.99) * 1e3, "max": max(rtts) * 1e3,
            }
            progress.finish(f"median {median * 1e3:.3f} ms")

            # 2. Throughput: the writer never waits for echoes (only for
            # backpressure); the reader counts them.
            progress = Progress(err, "throughput", args.count, "messages")
            start = time.perf_counter()
            received = 0

            async def writer() -> None:
                for _ in range(args.count):
                    await writable.send(payload)

            async with trio.open_nursery() as nursery:
                nursery.start_soon(writer)
                while received < args.count:
                    await expect_echo()
                    received += 1
                    elapsed = time.perf_counter() - start
                    rate = received * args.size / elapsed / 2**20 if elapsed else 0.0
                    progress.update(received, f"{rate:.1f} MiB/s")
            elapsed = time.perf_counter() - start
            results["throughput"] = {
                "messages": args.count,
                "seconds": elapsed,
                "messages_per_s": args.count / elapsed,
                "mib_per_s_each_way": args.count * args.size / elapsed / 2**20,
            }
            progress.finish(f"{args.count / elapsed:,.0f} messages/s")
            results["ping_ms"] = await wss.ping() * 1e3
        except WebSocketError as exc:
            raise CliError(f"connection failed during the benchmark: {_describe(exc)}") from None
        wss.close(1000)
    _print_bench(results, args.json)
    return EXIT_OK


def _print_bench(results: dict[str, Any], as_json: bool) -> None:
    if as_json:
        print(json.dumps(results, indent=2))
        return
    rtt = results["round_trip_ms"]
    tp = results["throughput"]
    print(f"wsstream bench {results['url']}: {results['size']}-byte messages, "
          f"extensions {results['extensions'] or 'none'!r}")
    print(f"  round trip (ms): min {rtt['min']:.3f}  median {rtt['median']:.3f}  "
          f"p99 {rtt['p99']:.3f}  max {rtt['max']:.3f}")
    print(f"  throughput: {tp['messages_per_s']:,.0f} messages/s, "
          f"{tp['mib_per_s_each_way']:.2f} MiB/s each way "
          f"({tp['messages']} messages in {tp['seconds']:.2f} s)")
    print(f"  ping (control frame) round trip: {results['ping_ms']:.3f} ms")


