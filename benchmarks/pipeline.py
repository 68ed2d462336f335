"""A stream-processing pipeline, end to end: ``python -m benchmarks.pipeline``.

What users write: consume messages from one WebSocket, transform each
(parse the JSON, add a field, serialise it again), forward the result to a
second connection, with backpressure from the slowest stage.

Design
------
* Three processes per measurement, on 127.0.0.1: a **source** server that
  streams ``count`` JSON text messages as fast as its transport takes them
  (asyncio flow control: it waits whenever its write buffer is over the
  high-water mark), then closes with 1000; a **sink** server that reads
  them, checks every message's added field and their order, and answers
  ``done`` once it has them all; and the **pipeline**, one client connection
  to each, written with the implementation under test. The source and the
  fast sink are picows (asyncio, Cython), the slow sink websockets.asyncio
  (a handler that sleeps when ahead of its rate: a reader that really stops
  reading); the same servers for every implementation, fresh for every
  measurement.
* The source waits for the pipeline's ``go`` (sent once both connections
  are open), so nothing piles up before the clock starts; the clock stops
  when the sink's ``done`` arrives. Result: messages per second end to end,
  the pipeline process's CPU per message (its process time) and its peak
  resident memory (``VmHWM``), also as growth over its RSS just before
  ``go``.
* Scenarios: a fast sink (reads as fast as it can: the pipeline is the
  bottleneck), and a slow sink (reads at most ``rate`` messages a second:
  the pipeline must hold the source back, so the rate is the sink's and the
  interesting number is memory: what a library buffers while it waits).
* Implementations (their own defaults, compression and keepalive off, the
  harness's 16 MiB message limit, as in ``python -m benchmarks``):
  ``wsstream`` (``async for`` and ``await send``), ``wsstream-batch`` (the
  batching pattern of docs/backpressure.md: ``receive_nowait`` /
  ``send_nowait``, one await per batch), ``websockets.asyncio``,
  ``websockets.trio``, ``trio-websocket``.
* Rounds rotate the implementations' order; ratios wsstream / peer are taken
  within a round and reported as median (min-max), as ``python -m
  benchmarks`` does. ``--wsstream-ref REF`` measures a commit's wsstream.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import run as harness
from .common import MAX_SIZE, emit, hard_exit, raise_nofile_limit

IMPLS = ["wsstream", "wsstream-batch", "websockets.asyncio", "websockets.trio", "trio-websocket"]
#: The two wsstream pipelines are compared with every peer.
OURS = ("wsstream", "wsstream-batch")
FIELD = "seen_by"
DONE = "done"
GO = "go"


@dataclass(frozen=True)
class Scenario:
    name: str
    size: int  # JSON text of about this many bytes
    count: int
    quick: int
    rate: int = 0  # the sink's messages per second, 0: as fast as it reads

    def label(self) -> str:
        sink = f"sink at {self.rate:,} msgs/s" if self.rate else "fast sink"
        return f"JSON ~{self.size} B, {sink}"


SCENARIOS = [
    Scenario("json-200B", 200, 100_000, 10_000),
    Scenario("json-4KiB", 4096, 30_000, 3_000),
    Scenario("json-200B-slow-sink", 200, 30_000, 4_000, rate=10_000),
]


# -------------------------------------------------------------- the servers


def _event(i: int, pad: str) -> bytes:
    return f'{{"id": {i}, "kind": "event", "user": "u{i % 97}", "text": "{pad}"}}'.encode()


def serve_source(count: int, size: int) -> None:
    """Stream ``count`` JSON messages to each client once it says ``go``."""
    import asyncio

    from picows import WSListener, WSMsgType, ws_create_server

    pad = "x" * max(0, size - len(_event(0, "")))

    class Source(WSListener):  # type: ignore[misc]
        def __init__(self) -> None:
            self.resumed = asyncio.Event()
            self.resumed.set()
            self.task: asyncio.Task[None] | None = None

        def pause_writing(self) -> None:
            self.resumed.clear()

        def resume_writing(self) -> None:
            self.resumed.set()

        def on_ws_frame(self, transport, frame) -> None:  # type: ignore[no-untyped-def]
            if frame.msg_type is WSMsgType.CLOSE:
                transport.send_close(frame.get_close_code())
                transport.disconnect()
            elif (
                frame.msg_type is WSMsgType.TEXT and self.task is None
                and frame.get_payload_as_ascii_text() == GO
            ):
                self.task = asyncio.ensure_future(self.produce(transport))

        async def produce(self, transport) -> None:  # type: ignore[no-untyped-def]
            send, text, resumed = transport.send, WSMsgType.TEXT, self.resumed
            for i in range(count):
                if not resumed.is_set():
                    await resumed.wait()
                elif not i & 255:
                    await asyncio.sleep(0)  # let the loop read and write
                send(text, _event(i, pad))
            transport.send_close(1000)

        def on_ws_disconnected(self, transport) -> None:  # type: ignore[no-untyped-def]
            if self.task is not None:
                self.task.cancel()

    async def main() -> None:
        server = await ws_create_server(lambda request: Source(), "127.0.0.1", 0,
                                        max_frame_size=MAX_SIZE)
        emit(f"PORT {server.sockets[0].getsockname()[1]}")
        await server.serve_forever()

    asyncio.run(main())


def serve_sink(count: int, rate: int) -> None:
    """Read ``count`` messages from each client, check the added field and
    the order, answer ``done``. As fast as they come (picows), or at most
    ``rate`` a second: a websockets.asyncio server whose handler sleeps
    whenever it is ahead of that rate; meanwhile its queue fills (16
    messages) and it stops reading, so TCP pushes back on the pipeline."""
    if rate:
        _slow_sink(count, rate)
        return
    import asyncio

    from picows import WSListener, WSMsgType, ws_create_server

    class Sink(WSListener):  # type: ignore[misc]
        def __init__(self) -> None:
            self.check = _Check(count)

        def on_ws_frame(self, transport, frame) -> None:  # type: ignore[no-untyped-def]
            if frame.msg_type is WSMsgType.CLOSE:
                transport.send_close(frame.get_close_code())
                transport.disconnect()
            elif frame.msg_type is WSMsgType.TEXT:
                answer = self.check.add(frame.get_payload_as_utf8_text())
                if answer:
                    transport.send(WSMsgType.TEXT, answer.encode())

    async def main() -> None:
        server = await ws_create_server(lambda request: Sink(), "127.0.0.1", 0,
                                        max_frame_size=MAX_SIZE)
        emit(f"PORT {server.sockets[0].getsockname()[1]}")
        await server.serve_forever()

    asyncio.run(main())


class _Check:
    """The sink's bookkeeping: every message transformed, none lost, in order."""

    def __init__(self, count: int) -> None:
        self.count = count
        self.got = 0
        self.errors = 0

    def add(self, message: str) -> str:
        """Take one message; the answer to send once all are in, else ""."""
        event = json.loads(message)
        if event.get(FIELD) != "pipeline" or event.get("id") != self.got:
            self.errors += 1
        self.got += 1
        if self.got < self.count:
            return ""
        return DONE if not self.errors else f"{self.errors} bad messages"


