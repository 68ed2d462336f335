"""An echo server: every message comes back as it came (text or binary).

    python examples/echo_server.py [HOST] [PORT]      # default 127.0.0.1 8765

Port 0 picks a free port; the URL is printed once listening. Ctrl-C stops the
server, which closes every open connection with 1001 (going away).
"""

from __future__ import annotations

import argparse
import functools
import logging

import trio

import wsstream


async def echo(wss: wsstream.WebSocketStream) -> None:
    # The server hands us an open stream; `opened` is already settled.
    readable, writable, *_ = await wss.opened
    try:
        async for message in readable:  # ends when the client closes cleanly
            await writable.send(message)  # waits while the client is slow to read
    except wsstream.WebSocketError as exc:
        # The client went away (or closed while we were echoing).
        logging.info("%s: %r", wss.remote_address, exc)
    # Returning closes the connection with 1000.


async def main(host: str, port: int) -> None:
    async with trio.open_nursery() as nursery:
        listeners = await nursery.start(functools.partial(wsstream.serve, echo, host, port))
        for listener in listeners:
            address = listener.socket.getsockname()
            print(f"echo server listening on ws://{address[0]}:{address[1]}/", flush=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("host", nargs="?", default="127.0.0.1")
    parser.add_argument("port", nargs="?", type=int, default=8765)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    try:
        trio.run(main, args.host, args.port)
    except* KeyboardInterrupt:
        pass  # Ctrl-C: the connections were closed with 1001
