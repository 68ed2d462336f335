"""Worker processes: ``python -m wsstream serve --workers N``, 1 against 2.

``python -m benchmarks.workers [--rounds R] [--seconds S] [--quick] [--json]``

For N = 1 and N = 2 (alternating, R rounds), it starts the CLI's echo server
(compression off) on 127.0.0.1 and drives it with ``LOADERS`` load-generator
processes (this module's ``client`` mode), then measures, over the same
window of S seconds:

* **echo throughput**: each loader holds ``CONNECTIONS`` connections, each
  with ``INFLIGHT`` 32-byte binary messages in flight; messages echoed per
  second, all connections together;
* **connections per second**: each loader runs ``CONNECT_LOOPS`` loops of
  connect, opening handshake, one 32-byte echo, Close, one after the other;
* **server CPU per message**: the user + system CPU time of the server's
  processes (``/proc/PID/stat``) over the window, divided by the messages
  echoed; and each worker's share of a core.

The loaders are raw asyncio sockets with the frames prebuilt (no WebSocket
library), so that a loader costs far less per message than the server. On
a 2-core machine the loaders and the workers still share the two cores: two
workers cannot have a core each, and what must hold there is that 2 workers
lose no throughput against 1 and that the CPU per message stays flat. Linux
only (SO_REUSEPORT balancing, /proc).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import socket
import statistics
import subprocess
import sys
import time
from typing import Any

from .common import emit, hard_exit, raise_nofile_limit

LOADERS = 2
CONNECTIONS = 8
INFLIGHT = 64
CONNECT_LOOPS = 8
PAYLOAD = bytes(range(32))
#: A masked client frame of PAYLOAD (the mask is fixed: the server unmasks
#: whatever it is), and the size of the server's unmasked echo.
MASK = b"\x12\x34\x56\x78"
FRAME = bytes([0x82, 0x80 | len(PAYLOAD)]) + MASK + bytes(
    b ^ MASK[i % 4] for i, b in enumerate(PAYLOAD)
)
ECHO_SIZE = 2 + len(PAYLOAD)
CLOSE = bytes([0x88, 0x82]) + MASK + bytes(b ^ MASK[i] for i, b in enumerate(b"\x03\xe8"))


def _request(port: int) -> bytes:
    key = base64.b64encode(os.urandom(16)).decode()
    return (
        f"GET /bench HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
        f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
    ).encode()


async def _open(port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    sock = writer.get_extra_info("socket")
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    writer.write(_request(port))
    head = await reader.readuntil(b"\r\n\r\n")
    if not head.startswith(b"HTTP/1.1 101"):
        raise ConnectionError(head.split(b"\r\n", 1)[0].decode(errors="replace"))
    return reader, writer


# -- the load generator (a child process) ------------------------------------------


async def _echo_loop(port: int, start: float, stop: float, counts: list[int]) -> None:
    reader, writer = await _open(port)
    writer.write(FRAME * INFLIGHT)
    pending = 0  # bytes of a partly received echo
    while True:
        data = await reader.read(65536)
        if not data:
            raise ConnectionError("the server closed the connection")
        pending += len(data)
        done, pending = divmod(pending, ECHO_SIZE)
        now = time.time()
        if start <= now < stop:
            counts[0] += done
        if now >= stop:
            writer.close()
            return
        writer.write(FRAME * done)


async def _connect_loop(port: int, start: float, stop: float, counts: list[int]) -> None:
    while True:
        reader, writer = await _open(port)
        writer.write(FRAME)
        await reader.readexactly(ECHO_SIZE)
        writer.write(CLOSE)
        await reader.readexactly(4)  # the server's Close
        writer.close()
        now = time.time()
        if start <= now < stop:
            counts[0] += 1
        if now >= stop:
            return


def client(kind: str, port: int, start: float, stop: float) -> None:
    """Run until ``stop`` (epoch seconds); print how many messages (echo) or
    connections (connect) completed between ``start`` and ``stop``."""
    raise_nofile_limit()
    counts = [0]

    async def main() -> None:
        if kind == "echo":
            loops = [_echo_loop(port, start, stop, counts) for _ in range(CONNECTIONS)]
        else:
            loops = [_connect_loop(port, start, stop, counts) for _ in range(CONNECT_LOOPS)]
        await asyncio.wait_for(asyncio.gather(*loops), timeout=stop - time.time() + 30)

    try:
        asyncio.run(main())
        emit(json.dumps({"ok": True, "count": counts[0]}))
    except Exception as exc:
        emit(json.dumps({"ok": False, "error": repr(exc)}))
    hard_exit()


# -- the harness ------------------------------------------------------------------


def _cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _start_server(workers: int) -> tuple[subprocess.Popen[str], list[int], int]:
    command = [sys.executable, "-m", "wsstream", "serve", "--no-compression",
               "--workers", str(workers), "127.0.0.1", "0"]
    server = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    assert server.stdout is not None
    lines = [server.stdout.readline() for _ in range(workers)]
    port = int(lines[0].split(":")[2].split("/")[0])
    if workers == 1:
        pids = [server.pid]
    else:
        pids = [int(line.rsplit("(worker ", 1)[1].split(")")[0]) for line in lines]
    return server, pids, port


def _measure(workers: int, kind: str, seconds: float) -> dict[str, Any]:
    server, pids, port = _start_server(workers)
    try:
        start = time.time() + 1.0  # connections set up and warm by then
        stop = start + seconds
        loaders = [
            subprocess.Popen(
                [sys.executable, "-m", "benchmarks.workers", "--client", kind, str(port),
                 str(start), str(stop)],
                stdout=subprocess.PIPE, text=True,
            )
            for _ in range(LOADERS)
        ]
        time.sleep(max(0.0, start - time.time()))
        cpu_before = [_cpu_seconds(pid) for pid in pids]
        loaders_before = sum(_cpu_seconds(loader.pid) for loader in loaders)
        time.sleep(max(0.0, stop - time.time()))
        cpu_after = [_cpu_seconds(pid) for pid in pids]
        loaders_after = sum(_cpu_seconds(loader.pid) for loader in loaders)
        results = [json.loads(loader.communicate(timeout=60)[0]) for loader in loaders]
    finally:
        server.terminate()
        server.wait(timeout=30)
    failed = [r["error"] for r in results if not r["ok"]]
    if failed:
        raise RuntimeError(f"a load generator failed: {failed[0]}")
    count = sum(r["count"] for r in results)
    cpu = [after - before for before, after in zip(cpu_before, cpu_after, strict=True)]
    return {
        "workers": workers, "kind": kind, "count": count, "seconds": seconds,
        "per_second": count / seconds,
        "server_cpu_s": sum(cpu),
        "cpu_us_per_item": sum(cpu) / count * 1e6 if count else None,
        "worker_core_share": [c / seconds for c in cpu],
        "loaders_core_share": (loaders_after - loaders_before) / seconds,
    }


def run(rounds: int, seconds: float) -> dict[str, Any]:
    measurements: list[dict[str, Any]] = []
    for _ in range(rounds):
        for kind in ("echo", "connect"):
            for workers in (1, 2):
                measurements.append(_measure(workers, kind, seconds))
    summary: dict[str, Any] = {}
    for kind in ("echo", "connect"):
        for workers in (1, 2):
            rows = [m for m in measurements if (m["kind"], m["workers"]) == (kind, workers)]
            summary[f"{kind}-{workers}"] = {
                "per_second": statistics.median(m["per_second"] for m in rows),
                "cpu_us_per_item": statistics.median(m["cpu_us_per_item"] for m in rows),
                "worker_core_share": [
                    statistics.median(m["worker_core_share"][i] for m in rows)
                    for i in range(workers)
                ],
                "loaders_core_share": statistics.median(m["loaders_core_share"] for m in rows),
            }
    return {
        "machine": {"cpus": os.cpu_count(), "load_average": os.getloadavg()},
        "settings": {"loaders": LOADERS, "connections": CONNECTIONS, "inflight": INFLIGHT,
                     "connect_loops": CONNECT_LOOPS, "message_bytes": len(PAYLOAD),
                     "rounds": rounds, "seconds": seconds},
        "summary": summary, "measurements": measurements,
    }


def render(results: dict[str, Any]) -> str:
    s = results["summary"]
    lines = [
        "| measurement | 1 worker | 2 workers | 2 / 1 |",
        "|---|---:|---:|---:|",
    ]
    for kind, label, unit in (("echo", "echo throughput", "msgs/s"),
                              ("connect", "connections", "conn/s")):
        one, two = s[f"{kind}-1"], s[f"{kind}-2"]
        lines.append(
            f"| {label} ({unit}) | {one['per_second']:,.0f} | {two['per_second']:,.0f} | "
            f"{two['per_second'] / one['per_second']:.2f} |"
        )
        lines.append(
            f"| server CPU per {'message' if kind == 'echo' else 'connection'} (µs) | "
            f"{one['cpu_us_per_item']:.1f} | {two['cpu_us_per_item']:.1f} | "
            f"{two['cpu_us_per_item'] / one['cpu_us_per_item']:.2f} |"
        )
        shares = " + ".join(f"{x * 100:.0f} %" for x in two["worker_core_share"])
        lines.append(
            f"| server CPU during {label} (share of a core) | "
            f"{one['worker_core_share'][0] * 100:.0f} % | {shares} | |"
        )
        lines.append(
            f"| load generators' CPU during {label} (share of a core) | "
            f"{one['loaders_core_share'] * 100:.0f} % | {two['loaders_core_share'] * 100:.0f} % | |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.workers", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--quick", action="store_true", help="1 round of 1 second")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--client", nargs=4, metavar=("KIND", "PORT", "START", "STOP"),
                        help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.client:
        kind, port, start, stop = args.client
        client(kind, int(port), float(start), float(stop))
        return 0
    if args.quick:
        args.rounds, args.seconds = 1, 1.0
    results = run(args.rounds, args.seconds)
    if args.json:
        print(json.dumps(results, indent=2))
    else:
        print(render(results))
        print(f"\n{results['machine']}; {results['settings']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