def _slow_sink(count: int, rate: int) -> None:
    import asyncio

    from websockets.asyncio.server import serve

    async def handler(ws) -> None:  # type: ignore[no-untyped-def]
        check = _Check(count)
        loop = asyncio.get_running_loop()
        start = 0.0
        async for message in ws:
            if not check.got:
                start = loop.time()
            answer = check.add(message)
            if answer:
                await ws.send(answer)
            elif not check.got % 50:
                ahead = start + check.got / rate - loop.time()
                if ahead > 0:
                    await asyncio.sleep(ahead)

    async def main() -> None:
        async with serve(handler, "127.0.0.1", 0, compression=None, ping_interval=None,
                         max_size=MAX_SIZE) as server:
            emit(f"PORT {server.sockets[0].getsockname()[1]}")
            await asyncio.Future()

    asyncio.run(main())


# ------------------------------------------------------------ the pipelines


def transform(message: str | bytes) -> str:
    """The pipeline's work on each message: parse, add a field, serialise."""
    event = json.loads(message)
    event[FIELD] = "pipeline"
    return json.dumps(event)


def _rss_kib(field: str = "VmRSS") -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


class Clock:
    """The measurement: started at ``go``, stopped at ``done``."""

    def start(self) -> None:
        self.base_rss = _rss_kib()
        self.t0, self.c0 = time.perf_counter(), time.process_time()

    def stop(self, answer: object, count: int) -> dict[str, Any]:
        elapsed = time.perf_counter() - self.t0
        cpu = time.process_time() - self.c0
        if answer not in (DONE, DONE.encode()):
            return {"ok": False, "error": f"sink: {answer!r}"}
        peak = _rss_kib("VmHWM")
        return {"ok": True, "elapsed": elapsed, "value": count / elapsed,
                "cpu_us": cpu / count * 1e6, "peak_rss_kib": peak,
                "growth_kib": peak - self.base_rss}


