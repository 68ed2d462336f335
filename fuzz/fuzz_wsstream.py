"""Fuzz wsstream's server and client by hand, far longer than CI does.

Runs the hypothesis cases of ``tests/test_fuzz.py`` (modelled frame scripts
with one violation, mutated frames, random bytes, mutated handshakes; server
and client; every chunking, byte by byte included) with a high example count.
Each case is a fresh ``trio.run`` on a MockClock, so timeouts cost nothing and
a hang fails at once. Usage, from the repository root::

    python -m fuzz.fuzz_wsstream                 # 20,000 examples per target
    python -m fuzz.fuzz_wsstream 100000          # more
    python -m fuzz.fuzz_wsstream 5000 client     # only targets matching "client"

A failure prints hypothesis' shrunk example and stops; the example is also
kept in ``.hypothesis/`` so that ``pytest tests/test_fuzz.py`` replays it.
"""

from __future__ import annotations

import os
import sys
import time


def main(argv: list[str]) -> int:
    examples = int(argv[0]) if argv else 20_000
    pattern = argv[1] if len(argv) > 1 else ""
    # Read by tests/test_fuzz.py at import time.
    os.environ["WSSTREAM_FUZZ_EXAMPLES"] = str(examples)
    from tests import test_fuzz

    targets = [
        (name, getattr(test_fuzz, name))
        for name in dir(test_fuzz)
        if name.startswith("test_") and pattern in name
    ]
    for name, target in targets:
        start = time.monotonic()
        print(f"{name}: {examples} examples ...", flush=True)
        target()
        print(f"  ok in {time.monotonic() - start:.0f} s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
