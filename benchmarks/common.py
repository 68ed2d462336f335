"""Shared constants and helpers of the benchmark processes.

Every implementation is configured the same way: compression off, keepalive
off, a 16 MiB message limit (so that 1 MiB messages pass everywhere); all
other settings are the library's defaults, which is what users get.
"""

from __future__ import annotations

import os
import resource
import sys

MAX_SIZE = 2**24
#: In "sink" mode a server echoes only the messages shorter than this: the
#: client's end-of-stream marker.
MARKER_MAX = 64
MARKER = b"end-of-stream"

# Implementations, in the order of the tables. The "raw-trio" ones are not
# WebSocket: trio TCP echoes of frames with a 4-byte big-endian length prefix,
# the floors. "raw-trio-naive" answers frame by frame, one send_all each (the
# naive echo the floor names); "raw-trio" answers all complete frames
# of a read with one send_all (a stricter floor).
IMPLS = [
    "wsstream", "websockets.trio", "websockets.asyncio", "trio-websocket", "picows",
    "raw-trio-naive", "raw-trio",
]
RAW_IMPLS = ("raw-trio", "raw-trio-naive")


def raise_nofile_limit() -> int:
    """Raise RLIMIT_NOFILE's soft limit to the hard limit; return the new soft limit.

    10,000 idle connections need 10,000 descriptors in the server and in the
    client; the default soft limit is often 1,024. We never go past the hard
    limit (20,000 on the reference machine), so no privilege is needed.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY:
        hard = 1 << 20
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def rss_bytes(pid: int) -> int:
    """Resident set size of a process, from /proc (Linux)."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS")


def emit(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def hard_exit(code: int = 0) -> None:
    """Leave without closing connections: closing is not what we measure, and a
    deadlocked library must not hold the process."""
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
