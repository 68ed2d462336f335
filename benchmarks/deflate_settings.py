"""permessage-deflate settings measured: ``python -m benchmarks.deflate_settings``.

For each candidate compressor setting (LZ77 window bits, zlib memLevel and
level, context takeover, ``min_size``) and two workloads, prints Markdown
tables of:

* **ratio**: payload bytes on the wire / message bytes (lower is better;
  a message under ``min_size`` goes as it is);
* **CPU**: microseconds per message to compress it (wsstream's own
  ``Deflater``) and decompress it (zlib, as any peer does), best of
  ``--repeat`` passes;
* **memory**: the zlib contexts after one message, by tracemalloc (zlib
  allocates through Python's allocator): the compressor's and the
  decompressor's for that window; without context takeover both are
  released after each message.

Workloads, generated from a fixed seed (no data files):

* ``chat``: 2,000 JSON chat events (messages, typing indicators, reactions,
  presence, edits, acknowledgements) of 25-300 bytes, most of them
  100-300 bytes, words drawn
  from a Zipf distribution over a small English vocabulary, user names and
  channels from short lists: what a chat server broadcasts.
* ``bulk``: 16 messages of 64 KiB of prose from the same vocabulary.

With ``--rss`` it also measures server RSS per connection at 1,000
connections through the harness (``benchmarks.run.measure_idle``, the
``idle-deflate*`` scenarios' client): idle with deflate offered, after one
168-byte chat event each way, and with an offer asking for no context
takeover, for a shortlist of wsstream settings (set through the
``BENCH_DEFLATE`` variable that ``benchmarks.servers`` reads) beside
websockets.asyncio's defaults, median of ``--rounds``.

Timings are noisy on a shared machine: read ratios and memory as exact,
CPU to within 10-20 %.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import random
import statistics
import sys
import time
import tracemalloc
import zlib
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, replace
from typing import Any

from wsstream._protocol.deflate import EMPTY_BLOCK, Deflater

KIB = 1024

# -------------------------------------------------------------- workloads

def _split(text: str) -> tuple[str, ...]:
    return tuple(text.split())


WORDS = _split(
    "the I to you a and it is that of in we for this on be can have it's just so"
    " not with but are do if at will was what me my get like no all out up there"
    " one about know think now good yes ok how they your when time go see then"
    " from make as would some more its really could back need here today going"
    " new work also thanks lol right sure well want only did any still tomorrow"
    " fix push build test review merge branch issue deploy release meeting call"
    " lunch coffee later morning afternoon week weekend friday monday doc draft"
    " link file update error bug crash log server client page login cache query"
    " looks great nice sorry again let's check try send share post done fine"
    " yeah maybe probably already soon minute hour team design plan idea people"
    " customer ticket feature change version config data report numbers chart"
    " slides notes agenda question answer problem reason because should must"
    " after before around into over than them been very much many every other"
    " same first last next small big quick long easy hard open close start stop"
)

NAMES = _split(
    "Alice Bob Carol Dave Erin Frank Grace Heidi Ivan Judy Mallory Niaj Olivia"
    " Peggy Rupert Sybil Trent Victor Walter Yasmin Zoe Liam Noah Emma Ava Mia"
)

CHANNELS = ("general", "random", "dev", "ops", "design", "support", "sales", "release")
EMOJI = ("+1", "tada", "eyes", "heart", "rocket", "white_check_mark", "joy", "pray")


def _sentence(rng: random.Random, low: int, high: int) -> str:
    weights = [1 / (rank + 1) for rank in range(len(WORDS))]  # Zipf
    words = rng.choices(WORDS, weights, k=rng.randint(low, high))
    text = " ".join(words)
    return text[0].upper() + text[1:] + rng.choice((".", ".", "!", "?", ""))


def chat_events(count: int = 2000, seed: int = 7) -> list[bytes]:
    """``count`` chat events as compact JSON, as a chat server sends them."""
    rng = random.Random(seed)
    users = [(f"u{rng.randint(1000, 9999)}", name) for name in NAMES]
    ts = 1718031234567
    events: list[bytes] = []
    for _ in range(count):
        ts += rng.randint(200, 20000)
        uid, name = rng.choice(users)
        channel = rng.choice(CHANNELS)
        kind = rng.choices(
            ("message", "typing", "reaction", "presence", "edit", "ack"), (55, 13, 9, 7, 6, 10)
        )[0]
        event: dict[str, Any]
        if kind == "message":
            event = {
                "type": "message", "id": f"{rng.getrandbits(48):012x}", "channel": channel,
                "user": {"id": uid, "name": name}, "text": _sentence(rng, 3, 28), "ts": ts,
            }
        elif kind == "typing":
            event = {"type": "typing", "channel": channel, "user": uid, "ts": ts}
        elif kind == "reaction":
            event = {
                "type": "reaction", "message": f"{rng.getrandbits(48):012x}",
                "channel": channel, "user": uid, "emoji": rng.choice(EMOJI), "ts": ts,
            }
        elif kind == "presence":
            event = {
                "type": "presence", "user": {"id": uid, "name": name},
                "status": rng.choice(("online", "away", "offline")), "ts": ts,
            }
        elif kind == "ack":
            event = {"type": "ack", "reply_to": rng.randint(1, 99999)}
        else:
            event = {
                "type": "edit", "id": f"{rng.getrandbits(48):012x}", "channel": channel,
                "user": uid, "text": _sentence(rng, 3, 20), "ts": ts,
            }
        events.append(json.dumps(event, separators=(",", ":")).encode())
    return events


def bulk_messages(count: int = 16, size: int = 64 * KIB, seed: int = 11) -> list[bytes]:
    """``count`` messages of ``size`` bytes of prose."""
    rng = random.Random(seed)
    out = []
    for _ in range(count):
        parts: list[str] = []
        length = 0
        while length < size:
            paragraph = " ".join(_sentence(rng, 6, 24) for _ in range(rng.randint(3, 8)))
            parts.append(paragraph)
            length += len(paragraph) + 2
        out.append("\n\n".join(parts).encode()[:size])
    return out


WORKLOADS = {"chat": chat_events, "bulk": bulk_messages}

# ------------------------------------------------------------- candidates


@dataclass(frozen=True)
class Candidate:
    """One compressor setting (and the decompressor for its window)."""

    window_bits: int = 12
    mem_level: int = 5
    level: int = 6
    takeover: bool = True
    min_size: int = 0

    def label(self) -> str:
        return (
            f"w{self.window_bits} m{self.mem_level} l{self.level}"
            f"{'' if self.takeover else ' nct'} min{self.min_size}"
        )


#: The defaults before issue 16 (server side: 12-bit windows, memLevel 5,
#: level 6, every message compressed).
BEFORE = Candidate(12, 5, 6, True, 0)

AXES: dict[str, Sequence[Any]] = {
    "window_bits": (9, 10, 11, 12, 15),
    "mem_level": (1, 2, 3, 4, 5, 8),
    "level": (1, 6, 7, 9),
    "takeover": (True, False),
    "min_size": (0, 16, 32, 64, 128, 256),
}


@dataclass
class Result:
    candidate: Candidate
    workload: str
    ratio: float
    compress_us: float
    decompress_us: float
    compressed_share: float  # of messages that went compressed

    @property
    def cpu_us(self) -> float:
        return self.compress_us + self.decompress_us


def _compress_all(c: Candidate, messages: Sequence[bytes]) -> list[bytes | None]:
    """What the core sends for each message: its deflate payload, or None
    where ``min_size`` leaves it uncompressed."""
    deflater = Deflater(
        c.window_bits, not c.takeover, level=c.level, mem_level=c.mem_level, min_size=c.min_size
    )
    out: list[bytes | None] = []
    for message in messages:
        # The same tests as the core's (Core._encode).
        out.append(deflater.compress(message) if len(message) >= deflater.min_size else None)
    return out


def _decompress_all(c: Candidate, wire: Sequence[bytes | None]) -> int:
    decompressor = zlib.decompressobj(-c.window_bits)
    total = 0
    for payload in wire:
        if payload is None:
            continue
        total += len(decompressor.decompress(payload + EMPTY_BLOCK))
        if not c.takeover:
            decompressor = zlib.decompressobj(-c.window_bits)
    return total


def measure(c: Candidate, workload: str, messages: Sequence[bytes], repeat: int) -> Result:
    compress_times, decompress_times = [], []
    wire: list[bytes | None] = []
    for _ in range(repeat):
        t0 = time.process_time()
        wire = _compress_all(c, messages)
        t1 = time.process_time()
        _decompress_all(c, wire)
        t2 = time.process_time()
        compress_times.append(t1 - t0)
        decompress_times.append(t2 - t1)
    original = sum(map(len, messages))
    sent = sum(len(m) if p is None else len(p) for m, p in zip(messages, wire, strict=True))
    n = len(messages)
    return Result(
        c, workload, sent / original,
        min(compress_times) / n * 1e6, min(decompress_times) / n * 1e6,
        sum(p is not None for p in wire) / n,
    )


def context_memory(window_bits: int, mem_level: int, message: bytes) -> tuple[int, int]:
    """Bytes held by a compressor and by a decompressor after one message
    (zlib allocates through Python's raw allocator, which tracemalloc sees;
    a decompressor makes its window on its first output)."""
    sample = zlib.compressobj(6, zlib.DEFLATED, -window_bits, mem_level)
    payload = sample.compress(message) + sample.flush(zlib.Z_SYNC_FLUSH)
    del sample
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        compressor = zlib.compressobj(6, zlib.DEFLATED, -window_bits, mem_level)
        compressor.compress(message)
        compressor.flush(zlib.Z_SYNC_FLUSH)
        compressor_bytes = tracemalloc.get_traced_memory()[0] - base
        base = tracemalloc.get_traced_memory()[0]
        decompressor = zlib.decompressobj(-window_bits)
        decompressor.decompress(payload)
        decompressor_bytes = tracemalloc.get_traced_memory()[0] - base
    finally:
        tracemalloc.stop()
    del compressor, decompressor
    return compressor_bytes, decompressor_bytes


# -------------------------------------------------------------------- RSS


#: The server's settings before issue 16, as ``wsstream.Deflate`` arguments.
BEFORE_SERVER = {"server_max_window_bits": 12, "client_max_window_bits": 12, "mem_level": 5,
                 "level": 6, "min_size": 0, "client_no_context_takeover": False}


def measure_rss(
    shortlist: Sequence[tuple[str, dict[str, Any]]], rounds: int, count: int
) -> list[dict[str, Any]]:
    """Server KiB per connection for each shortlisted wsstream setting and
    websockets.asyncio, in the three idle-deflate client modes."""
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    from benchmarks.run import measure_idle

    modes = ("deflate", "deflate-msg", "deflate-nct-msg")
    rows: list[dict[str, Any]] = []
    entries: list[tuple[str, str, str | None]] = [
        (name, "wsstream", json.dumps(settings)) for name, settings in shortlist
    ]
    entries.append(("websockets.asyncio defaults", "websockets.asyncio", None))
    samples: dict[tuple[str, str], list[float]] = {}
    for round_ in range(rounds):
        for name, impl, settings in entries:
            for mode in modes:
                if settings is None:
                    os.environ.pop("BENCH_DEFLATE", None)
                else:
                    os.environ["BENCH_DEFLATE"] = settings
                result = measure_idle(impl, count, 60, "defaults", mode)
                if result.get("ok"):
                    samples.setdefault((name, mode), []).append(result["value"])
                    print(f"  rss round {round_ + 1} {name} {mode}: {result['value']:.1f}",
                          file=sys.stderr)
                else:
                    print(f"  rss {name} {mode}: {result.get('error')}", file=sys.stderr)
    os.environ.pop("BENCH_DEFLATE", None)
    for name, _, _ in entries:
        row: dict[str, Any] = {"name": name}
        for mode in modes:
            values = samples.get((name, mode))
            row[mode] = statistics.median(values) if values else None
        rows.append(row)
    return rows


# ------------------------------------------------------------------ tables


def _table(header: Sequence[str], rows: Iterable[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |",
             "|" + "|".join("---" if i == 0 else "---:" for i in range(len(header))) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def _kib(n: int) -> str:
    return f"{n / KIB:.1f}"


def _server_side() -> Candidate:
    """The server's compressor under today's defaults."""
    from wsstream import Deflate

    d = Deflate()
    return Candidate(d.server_max_window_bits, d.mem_level, d.level,
                     not d.server_no_context_takeover, d.min_size)


#: A browser's compressor (Chromium: memLevel 8, level 6, every message).
BROWSER = Candidate(15, 8, 6, True, 0)
#: The client's window bits and context takeover, as the server's answer sets them.
CLIENT_AXES: tuple[tuple[int, bool], ...] = tuple(
    (bits, takeover) for takeover in (True, False) for bits in (9, 10, 11, 12, 15)
)


def client_table(
    results: dict[tuple[Candidate, str], Result],
    memory: dict[tuple[int, int], tuple[int, int]],
) -> str:
    """The client-to-server direction: what the server's answer
    (client_max_window_bits, client_no_context_takeover) does to a
    browser's compression and to the server's decompressor."""
    rows = []
    for bits, takeover in CLIENT_AXES:
        c = replace(BROWSER, window_bits=bits, takeover=takeover)
        chat, bulk = results[c, "chat"], results[c, "bulk"]
        decomp = memory[bits, 1][1] if takeover else 0
        rows.append((
            f"client window {bits}{'' if takeover else ', no context takeover'}",
            f"{chat.ratio:.4f}", f"{chat.decompress_us:.1f}", f"{bulk.ratio:.4f}",
            f"{bulk.decompress_us:.0f}", _kib(decomp),
        ))
    return _table(
        ("client's compressor (memLevel 8, level 6)", "chat ratio", "chat µs/msg (d)",
         "bulk ratio", "bulk µs/msg (d)", "server's decompressor KiB, kept"),
        rows,
    )


def axis_table(
    axis: str, center: Candidate, results: dict[tuple[Candidate, str], Result],
    memory: dict[tuple[int, int], tuple[int, int]],
) -> str:
    rows = []
    variants = [replace(center, **{axis: value}) for value in AXES[axis]]
    if BEFORE not in variants:
        variants.insert(0, BEFORE)
    for c in variants:
        chat, bulk = results[c, "chat"], results[c, "bulk"]
        comp, decomp = memory[c.window_bits, c.mem_level]
        if not c.takeover:
            comp = decomp = 0
        mark = " (before)" if c == BEFORE else " (defaults)" if c == center else ""
        rows.append((
            c.label() + mark,
            f"{chat.ratio:.4f}", f"{chat.compress_us:.1f} + {chat.decompress_us:.1f}",
            f"{chat.compressed_share:.0%}",
            f"{bulk.ratio:.4f}", f"{bulk.compress_us:.0f} + {bulk.decompress_us:.0f}",
            _kib(comp), _kib(decomp),
        ))
    return _table(
        ("setting", "chat ratio", "chat µs/msg (c + d)", "chat compressed", "bulk ratio",
         "bulk µs/msg (c + d)", "compressor KiB", "decompressor KiB"),
        rows,
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.deflate_settings",
        description=__doc__.split("\n\n")[0] if __doc__ else None,
    )
    parser.add_argument("--center", default="",
                        help="the setting the one-axis tables vary around, as JSON of Candidate "
                             "fields (default: the server side of wsstream.Deflate())")
    parser.add_argument("--repeat", type=int, default=5, help="timing passes (best is kept)")
    parser.add_argument("--rss", action="store_true",
                        help="also measure server RSS per connection for the shortlist")
    parser.add_argument("--shortlist", default="",
                        help="JSON list of [name, wsstream.Deflate arguments] for --rss "
                             "(default: the settings before issue 16 and today's defaults)")
    parser.add_argument("--rounds", type=int, default=3, help="RSS rounds (median)")
    parser.add_argument("--connections", type=int, default=1000)
    parser.add_argument("--json", default="", help="also write every result to this file")
    args = parser.parse_args(argv)

    center = Candidate(**json.loads(args.center)) if args.center else _server_side()
    data = {name: make() for name, make in WORKLOADS.items()}
    chat_sizes = sorted(map(len, data["chat"]))
    print(f"chat: {len(chat_sizes)} events, {sum(chat_sizes)} bytes, sizes "
          f"{chat_sizes[0]}-{chat_sizes[-1]} (median {statistics.median(chat_sizes):.0f}); "
          f"{sum(100 <= s <= 300 for s in chat_sizes) / len(chat_sizes):.0%} within "
          f"100-300 bytes")
    print(f"bulk: {len(data['bulk'])} messages of {len(data['bulk'][0])} bytes\n")

    candidates = {
        replace(c, **{axis: value})
        for c in (center, BEFORE) for axis in AXES for value in AXES[axis]
    }
    candidates |= {replace(BROWSER, window_bits=b, takeover=t) for b, t in CLIENT_AXES}
    # The grid of what changes memory, at two levels (min_size changes
    # neither memory nor, above the shortest messages, much else: its axis).
    candidates |= {
        Candidate(w, m, level, True, center.min_size)
        for w, m, level in itertools.product(AXES["window_bits"], AXES["mem_level"], (6, 9))
    }
    results: dict[tuple[Candidate, str], Result] = {}
    for c in sorted(candidates, key=lambda c: c.label()):
        for name, messages in data.items():
            results[c, name] = measure(c, name, messages, args.repeat)
    memory = {
        (w, m): context_memory(w, m, data["chat"][0])
        for w, m in itertools.product(AXES["window_bits"], AXES["mem_level"])
    }

    for axis in AXES:
        print(f"### {axis}, around {center.label()}\n")
        print(axis_table(axis, center, results, memory))
        print()

    print("### the client's direction: what the server's answer sets\n")
    print(client_table(results, memory))
    print()

    print("### memory of the zlib contexts after one message (KiB, tracemalloc)\n")
    print(_table(
        ("window bits", *(f"compressor m{m}" for m in AXES["mem_level"]), "decompressor"),
        ((str(w), *(_kib(memory[w, m][0]) for m in AXES["mem_level"]), _kib(memory[w, 1][1]))
         for w in AXES["window_bits"]),
    ))
    print()

    before = results[BEFORE, "chat"].ratio
    print(f"### chat: settings with context takeover no worse than before "
          f"(ratio <= {before:.4f}), least memory first\n")
    fits = sorted(
        (r for (c, name), r in results.items()
         if name == "chat" and c.takeover and r.ratio <= before + 1e-9),
        key=lambda r: (memory[r.candidate.window_bits, r.candidate.mem_level][0], r.ratio),
    )
    print(_table(
        ("setting", "chat ratio", "chat µs/msg (c + d)", "bulk ratio", "bulk µs/msg (c + d)",
         "compressor KiB"),
        ((r.candidate.label(), f"{r.ratio:.4f}",
          f"{r.compress_us:.1f} + {r.decompress_us:.1f}",
          f"{results[r.candidate, 'bulk'].ratio:.4f}",
          f"{results[r.candidate, 'bulk'].compress_us:.0f} + "
          f"{results[r.candidate, 'bulk'].decompress_us:.0f}",
          _kib(memory[r.candidate.window_bits, r.candidate.mem_level][0]))
         for r in fits[:15]),
    ))
    print()

    rss_rows: list[dict[str, Any]] = []
    if args.rss:
        shortlist = (
            [(name, settings) for name, settings in json.loads(args.shortlist)]
            if args.shortlist else [("before", BEFORE_SERVER), ("defaults", {})]
        )
        rss_rows = measure_rss(shortlist, args.rounds, args.connections)
        print(f"### server RSS per connection at {args.connections:,} connections "
              f"(KiB, median of {args.rounds})\n")

        def cell(value: float | None) -> str:
            return "-" if value is None else f"{value:.1f}"

        print(_table(
            ("server", "idle, deflate offered", "1 msg each way", "no context takeover, 1 msg"),
            ((row["name"], cell(row["deflate"]), cell(row["deflate-msg"]),
              cell(row["deflate-nct-msg"])) for row in rss_rows),
        ))
        print()

    if args.json:
        with open(args.json, "w") as f:
            json.dump({
                "results": [asdict(r) | {"cpu_us": r.cpu_us} for r in results.values()],
                "memory": [{"window_bits": w, "mem_level": m, "compressor": comp,
                            "decompressor": decomp} for (w, m), (comp, decomp) in memory.items()],
                "rss": rss_rows,
            }, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
