"""wsstream against its peers, side by side: ``python -m benchmarks [--quick]``.

Design
------
* Every measurement runs a fresh **server process** for one (implementation,
  scenario) and a separate **client process**, on 127.0.0.1, compression off,
  keepalive off, everything else at each library's defaults.
* Two pairings, chosen with ``--pairing`` (default: both):

  - ``shared``: one client for every server, picows (Cython, asyncio), the
    fastest client available, so that only the server differs and the numbers
    are the servers' own. The raw-trio floor gets a raw asyncio client with the
    same callback-driven loop (its protocol is not WebSocket).
  - ``self``: each implementation's client talks to its own server (the raw
    floor: a raw trio client). This is what a user of one library gets end to
    end, and it measures wsstream's client too.

* Scenarios: pipelined echo (64 messages in flight) of 32 B, 1 KiB (binary and
  text), 64 KiB and 1 MiB binary; round trip of one 32 B message at a time
  (median and p99); one-way streaming of 1 MiB messages (MB/s, client to a
  server that discards them); server RSS per idle connection with 1,000 and
  10,000 connections (client: ``benchmarks.memclient``, raw sockets doing the
  handshake by hand; RLIMIT_NOFILE is raised to the hard limit in both
  processes), the same with each server's default options and the client
  offering permessage-deflate as browsers do, idle and after one chat-sized
  message each way (168 bytes), and the latter with an offer asking for no
  context takeover both ways; connect-and-echo latency of honest clients
  (``benchmarks.connectecho``) while one hostile client
  (``benchmarks.flooder``) floods the server with frames that carry nothing
  (empty continuations, 1-byte fragments, pings), and without a flood.
* Rounds interleave the implementations (the order rotates each round) so that
  machine noise spreads over all of them; ratios wsstream/peer are taken within
  a round, then summarised as min / median / max over the rounds.
* Every measurement is bounded by a timeout (in the client, and the harness
  kills a client that overruns it); one that runs out is reported as
  ``deadlock/timeout (k/n)``, k of n rounds (websockets.trio's pipelined 1 MiB
  echo deadlocks every time, its 64 KiB echo sometimes).
"""

from __future__ import annotations

import argparse
import datetime
import importlib.metadata
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from .common import IMPLS, RAW_IMPLS, raise_nofile_limit, rss_bytes

ROOT = Path(__file__).resolve().parent.parent
KIB = 1024
MIB = 1024 * 1024


@dataclass(frozen=True)
class Scenario:
    name: str
    kind: str  # echo | rtt | stream | idle | flood
    size: int = 0
    text: bool = False
    count: int = 0  # full run; messages, connections for "idle", samples for "flood"
    quick: int = 0  # --quick
    inflight: int = 64
    #: idle: the server's mode (servers.py: "echo" with the harness's settings,
    #: "defaults" with the library's) and the memory client's (memclient.py).
    server_mode: str = "echo"
    client_mode: str = "ws"
    #: flood: what the hostile client sends (flooder.py), "" for no flood.
    flood: str = ""

    @property
    def client_free(self) -> bool:
        """Measured with the harness's own raw-socket clients: the same in
        both pairings, so run once."""
        return self.kind in ("idle", "flood")

    @property
    def websocket_only(self) -> bool:
        """Meaningless for the raw floors (not WebSocket): floods, and
        WebSocket options."""
        return self.kind == "flood" or self.server_mode == "defaults"

    def label(self) -> str:
        if self.kind == "idle":
            what = {
                "ws": "",
                "deflate": ", defaults, deflate offered",
                "deflate-msg": ", defaults, deflate offered, 1 msg each way",
                "deflate-nct-msg": ", defaults, deflate offered without context"
                                   " takeover, 1 msg each way",
            }[self.client_mode]
            return f"idle memory, {self.count:,} conns{what}"
        if self.kind == "flood":
            return "connect+echo, " + FLOOD_LABELS[self.flood]
        size = _size_label(self.size)
        if self.kind == "echo":
            return f"echo {size} {'text' if self.text else 'binary'}, 64 in flight"
        if self.kind == "rtt":
            return f"round trip {size}"
        return f"one-way stream of {size} messages"

    def unit(self) -> str:
        return {"echo": "msgs/s", "rtt": "µs median (p99)", "stream": "MB/s",
                "idle": "KiB/conn", "flood": "ms median (p99)"}[self.kind]


FLOOD_LABELS = {
    "": "no flood",
    "cont": "flood of empty continuation frames",
    "frag": "flood of 1-byte fragments",
    "ping": "flood of empty pings",
}


def _size_label(size: int) -> str:
    if size >= MIB:
        return f"{size // MIB} MiB"
    if size >= KIB:
        return f"{size // KIB} KiB"
    return f"{size} B"


