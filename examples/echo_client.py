"""An echo client: sends a text and a binary message, prints what comes back,
measures a ping and closes cleanly.

    python examples/echo_client.py [HOST] [PORT]      # default 127.0.0.1 8765

Run examples/echo_server.py first (or any echo server, e.g.
``python -m wsstream serve 8765``).
"""

from __future__ import annotations

import argparse
import sys

import trio

import wsstream


async def main(host: str, port: int) -> int:
    url = f"ws://{host}:{port}/"
    async with wsstream.WebSocketStream(url) as wss:
        try:
            readable, writable, extensions, _ = await wss.opened
        except wsstream.WebSocketError as exc:
            print(f"cannot connect to {url}: {exc}", file=sys.stderr)
            return 1
        print(f"connected to {wss.url} (extensions: {extensions or 'none'})")

        await writable.send("hello")  # str: a text message
        print("echoed:", await readable.receive())  # 'hello' (str)
        await writable.send(b"\x00\x01\x02")  # bytes-like: a binary message
        print("echoed:", await readable.receive())  # b'\x00\x01\x02' (bytes)
        print(f"ping: {await wss.ping() * 1000:.2f} ms")

        wss.close(1000, "bye")  # starts the closing handshake; does not wait
        try:
            info = await wss.closed  # the code and reason the server sent back
            print(f"closed: code {info.close_code}, reason {info.reason!r}")
        except wsstream.WebSocketError as exc:  # the closing handshake failed
            print(f"closed abnormally: code {exc.close_code}", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("host", nargs="?", default="127.0.0.1")
    parser.add_argument("port", nargs="?", type=int, default=8765)
    args = parser.parse_args()
    sys.exit(trio.run(main, args.host, args.port))