def pipeline_wsstream(source: str, sink: str, count: int, timeout: float,
                      batching: bool) -> dict[str, Any]:
    import trio

    import wsstream

    options = {"compression": None, "ping_interval": None, "max_message_size": MAX_SIZE}
    clock = Clock()

    async def idiomatic(src: wsstream.Readable, dst: wsstream.Writable) -> None:
        async for message in src:
            await dst.send(transform(message))

    async def batched(src: wsstream.Readable, dst: wsstream.Writable) -> None:
        # docs/backpressure.md: take what is buffered, handle it, send the
        # results without waiting unless over write_limit, await once.
        async for first in src:
            batch = [first]
            while True:
                try:
                    batch.append(src.receive_nowait())
                except (trio.WouldBlock, trio.EndOfChannel):
                    break  # at the end, the next iteration of async for ends
            for message in batch:
                result = transform(message)
                try:
                    dst.send_nowait(result)
                except trio.WouldBlock:
                    await dst.send(result)

    async def main() -> dict[str, Any]:
        with trio.fail_after(timeout):
            async with (
                wsstream.WebSocketStream(source, **options) as source_ws,
                wsstream.WebSocketStream(sink, **options) as sink_ws,
            ):
                src, src_out, *_ = await source_ws.opened
                sink_in, dst, *_ = await sink_ws.opened
                clock.start()
                await src_out.send(GO)
                await (batched if batching else idiomatic)(src, dst)
                result = clock.stop(await sink_in.receive(), count)
                _finish(result)
        raise AssertionError("unreachable")

    return trio.run(main)


def pipeline_websockets_asyncio(source: str, sink: str, count: int,
                                timeout: float) -> dict[str, Any]:
    import asyncio

    from websockets.asyncio.client import connect

    options = {"compression": None, "ping_interval": None, "max_size": MAX_SIZE}
    clock = Clock()

    async def main() -> dict[str, Any]:
        async with asyncio.timeout(timeout):
            async with connect(source, **options) as src, connect(sink, **options) as dst:
                clock.start()
                await src.send(GO)
                async for message in src:
                    await dst.send(transform(message))
                _finish(clock.stop(await dst.recv(), count))
        raise AssertionError("unreachable")

    return asyncio.run(main())


def pipeline_websockets_trio(source: str, sink: str, count: int,
                             timeout: float) -> dict[str, Any]:
    import trio
    from websockets.trio.client import connect

    options = {"compression": None, "ping_interval": None, "max_size": MAX_SIZE}
    clock = Clock()

    async def main() -> dict[str, Any]:
        with trio.fail_after(timeout):
            async with connect(source, **options) as src, connect(sink, **options) as dst:
                clock.start()
                await src.send(GO)
                async for message in src:
                    await dst.send(transform(message))
                _finish(clock.stop(await dst.recv(), count))
        raise AssertionError("unreachable")

    return trio.run(main)


def pipeline_trio_websocket(source: str, sink: str, count: int,
                            timeout: float) -> dict[str, Any]:
    import trio
    from trio_websocket import ConnectionClosed, open_websocket_url

    clock = Clock()

    async def main() -> dict[str, Any]:
        with trio.fail_after(timeout):
            async with (
                open_websocket_url(source, max_message_size=MAX_SIZE) as src,
                open_websocket_url(sink, max_message_size=MAX_SIZE) as dst,
            ):
                clock.start()
                await src.send_message(GO)
                try:
                    while True:
                        message = await src.get_message()
                        await dst.send_message(transform(message))
                except ConnectionClosed:
                    pass  # the source is done
                _finish(clock.stop(await dst.get_message(), count))
        raise AssertionError("unreachable")

    return trio.run(main)


def _finish(result: dict[str, Any]) -> None:
    """Report and leave at once, without closing (not measured)."""
    emit(json.dumps(result))
    hard_exit(0)


def run_pipeline(impl: str, source: str, sink: str, count: int, timeout: float) -> None:
    try:
        if impl in OURS:
            pipeline_wsstream(source, sink, count, timeout, impl == "wsstream-batch")
        elif impl == "websockets.asyncio":
            pipeline_websockets_asyncio(source, sink, count, timeout)
        elif impl == "websockets.trio":
            pipeline_websockets_trio(source, sink, count, timeout)
        elif impl == "trio-websocket":
            pipeline_trio_websocket(source, sink, count, timeout)
        else:
            raise ValueError(f"unknown implementation {impl!r}")
        result: dict[str, Any] = {"ok": False, "error": "the pipeline ended early"}
    except BaseException as exc:  # one JSON line whatever happened
        text = f"{type(exc).__name__}: {exc}"
        timeout_hit = "TooSlowError" in text or isinstance(exc, TimeoutError)
        result = {"ok": False, "error": "timeout" if timeout_hit else text}
    emit(json.dumps(result))
    hard_exit(1)


