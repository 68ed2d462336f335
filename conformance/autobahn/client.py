"""A wsstream client for Autobahn|Testsuite's ``fuzzingserver`` mode.

    python conformance/autobahn/client.py ws://127.0.0.1:9001 [--agent wsstream]

Asks the fuzzing server how many cases it has (``/getCaseCount``), runs each
one (``/runCase?case=N&agent=AGENT``: echo every message back until the
server closes) and finally asks it to write its reports
(``/updateReports?agent=AGENT``). Exit status 0 when every case ran, even if
some failed: the verdicts are in the reports, read them with summary.py.
"""

from __future__ import annotations

import argparse
import sys
import time

import trio

import wsstream

#: Largest message in the suite is 16 MiB (cases 9.1.6 / 9.2.6); allow headroom.
MAX_MESSAGE_SIZE = 64 * 1024 * 1024


#: Bound for one case, so a hang shows up as such instead of stalling CI.
#: The suite's own limit for its longest cases (12.x/13.x, 1000 compressed
#: messages of up to 128 KiB, about 45 s each on 2 cores) is 480 s.
CASE_TIMEOUT = 600.0


def connect(url: str) -> wsstream.WebSocketStream:
    return wsstream.WebSocketStream(
        url,
        max_message_size=MAX_MESSAGE_SIZE,
        compression="deflate",
        # No keepalive pings: see echo_server.py.
        ping_interval=None,
    )


async def run_case(url: str) -> None:
    async with connect(url) as wss:
        try:
            readable, writable, *_ = await wss.opened
            async for message in readable:
                await writable.send(message)
            await wss.closed
        except wsstream.WebSocketError:
            # Failing the connection is the expected outcome of many cases.
            pass


async def get_case_count(base: str) -> int:
    async with connect(f"{base}/getCaseCount") as wss:
        readable, *_ = await wss.opened
        message = await readable.receive()
    return int(message)


async def update_reports(base: str, agent: str) -> None:
    async with connect(f"{base}/updateReports?agent={agent}") as wss:
        try:
            readable, *_ = await wss.opened
            async for _ in readable:
                pass
            await wss.closed
        except wsstream.WebSocketError:
            pass


async def main(base: str, agent: str, verbose: bool) -> int:
    count = await get_case_count(base)
    print(f"client: {count} cases", file=sys.stderr, flush=True)
    timed_out: list[int] = []
    started = time.monotonic()
    for case in range(1, count + 1):
        t0 = time.monotonic()
        with trio.move_on_after(CASE_TIMEOUT) as scope:
            await run_case(f"{base}/runCase?case={case}&agent={agent}")
        if scope.cancelled_caught:
            timed_out.append(case)
            print(f"client: case {case} timed out", file=sys.stderr, flush=True)
        elif verbose:
            print(
                f"client: case {case}/{count} in {time.monotonic() - t0:.2f}s",
                file=sys.stderr,
                flush=True,
            )
    await update_reports(base, agent)
    print(
        f"client: ran {count} cases in {time.monotonic() - started:.1f}s",
        file=sys.stderr,
        flush=True,
    )
    if timed_out:
        print(f"client: timed out: {timed_out}", file=sys.stderr)
        return 1
    return 0


def cli(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("url", help="the fuzzing server, e.g. ws://127.0.0.1:9001")
    parser.add_argument("--agent", default="wsstream")
    parser.add_argument("-v", "--verbose", action="store_true")
    args = parser.parse_args(argv)
    return trio.run(main, args.url.rstrip("/"), args.agent, args.verbose)


if __name__ == "__main__":
    sys.exit(cli())