SCENARIOS = [
    Scenario("echo-32B-bin", "echo", 32, False, 20000, 2000),
    Scenario("echo-32B-text", "echo", 32, True, 20000, 2000),
    Scenario("echo-1KiB-bin", "echo", KIB, False, 20000, 2000),
    Scenario("echo-1KiB-text", "echo", KIB, True, 20000, 2000),
    Scenario("echo-64KiB-bin", "echo", 64 * KIB, False, 3000, 300),
    Scenario("echo-1MiB-bin", "echo", MIB, False, 200, 30),
    Scenario("rtt-32B", "rtt", 32, False, 3000, 300, inflight=1),
    Scenario("stream-1MiB", "stream", MIB, False, 300, 30, inflight=1),
    Scenario("idle-1000", "idle", count=1000, quick=1000),
    Scenario("idle-10000", "idle", count=10000, quick=2000),
    # The way browsers connect: every option at its default, deflate offered.
    Scenario("idle-deflate-1000", "idle", count=1000, quick=1000, server_mode="defaults",
             client_mode="deflate"),
    Scenario("idle-deflate-10000", "idle", count=10000, quick=2000, server_mode="defaults",
             client_mode="deflate"),
    Scenario("idle-deflate-msg-1000", "idle", count=1000, quick=1000, server_mode="defaults",
             client_mode="deflate-msg"),
    Scenario("idle-deflate-msg-10000", "idle", count=10000, quick=2000,
             server_mode="defaults", client_mode="deflate-msg"),
    # The same where the client asks for no context takeover both ways: a
    # server that honours it can release its zlib contexts after a message.
    Scenario("idle-deflate-nct-msg-1000", "idle", count=1000, quick=1000,
             server_mode="defaults", client_mode="deflate-nct-msg"),
    # Fairness: one hostile client floods, honest clients connect and echo.
    Scenario("flood-none", "flood", count=100, quick=10),
    Scenario("flood-cont", "flood", count=100, quick=10, flood="cont"),
    Scenario("flood-frag", "flood", count=100, quick=10, flood="frag"),
    Scenario("flood-ping", "flood", count=100, quick=10, flood="ping"),
]

SHARED_CLIENT = {impl: "picows" for impl in IMPLS} | {raw: "raw-asyncio" for raw in RAW_IMPLS}


def client_for(impl: str, pairing: str) -> str:
    if pairing == "shared":
        return SHARED_CLIENT[impl]
    return "raw-trio" if impl in RAW_IMPLS else impl


# ------------------------------------------------------------ measurements


class Server:
    """One server process; ``port`` once it listens."""

    def __init__(self, impl: str, mode: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "benchmarks.servers", impl, mode],
            cwd=_cwd(), stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
            env=_env(),
        )
        line = _readline(self.proc, 30)
        if not line.startswith("PORT "):
            self.close()
            raise RuntimeError(f"{impl} server did not start: {line!r}")
        self.port = int(line.split()[1])

    def close(self) -> None:
        _reap(self.proc)


def _reap(proc: subprocess.Popen[str]) -> None:
    if proc.poll() is None:
        proc.kill()
    proc.wait()
    for pipe in (proc.stdin, proc.stdout, proc.stderr):
        if pipe is not None:
            pipe.close()


#: Set by --wsstream-ref: a directory holding that commit's wsstream package,
#: put first on the children's path so they import it instead of the installed one.
WSSTREAM_DIR: str | None = None


def _cwd() -> Path:
    """Where the children run. ``python -m`` puts its working directory
    first on sys.path, ahead of PYTHONPATH: run from ROOT, a child imports
    the working tree's wsstream whatever --wsstream-ref exported, so run from
    the export then (``benchmarks`` comes from ROOT, on PYTHONPATH)."""
    return Path(WSSTREAM_DIR) if WSSTREAM_DIR else ROOT


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        filter(None, [WSSTREAM_DIR, str(ROOT), env.get("PYTHONPATH")])
    )
    env.pop("PYTHONASYNCIODEBUG", None)
    return env


def _readline(proc: subprocess.Popen[str], timeout: float) -> str:
    """One line of a child's stdout, or "" after ``timeout`` seconds or at EOF."""
    import selectors

    assert proc.stdout is not None
    with selectors.DefaultSelector() as sel:
        sel.register(proc.stdout, selectors.EVENT_READ)
        if not sel.select(timeout):
            return ""
    return proc.stdout.readline().strip()