# -------------------------------------------------------------- the harness


def _server(role: str, *args: object) -> tuple[subprocess.Popen[str], int]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "benchmarks.pipeline", role, *map(str, args)],
        cwd=harness._cwd(), env=harness._env(), stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL, text=True,
    )
    line = harness._readline(proc, 30)
    if not line.startswith("PORT "):
        harness._reap(proc)
        raise RuntimeError(f"the {role} server did not start: {line!r}")
    return proc, int(line.split()[1])


def measure(impl: str, sc: Scenario, count: int, timeout: float) -> dict[str, Any]:
    source, source_port = _server("source", count, sc.size)
    try:
        sink, sink_port = _server("sink", count, sc.rate)
    except RuntimeError:
        harness._reap(source)
        raise
    try:
        out = subprocess.run(
            [sys.executable, "-m", "benchmarks.pipeline", "client", impl,
             f"ws://127.0.0.1:{source_port}/", f"ws://127.0.0.1:{sink_port}/",
             str(count), str(timeout)],
            cwd=harness._cwd(), env=harness._env(), capture_output=True, text=True,
            timeout=timeout + 15,
        )
    except subprocess.TimeoutExpired:
        return {"ok": False, "error": "timeout"}
    finally:
        harness._reap(source)
        harness._reap(sink)
    lines = [line for line in out.stdout.splitlines() if line.startswith("{")]
    if not lines:
        tail = out.stderr.strip().splitlines()[-1:] or ["no output"]
        return {"ok": False, "error": tail[0]}
    result: dict[str, Any] = json.loads(lines[-1])
    return result


def summarise(results: list[dict[str, Any]], impls: list[str],
              scenarios: list[Scenario]) -> dict[str, Any]:
    table: dict[str, Any] = {}
    for sc in scenarios:
        rows = [r for r in results if r["scenario"] == sc.name]
        cells: dict[str, Any] = {}
        for impl in impls:
            ok = [r["result"] for r in rows if r["impl"] == impl and r["result"].get("ok")]
            errors = [r["result"].get("error") for r in rows
                      if r["impl"] == impl and not r["result"].get("ok")]
            cell: dict[str, Any] = {"n": len(ok) + len(errors), "ok": len(ok), "errors": errors}
            if ok:
                for key in ("value", "cpu_us", "peak_rss_kib", "growth_kib"):
                    cell[key] = statistics.median(x[key] for x in ok)
            cells[impl] = cell
        ratios: dict[str, dict[str, Any]] = {}
        for ours in OURS:
            base = {r["round"]: r["result"] for r in rows
                    if r["impl"] == ours and r["result"].get("ok")}
            for impl in impls:
                if impl == ours:
                    continue
                rs = [base[r["round"]]["value"] / r["result"]["value"] for r in rows
                      if r["impl"] == impl and r["result"].get("ok") and r["round"] in base]
                if rs:
                    ratios[f"{ours}/{impl}"] = {"median": statistics.median(rs),
                                                "min": min(rs), "max": max(rs)}
        table[sc.name] = {"values": cells, "ratios": ratios}
    return table


