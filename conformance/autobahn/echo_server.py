"""A wsstream echo server for Autobahn|Testsuite's ``fuzzingclient`` mode.

    python conformance/autobahn/echo_server.py [--port 0]

Echoes every message back as it came (text as text, binary as binary), with
permessage-deflate offered and a message limit large enough for the 9.x
cases (16 MiB messages). Prints ``listening on 127.0.0.1:PORT`` once bound,
then serves until interrupted.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import sys

import trio

import wsstream

#: Largest message in the suite is 16 MiB (cases 9.1.6 / 9.2.6); allow headroom.
MAX_MESSAGE_SIZE = 64 * 1024 * 1024


async def echo(wss: wsstream.WebSocketStream) -> None:
    readable, writable, *_ = await wss.opened
    try:
        async for message in readable:
            await writable.send(message)
    except wsstream.WebSocketError:
        # The connection failed (many fuzzing cases end this way on purpose);
        # it is already reported on the wire, nothing left to do.
        pass


async def main(port: int) -> None:
    async with trio.open_nursery() as nursery:
        listeners = await nursery.start(
            lambda task_status: wsstream.serve(
                echo,
                "127.0.0.1",
                port,
                task_status=task_status,
                max_message_size=MAX_MESSAGE_SIZE,
                compression="deflate",
                # No keepalive pings: an unsolicited Ping in the middle of a
                # case would show up in the suite's observed traffic and make
                # results timing-dependent.
                ping_interval=None,
            )
        )
        bound = listeners[0].socket.getsockname()[1]
        print(f"listening on 127.0.0.1:{bound}", flush=True)


def cli(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=9001, help="0 picks a free port")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    with contextlib.suppress(KeyboardInterrupt):
        trio.run(main, args.port)


if __name__ == "__main__":
    cli()