def measure(impl: str, client: str, sc: Scenario, count: int, timeout: float) -> dict[str, Any]:
    """One measurement; always returns, with ``ok`` and ``error`` on failure."""
    if sc.kind == "idle":
        return measure_idle(impl, count, timeout, sc.server_mode, sc.client_mode)
    if sc.kind == "flood":
        return measure_flood(impl, sc.flood, count, timeout)
    server = Server(impl, "sink" if sc.kind == "stream" else "echo")
    try:
        spec = {
            "kind": sc.kind, "size": sc.size, "text": sc.text, "count": count,
            "inflight": sc.inflight, "warmup": max(1, count // 10), "timeout": timeout,
        }
        url = f"ws://127.0.0.1:{server.port}/{'sink' if sc.kind == 'stream' else 'echo'}"
        server_cpu = _cpu_seconds(server.proc.pid)
        try:
            out = subprocess.run(
                [sys.executable, "-m", "benchmarks.clients", client, url, json.dumps(spec)],
                cwd=_cwd(), env=_env(), capture_output=True, text=True, timeout=timeout + 15,
            )
        except subprocess.TimeoutExpired:
            return {"ok": False, "error": "timeout"}
        lines = [line for line in out.stdout.splitlines() if line.startswith("{")]
        if not lines:
            tail = out.stderr.strip().splitlines()[-1:] or ["no output"]
            return {"ok": False, "error": tail[0]}
        result: dict[str, Any] = json.loads(lines[-1])
        # The server's CPU over the whole client run (handshake and warm-up
        # included: they are a few per cent of it), per message.
        result["server_cpu_us"] = (
            (_cpu_seconds(server.proc.pid) - server_cpu) / (count + spec["warmup"]) * 1e6
        )
    finally:
        server.close()
    if result.get("ok"):
        elapsed = result["elapsed"]
        if "cpu" in result:
            result["client_cpu_us"] = result["cpu"] / count * 1e6
        if sc.kind == "echo":
            result["value"] = count / elapsed
        elif sc.kind == "rtt":
            result["value"] = result["median_us"]
        elif sc.kind == "stream":
            result["value"] = count * sc.size / elapsed / 1e6
    return result


def measure_idle(impl: str, count: int, timeout: float, server_mode: str = "echo",
                 client_mode: str = "ws") -> dict[str, Any]:
    """Server RSS growth per idle connection (handshake done, no traffic, or
    one small message each way in the ``*-msg`` modes)."""
    mode = "raw" if impl in RAW_IMPLS else client_mode
    server = Server(impl, server_mode)
    clients: list[subprocess.Popen[str]] = []

    def connect(n: int) -> subprocess.Popen[str] | str:
        proc = subprocess.Popen(
            [sys.executable, "-m", "benchmarks.memclient", str(server.port), str(n), mode],
            cwd=_cwd(), env=_env(), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL, text=True,
        )
        clients.append(proc)
        line = _readline(proc, timeout)
        if not line.startswith("READY"):
            return line or "timeout"
        return proc

    def release(proc: subprocess.Popen[str]) -> None:
        try:
            assert proc.stdin is not None
            proc.stdin.write("\n")
            proc.stdin.flush()
            proc.wait(10)
        except (OSError, subprocess.TimeoutExpired):
            pass
        _reap(proc)

    try:
        # Warm up: the first connections import and allocate what every
        # connection shares; they are not part of the per-connection cost.
        warm = connect(4)
        if isinstance(warm, str):
            return {"ok": False, "error": warm}
        release(warm)
        time.sleep(0.5)
        base = rss_bytes(server.proc.pid)
        t0 = time.perf_counter()
        held = connect(count)
        if isinstance(held, str):
            return {"ok": False, "error": held}
        elapsed = time.perf_counter() - t0
        rss = _settled_rss(server.proc.pid)
        release(held)
        return {
            "ok": True, "elapsed": elapsed, "base_rss": base, "rss": rss,
            "value": (rss - base) / count / KIB,
        }
    finally:
        for proc in clients:
            _reap(proc)
        server.close()


#: How long the flood runs before the honest clients start: the hostile
#: connection is open and the server busy with it.
FLOOD_HEADSTART = 0.5


def measure_flood(impl: str, kind: str, count: int, timeout: float) -> dict[str, Any]:
    """Honest clients' connect-and-echo latency (``count`` one after the
    other, at most ``timeout`` seconds) while one client floods the server
    with frames of ``kind`` (none if "")."""
    server = Server(impl, "echo")
    flooder: subprocess.Popen[str] | None = None
    try:
        if kind:
            flooder = subprocess.Popen(
                [sys.executable, "-m", "benchmarks.flooder", str(server.port), kind,
                 str(timeout + 30)],
                cwd=_cwd(), env=_env(), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL, text=True,
            )
            line = _readline(flooder, 20)
            if line != "READY":
                return {"ok": False, "error": f"flooder: {line or 'timeout'}"}
            time.sleep(FLOOD_HEADSTART)
        try:
            out = subprocess.run(
                [sys.executable, "-m", "benchmarks.connectecho", str(server.port), str(count),
                 str(timeout)],
                cwd=_cwd(), env=_env(), capture_output=True, text=True, timeout=timeout + 15,
            )
        except subprocess.TimeoutExpired:
            return {"ok": False, "error": "timeout"}
        lines = [line for line in out.stdout.splitlines() if line.startswith("{")]
        if not lines:
            tail = out.stderr.strip().splitlines()[-1:] or ["no output"]
            return {"ok": False, "error": tail[0]}
        result: dict[str, Any] = json.loads(lines[-1])
        if flooder is not None:
            result["flood"] = _stop_flooder(flooder)
    finally:
        if flooder is not None:
            _reap(flooder)
        server.close()
    if result.get("ok"):
        result["value"] = result["median_us"] / 1000
        result["p99_ms"] = result["p99_us"] / 1000
        flood = result.get("flood", {})
        if flood.get("seconds"):
            # How much flood the server took in: one that stops reading the
            # flooder (TCP backpressure) is hit less; read both rows.
            result["flood_rate"] = flood.get("frames", 0) / flood["seconds"]
    return result


def _stop_flooder(proc: subprocess.Popen[str]) -> dict[str, Any]:
    """Stop the flooder; its report (bytes, frames, reconnections)."""
    try:
        assert proc.stdin is not None
        proc.stdin.write("\n")
        proc.stdin.flush()
        line = _readline(proc, 10)
        return dict(json.loads(line)) if line.startswith("{") else {"error": line or "no report"}
    except (OSError, ValueError) as exc:
        return {"error": str(exc)}


def _cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far, from /proc (Linux)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    # Fields 14 and 15 of stat(5) (utime, stime), counted after the name.
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _settled_rss(pid: int) -> int:
    """RSS once it stopped moving (the server may still finish handshakes)."""
    time.sleep(0.5)
    last = rss_bytes(pid)
    for _ in range(20):
        time.sleep(0.25)
        now = rss_bytes(pid)
        if abs(now - last) <= 0.002 * last:
            return max(now, last)
        last = now
    return last


# ----------------------------------------------------------------- summary


def summarise(results: list[dict[str, Any]], impls: list[str], pairings: list[str],
              scenarios: list[Scenario], rounds: int) -> dict[str, Any]:
    """Per (pairing, scenario, impl): values over rounds and ratios to wsstream."""
    table: dict[str, Any] = {}
    for pairing in pairings:
        for sc in scenarios:
            rows = [r for r in results if r["pairing"] == pairing and r["scenario"] == sc.name
                    and not r["result"].get("skipped")]  # older runs skipped after a timeout
            per_impl: dict[str, Any] = {}
            for impl in impls:
                mine = [r for r in rows if r["impl"] == impl]
                ok = [r for r in mine if r["result"].get("ok")]
                errors = [r["result"].get("error", "?") for r in mine if not r["result"].get("ok")]
                cell: dict[str, Any] = {"n": len(mine), "ok": len(ok), "errors": errors}
                if ok:
                    values = [r["result"]["value"] for r in ok]
                    cell.update(median=statistics.median(values), min=min(values),
                                max=max(values))
                    for key in ("client_cpu_us", "server_cpu_us"):
                        cpu = [r["result"][key] for r in ok if key in r["result"]]
                        if cpu:
                            cell[key] = statistics.median(cpu)
                    if sc.kind == "rtt":
                        cell["p99"] = statistics.median(r["result"]["p99_us"] for r in ok)
                    if sc.kind == "flood":
                        cell["p99"] = statistics.median(r["result"]["p99_ms"] for r in ok)
                        if sc.flood:
                            cell["rate"] = statistics.median(
                                r["result"].get("flood_rate", 0.0) for r in ok)
                        # Did the server cut the flooder off (it reconnects)?
                        cell["cut"] = sum(r["result"].get("flood", {}).get("reconnects", 0)
                                          for r in ok)
                per_impl[impl] = cell
            ratios: dict[str, Any] = {}
            base = {r["round"]: r["result"] for r in rows
                    if r["impl"] == "wsstream" and r["result"].get("ok")}
            for impl in impls:
                if impl == "wsstream":
                    continue
                rs = []
                for r in rows:
                    if r["impl"] != impl or not r["result"].get("ok") or r["round"] not in base:
                        continue
                    ours, theirs = base[r["round"]]["value"], r["result"]["value"]
                    # Ratios read "wsstream / peer" of a rate: > 1 is wsstream
                    # ahead. Round trips compare rates (1 / median latency);
                    # memory compares bytes per connection (< 1 is better).
                    latency = sc.kind in ("rtt", "flood")
                    rs.append(theirs / ours if latency else ours / theirs)
                if rs:
                    ratios[impl] = {"median": statistics.median(rs), "min": min(rs),
                                    "max": max(rs), "n": len(rs)}
            table[f"{pairing}/{sc.name}"] = {"values": per_impl, "ratios": ratios}
    return table


def _fmt_value(sc: Scenario, cell: dict[str, Any] | None) -> str:
    if not cell or not cell["n"]:
        return "-"
    if not cell["ok"]:
        errs = cell["errors"]
        if all(e == "timeout" for e in errs):
            return f"deadlock/timeout ({len(errs)}/{cell['n']})"
        return f"error: {errs[0]}"
    m = cell["median"]
    if sc.kind == "echo":
        text = f"{m:,.0f}"
    elif sc.kind == "rtt":
        text = f"{m:,.0f} ({cell['p99']:,.0f})"
    elif sc.kind == "flood":
        text = f"{m:,.1f} ({cell['p99']:,.1f})"
        if cell.get("cut"):
            text += f" (flooder cut off {cell['cut']}x)"
    elif sc.kind == "stream":
        text = f"{m:,.0f}"
    else:
        text = f"{m:,.1f}"
    if cell["ok"] < cell["n"]:
        what = "deadlock/timeout" if all(e == "timeout" for e in cell["errors"]) else "failed"
        text += f" ({what} {cell['n'] - cell['ok']}/{cell['n']})"
    return text


def _fmt_cpu(cell: dict[str, Any] | None) -> str:
    if not cell or "server_cpu_us" not in cell:
        return "-"
    client = cell.get("client_cpu_us")
    server = f"{cell['server_cpu_us']:,.1f}"
    return f"{client:,.1f} / {server}" if client is not None else f"- / {server}"


def _fmt_rate(cell: dict[str, Any] | None) -> str:
    if not cell or "rate" not in cell:
        return "-"
    return f"{cell['rate'] / 1000:,.0f}"


def _fmt_ratio(r: dict[str, Any] | None) -> str:
    if not r:
        return "-"

    def num(x: float) -> str:
        # Ratios under a flood span 1e-4 to 1e4: keep two significant digits.
        if x >= 1000:
            return f"{x:,.0f}"
        return f"{x:.2f}" if x >= 0.01 else f"{x:.2g}"

    if r["n"] == 1:
        return num(r["median"])
    return f"{num(r['median'])} ({num(r['min'])}-{num(r['max'])})"


PAIRING_TEXT = {
    "shared": "**shared client**: every WebSocket server is driven by the same picows "
              "client (asyncio, Cython), so only the server differs; the raw-trio floors are "
              "driven by a raw asyncio client with the same loop.",
    "self": "**self-paired**: each implementation's own client against its own server "
            "(the raw-trio floors: a raw trio client); the idle-memory and flood rows use "
            "the same raw-socket clients in both pairings.",
}


def markdown(summary: dict[str, Any], impls: list[str], pairings: list[str],
             scenarios: list[Scenario], rounds: int) -> str:
    out: list[str] = []
    for pairing in pairings:
        if not any(
            f"{pairing}/{sc.name}" in summary
            and not (pairing == "self" and sc.client_free and "shared" in pairings)
            for sc in scenarios
        ):
            continue  # every scenario ran in the other pairing
        out.append(f"### Pairing: {pairing}\n")
        out.append(PAIRING_TEXT[pairing] + f" Median of {rounds} round(s).\n")
        out.append("| scenario | unit | " + " | ".join(impls) + " |")
        out.append("|---|---|" + "---:|" * len(impls))
        for sc in scenarios:
            entry = summary.get(f"{pairing}/{sc.name}")
            if not entry:
                continue
            if pairing == "self" and sc.client_free and "shared" in pairings:
                continue  # identical setup to the shared pairing
            cells = [_fmt_value(sc, entry["values"].get(impl)) for impl in impls]
            out.append(f"| {sc.label()} | {sc.unit()} | " + " | ".join(cells) + " |")
            if sc.kind == "flood" and sc.flood:
                rates = [_fmt_rate(entry["values"].get(impl)) for impl in impls]
                out.append("| ↳ flood frames the server took in | k frames/s | "
                           + " | ".join(rates) + " |")
        peers = [i for i in impls if i != "wsstream"]
        if "wsstream" in impls and peers:
            out.append("")
            out.append("Ratio wsstream / peer, median (min-max) over rounds: for msgs/s and "
                       "MB/s, > 1 means wsstream is faster; for round trips it is the ratio of "
                       "round-trip rates (peer latency / wsstream latency), > 1 means wsstream "
                       "is faster, and so for connect+echo under a flood; for memory it is "
                       "the ratio of KiB per connection, < 1 means wsstream uses less.\n")
            out.append("| scenario | " + " | ".join(peers) + " |")
            out.append("|---|" + "---:|" * len(peers))
            for sc in scenarios:
                entry = summary.get(f"{pairing}/{sc.name}")
                if not entry:
                    continue
                if pairing == "self" and sc.client_free and "shared" in pairings:
                    continue
                cells = [_fmt_ratio(entry["ratios"].get(p)) for p in peers]
                out.append(f"| {sc.label()} | " + " | ".join(cells) + " |")
        cpu_rows = []
        for sc in scenarios:
            entry = summary.get(f"{pairing}/{sc.name}")
            if not entry or sc.kind not in ("echo", "rtt", "stream"):
                continue
            cells = [_fmt_cpu(entry["values"].get(impl)) for impl in impls]
            if any(cell != "-" for cell in cells):
                cpu_rows.append(f"| {sc.label()} | " + " | ".join(cells) + " |")
        if cpu_rows:
            out.append("")
            out.append("CPU per message, µs, client / server, median over rounds (client: "
                       "its own process time over the timed part; server: `/proc/<pid>/stat` "
                       "over the whole client run, warm-up and handshake included).\n")
            out.append("| scenario | " + " | ".join(impls) + " |")
            out.append("|---|" + "---:|" * len(impls))
            out.extend(cpu_rows)
        out.append("")
    return "\n".join(out)


def _wsstream_commit() -> str:
    """The git commit of the wsstream that the benchmark processes import,
    with "+dirty" when its files differ from that commit."""
    try:
        import wsstream

        pkg = Path(wsstream.__file__).resolve().parent
        git = ["git", "-C", str(pkg.parent)]
        head = subprocess.run([*git, "rev-parse", "--short", "HEAD"], capture_output=True,
                              text=True, timeout=5).stdout.strip()
        dirty = subprocess.run([*git, "status", "--porcelain", "--", pkg.name],
                               capture_output=True, text=True, timeout=5).stdout.strip()
    except (ImportError, OSError, subprocess.TimeoutExpired):
        return "unknown"
    return (head + ("+dirty" if dirty else "")) if head else "unknown (not a git checkout)"


def _export_wsstream(ref: str, out_dir: Path) -> str:
    """Export ``ref``'s wsstream package under ``out_dir``; return the short hash."""
    global WSSTREAM_DIR
    import shutil
    import tarfile
    import tempfile

    short = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", ref],
                           capture_output=True, text=True, check=True).stdout.strip()
    dest = out_dir / f"wsstream-{short}"
    shutil.rmtree(dest, ignore_errors=True)
    dest.mkdir(parents=True)
    with tempfile.TemporaryFile() as archive:
        subprocess.run(["git", "-C", str(ROOT), "archive", ref, "wsstream"], stdout=archive,
                       check=True)
        archive.seek(0)
        with tarfile.open(fileobj=archive) as tar:
            tar.extractall(dest, filter="data")
    WSSTREAM_DIR = str(dest)
    return short