def markdown(summary: dict[str, Any], impls: list[str], scenarios: list[Scenario],
             rounds: int) -> str:
    def value(cell: dict[str, Any]) -> str:
        if not cell.get("ok"):
            errors = cell.get("errors") or ["-"]
            return ("deadlock/timeout" if errors[0] == "timeout" else f"error: {errors[0]}")
        return f"{cell['value']:,.0f}"

    out = [f"Median of {rounds} round(s); each cell: messages/s end to end.\n",
           "| scenario | " + " | ".join(impls) + " |", "|---|" + "---:|" * len(impls)]
    for sc in scenarios:
        cells = summary[sc.name]["values"]
        out.append(f"| {sc.label()} | " + " | ".join(value(cells[i]) for i in impls) + " |")
    out += ["", "Pipeline process: CPU per message (µs) / peak RSS (MiB) / growth of RSS "
            "from the start of the stream to its peak (MiB).\n",
            "| scenario | " + " | ".join(impls) + " |", "|---|" + "---:|" * len(impls)]
    for sc in scenarios:
        cells = summary[sc.name]["values"]
        out.append(f"| {sc.label()} | " + " | ".join(
            (f"{c['cpu_us']:,.1f} / {c['peak_rss_kib'] / 1024:,.1f} / "
             f"{c['growth_kib'] / 1024:,.1f}") if c.get("ok") else "-"
            for c in (cells[i] for i in impls)) + " |")
    peers = [i for i in impls if i not in OURS]
    for ours in (o for o in OURS if o in impls):
        out += ["", f"Ratio {ours} / peer (messages/s), median (min-max) over rounds; "
                "> 1: wsstream is faster.\n",
                "| scenario | " + " | ".join(peers) + " |", "|---|" + "---:|" * len(peers)]
        for sc in scenarios:
            ratios = summary[sc.name]["ratios"]
            cells = []
            for peer in peers:
                r = ratios.get(f"{ours}/{peer}")
                cells.append(f"{r['median']:.2f} ({r['min']:.2f}-{r['max']:.2f})" if r else "-")
            out.append(f"| {sc.label()} | " + " | ".join(cells) + " |")
    return "\n".join(out) + "\n"


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] in ("source", "sink", "client"):
        raise_nofile_limit()
        role, *rest = argv
        if role == "source":
            serve_source(int(rest[0]), int(rest[1]))
        elif role == "sink":
            serve_sink(int(rest[0]), int(rest[1]))
        else:
            run_pipeline(rest[0], rest[1], rest[2], int(rest[3]), float(rest[4]))
        return 0
    parser = argparse.ArgumentParser(prog="python -m benchmarks.pipeline", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="small counts, 1 round")
    parser.add_argument("--rounds", type=int, help="rounds (default 3, --quick 1)")
    parser.add_argument("--impls", default=",".join(IMPLS),
                        help="comma-separated, from: " + ", ".join(IMPLS))
    parser.add_argument("--scenarios", default="", help="comma-separated names (default "
                        "all): " + ", ".join(sc.name for sc in SCENARIOS))
    parser.add_argument("--scale", type=float, default=1.0, help="multiply every count")
    parser.add_argument("--timeout", type=float, default=60.0,
                        help="seconds per measurement (default 60)")
    parser.add_argument("--out", default=str(harness.ROOT / "benchmarks" / "results"),
                        help="directory for pipeline.json and pipeline.md")
    parser.add_argument("--wsstream-ref", metavar="REF",
                        help="measure wsstream as of this git commit")
    args = parser.parse_args(argv)
    impls = [i for i in args.impls.split(",") if i]
    for impl in impls:
        if impl not in IMPLS:
            parser.error(f"unknown implementation {impl!r}")
    wanted = set(filter(None, args.scenarios.split(",")))
    scenarios = [sc for sc in SCENARIOS if not wanted or sc.name in wanted]
    if wanted - {sc.name for sc in scenarios}:
        parser.error(f"unknown scenarios {sorted(wanted - {sc.name for sc in scenarios})}")
    rounds = args.rounds or (1 if args.quick else 3)
    raise_nofile_limit()
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    env = harness.environment()
    if args.wsstream_ref:
        env["commit"] = harness._export_wsstream(args.wsstream_ref, out_dir)
    results: list[dict[str, Any]] = []
    for rnd in range(rounds):
        for sc in scenarios:
            count = max(1, round((sc.quick if args.quick else sc.count) * args.scale))
            shift = rnd % len(impls)
            for impl in impls[shift:] + impls[:shift]:
                result = measure(impl, sc, count, args.timeout)
                results.append({"round": rnd, "scenario": sc.name, "impl": impl,
                                "count": count, "result": result})
                shown = (f"{result['value']:,.0f} msgs/s, {result['cpu_us']:.1f} us/msg, "
                         f"peak {result['peak_rss_kib'] / 1024:.1f} MiB"
                         if result.get("ok") else f"ERROR {result.get('error')}")
                print(f"round {rnd + 1}/{rounds}  {sc.name:20} {impl:18} {shown}", flush=True)
    env["load_end"] = harness._loadavg()
    summary = summarise(results, impls, scenarios)
    header = (f"Measured {env['date']} on {env['nproc']} x {env['cpu']}, Python "
              f"{env['python']}; {env['versions']}; wsstream commit {env['commit']}; load "
              f"average {env['load']} at the start, {env['load_end']} at the end"
              f"{' (--quick)' if args.quick else ''}.\n")
    md = header + "\n" + markdown(summary, impls, scenarios, rounds)
    (out_dir / "pipeline.json").write_text(json.dumps(
        {"env": env, "rounds": rounds, "results": results, "summary": summary}, indent=1))
    (out_dir / "pipeline.md").write_text(md)
    print()
    print(md)
    failures = [r for r in results if not r["result"].get("ok")
                and r["result"].get("error") != "timeout"]
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
