"""A page that uses the browser's own WebSocketStream against a wsstream server.

    python examples/browser/server.py [HOST] [PORT]      # default 127.0.0.1 8765

then open the printed URL in a recent Chromium. The same server answers the
page (a plain GET, served from ``process_request`` with
``wsstream.Response(200, ...)``) and the WebSocket at ``/ws``, which answers
each message in upper case. ``index.html`` puts each browser call next to its
wsstream form.
"""

from __future__ import annotations

import argparse
import functools
from pathlib import Path
from urllib.parse import urlsplit

import trio

import wsstream

PAGE = (Path(__file__).parent / "index.html").read_bytes()


def process_request(request: wsstream.Request) -> wsstream.Response | None:
    """Plain HTTP GETs get the page (or a 404); WebSocket upgrades go on."""
    path = urlsplit(request.path).path  # request.path has the query string too
    if request.headers.get("Upgrade", "").lower() == "websocket":
        return None if path == "/ws" else wsstream.Response(404, body=b"no such socket\n")
    if path in ("/", "/index.html"):
        headers = {"Content-Type": "text/html; charset=utf-8", "Cache-Control": "no-store"}
        return wsstream.Response(200, headers, PAGE)
    return wsstream.Response(404, {"Content-Type": "text/plain"}, b"not found\n")


async def upper(wss: wsstream.WebSocketStream) -> None:
    readable, writable, *_ = await wss.opened
    who = wss.remote_address
    try:
        async for message in readable:
            print(f"{who}: < {message!r}", flush=True)
            await writable.send(message.upper() if isinstance(message, str) else message)
        code, reason = await wss.closed  # the browser closed: its code and reason
        print(f"{who}: closed by the browser: code {code}, reason {reason!r}", flush=True)
    except wsstream.WebSocketError as exc:
        print(f"{who}: the connection broke: {exc!r}", flush=True)  # e.g. the tab went away


async def main(host: str, port: int) -> None:
    serve = functools.partial(wsstream.serve, upper, host, port,
                              process_request=process_request, subprotocols=["upper"])
    async with trio.open_nursery() as nursery:
        listeners = await nursery.start(serve)
        address = listeners[0].socket.getsockname()
        print(f"open http://{address[0]}:{address[1]}/ in a browser with WebSocketStream",
              flush=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("host", nargs="?", default="127.0.0.1")
    parser.add_argument("port", nargs="?", type=int, default=8765)
    args = parser.parse_args()
    try:
        trio.run(main, args.host, args.port)
    except* KeyboardInterrupt:
        pass  # Ctrl-C: the connections were closed with 1001