def environment() -> dict[str, str]:
    cpu = "unknown"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    versions = {}
    for dist in ("wsstream", "websockets", "trio", "trio-websocket", "picows"):
        try:
            versions[dist] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            versions[dist] = "not installed"
    commit = _wsstream_commit()
    import resource

    return {
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "nproc": str(os.cpu_count()),
        "cpu": cpu,
        "python": platform.python_version(),
        "kernel": platform.release(),
        "versions": ", ".join(f"{k} {v}" for k, v in versions.items()),
        "commit": commit,
        "nofile": "/".join(str(x) for x in resource.getrlimit(resource.RLIMIT_NOFILE)),
        "load": _loadavg(),
    }


def _loadavg() -> str:
    """1-minute load average: this machine is shared, and load skews every number."""
    try:
        return f"{os.getloadavg()[0]:.1f}"
    except OSError:
        return "?"


def plot(summary: dict[str, Any], impls: list[str], pairings: list[str], path: Path) -> bool:
    """Throughput (MB/s, one direction) against message size; False without matplotlib."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    sized = [sc for sc in SCENARIOS if sc.kind == "echo" and not sc.text]
    fig, axes = plt.subplots(1, len(pairings), figsize=(6 * len(pairings), 4.5), squeeze=False)
    for ax, pairing in zip(axes[0], pairings, strict=True):
        for impl in impls:
            xs, ys = [], []
            for sc in sized:
                cell = summary.get(f"{pairing}/{sc.name}", {}).get("values", {}).get(impl)
                if cell and cell.get("ok"):
                    xs.append(sc.size)
                    ys.append(cell["median"] * sc.size / 1e6)
            if xs:
                ax.plot(xs, ys, marker="o", label=impl,
                        linewidth=2.5 if impl == "wsstream" else 1.2)
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xticks([sc.size for sc in sized], [_size_label(sc.size) for sc in sized])
        ax.set_xlabel("message size (binary, 64 in flight)")
        ax.set_ylabel("echo throughput, MB/s each way")
        ax.set_title(f"pairing: {pairing}")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


# ------------------------------------------------------------------- main


def report(env: dict[str, str], results: list[dict[str, Any]], impls: list[str],
           pairings: list[str], scenarios: list[Scenario], rounds: int, quick: bool,
           out_dir: Path, with_plot: bool) -> None:
    """Write results.json, results.md and throughput.png; print the tables."""
    summary = summarise(results, impls, pairings, scenarios, rounds)
    md = markdown(summary, impls, pairings, scenarios, rounds)
    header = (f"Measured {env['date']} on {env['nproc']} x {env['cpu']}, Linux "
              f"{env['kernel']}, Python {env['python']}; {env['versions']}; "
              f"wsstream commit {env['commit']}; RLIMIT_NOFILE soft/hard {env['nofile']}; "
              f"load average {env.get('load', '?')} at the start, "
              f"{env.get('load_end', '?')} at the end "
              f"({env['nproc']} CPUs){' (--quick)' if quick else ''}.\n")
    (out_dir / "results.json").write_text(json.dumps(
        {"env": env, "rounds": rounds, "quick": quick, "results": results,
         "summary": summary}, indent=1))
    (out_dir / "results.md").write_text(header + "\n" + md)
    print()
    print(header)
    print(md)
    if with_plot:
        png = out_dir / "throughput.png"
        if plot(summary, impls, pairings, png):
            print(f"plot: {png}")
        else:
            print("plot skipped: matplotlib is not installed")


def render(path: Path, out_dir: Path, with_plot: bool) -> int:
    """Tables and plot again from a results.json, without measuring."""
    data = json.loads(path.read_text())
    results = data["results"]
    impls = [i for i in IMPLS if any(r["impl"] == i for r in results)]
    pairings = [p for p in ("shared", "self") if any(r["pairing"] == p for r in results)]
    counts = {r["scenario"]: r["count"] for r in results}
    scenarios = [
        (replace(sc, count=counts[sc.name]) if sc.kind == "idle" else sc)
        for sc in SCENARIOS if sc.name in counts
    ]
    out_dir.mkdir(parents=True, exist_ok=True)
    report(data["env"], results, impls, pairings, scenarios, data["rounds"], data["quick"],
           out_dir, with_plot)
    return 0


def compare(before_path: Path, after_path: Path) -> tuple[str, list[str]]:
    """Two runs side by side: for each (pairing, scenario) in both,
    wsstream's median value and its median ratio to each peer, before ->
    after. A ratio whose median after is below its minimum over the rounds
    before is marked (the "nothing slower elsewhere" rule); returns the
    markdown and those marks."""
    before = json.loads(before_path.read_text())["summary"]
    after = json.loads(after_path.read_text())["summary"]
    by_name = {sc.name: sc for sc in SCENARIOS}
    peers = [i for i in IMPLS if i != "wsstream"]
    worse: list[str] = []
    out = ["| pairing | scenario | wsstream | " + " | ".join(peers) + " |",
           "|---|---|---:|" + "---:|" * len(peers)]
    for key, entry in after.items():
        if key not in before:
            continue
        pairing, name = key.split("/", 1)
        sc = by_name.get(name)
        if sc is None:
            continue
        old, new = before[key]["values"].get("wsstream"), entry["values"].get("wsstream")
        cells = [f"{_fmt_value(sc, old)} → {_fmt_value(sc, new)}"]
        for peer in peers:
            was, now = before[key]["ratios"].get(peer), entry["ratios"].get(peer)
            if not was or not now:
                cells.append("-")
                continue
            # Memory ratios are better lower; every other ratio, higher.
            lower_is_better = sc.kind == "idle"
            slower = (now["median"] > was["max"]) if lower_is_better else (
                now["median"] < was["min"])
            mark = " **(worse)**" if slower else ""
            if slower:
                worse.append(f"{key} vs {peer}")
            cells.append(f"{was['median']:.2f} → {now['median']:.2f}{mark}")
        out.append(f"| {pairing} | {sc.label()} | " + " | ".join(cells) + " |")
    return "\n".join(out) + "\n", worse


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true",
                        help="small counts, 1 round, 2,000 idle connections at most")
    parser.add_argument("--rounds", type=int, help="rounds (default 3, --quick 1)")
    parser.add_argument("--impls", default=",".join(IMPLS),
                        help="comma-separated, from: " + ", ".join(IMPLS))
    parser.add_argument("--pairing", default="shared,self", help="shared, self, or both")
    parser.add_argument("--scenarios", default="",
                        help="comma-separated names (default all): "
                             + ", ".join(sc.name for sc in SCENARIOS))
    parser.add_argument("--scale", type=float, default=1.0, help="multiply every count")
    parser.add_argument("--timeout", type=float, help="seconds per measurement "
                        "(default 30, --quick 20)")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results"),
                        help="directory for results.json, results.md, throughput.png")
    parser.add_argument("--no-plot", action="store_true")
    parser.add_argument("--wsstream-ref", metavar="REF",
                        help="measure wsstream as of this git commit (exported with git "
                             "archive) instead of the installed working tree")
    parser.add_argument("--compare", nargs=2, metavar=("BEFORE_JSON", "AFTER_JSON"),
                        help="only compare two results.json: wsstream's values and its "
                             "ratios to every peer, before and after")
    parser.add_argument("--render", metavar="RESULTS_JSON",
                        help="only redo the tables and the plot from a results.json")
    args = parser.parse_args(argv)
    if args.compare:
        text, worse = compare(Path(args.compare[0]), Path(args.compare[1]))
        print(text)
        return 1 if worse else 0
    if args.render:
        return render(Path(args.render), Path(args.out), not args.no_plot)

    impls = [i for i in args.impls.split(",") if i]
    pairings = [p for p in args.pairing.split(",") if p]
    for name in impls:
        if name not in IMPLS:
            parser.error(f"unknown implementation {name!r}")
    for p in pairings:
        if p not in ("shared", "self"):
            parser.error(f"unknown pairing {p!r}")
    wanted = set(filter(None, args.scenarios.split(",")))
    scenarios = [sc for sc in SCENARIOS if not wanted or sc.name in wanted]
    if wanted - {sc.name for sc in scenarios}:
        parser.error(f"unknown scenarios {sorted(wanted - {sc.name for sc in scenarios})}")
    counts = {sc.name: max(1, round((sc.quick if args.quick else sc.count) * args.scale))
              for sc in scenarios}
    # Labels say the number of idle connections actually held.
    scenarios = [replace(sc, count=counts[sc.name]) if sc.kind == "idle" else sc
                 for sc in scenarios]
    rounds = args.rounds or (1 if args.quick else 3)
    timeout = args.timeout or (20.0 if args.quick else 30.0)
    raise_nofile_limit()
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)

    env = environment()
    if args.wsstream_ref:
        env["commit"] = _export_wsstream(args.wsstream_ref, out_dir)
    print(f"# {env['date']}  {env['nproc']} x {env['cpu']}  Python {env['python']}")
    print(f"# {env['versions']}  RLIMIT_NOFILE {env['nofile']}")
    for p in pairings:
        print(f"# pairing {p}: {PAIRING_TEXT[p]}")
    results: list[dict[str, Any]] = []
    for rnd in range(rounds):
        for sc in scenarios:
            for pairing in pairings:
                if sc.client_free and pairing == "self" and "shared" in pairings:
                    continue  # the same raw-socket client either way
                shift = rnd % len(impls)
                for impl in impls[shift:] + impls[:shift]:
                    if sc.websocket_only and impl in RAW_IMPLS:
                        continue
                    count = counts[sc.name]
                    client = ({"idle": "memclient", "flood": "connectecho"}.get(sc.kind)
                              or client_for(impl, pairing))
                    result = measure(impl, client, sc, count, timeout)
                    results.append({"round": rnd, "pairing": pairing, "scenario": sc.name,
                                    "impl": impl, "client": client, "count": count,
                                    "result": result})
                    shown = (f"{result['value']:,.1f}" if result.get("ok")
                             else ("deadlock/timeout" if result.get("error") == "timeout"
                                   else f"ERROR {result.get('error')}"))
                    print(f"round {rnd + 1}/{rounds}  {pairing:6}  {sc.name:22} "
                          f"{impl:18} {shown}", flush=True)

    env["load_end"] = _loadavg()
    report(env, results, impls, pairings, scenarios, rounds, args.quick, out_dir,
           not args.no_plot)
    failures = [r for r in results if not r["result"].get("ok")
                and r["result"].get("error") != "timeout"]
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
