"""Command line: ``python -m wsstream demo`` (and ``serve --echo``)."""

from __future__ import annotations

import argparse
import os
import sys

import trio

from ._errors import WebSocketError
from ._server import serve
from ._stream import WebSocketStream


async def _echo(wss: WebSocketStream) -> None:
    readable, writable, *_ = await wss.opened
    async for message in readable:
        await writable.send(message)


async def _demo() -> None:
    print("wsstream demo: an echo server on 127.0.0.1 and a WebSocketStream client")
    paused = trio.Event()
    resume = trio.Event()

    async def handler(wss: WebSocketStream) -> None:
        readable, writable, *_ = await wss.opened
        async for message in readable:
            if message == "pause":
                paused.set()
                await resume.wait()
                continue
            await writable.send(message)

    async with trio.open_nursery() as nursery:
        listeners = await nursery.start(serve, handler, "127.0.0.1", 0)
        port = listeners[0].socket.getsockname()[1]
        url = f"ws://127.0.0.1:{port}/demo"
        print(f"server listening on {url}")
        async with WebSocketStream(url, write_limit=64 * 1024) as wss:
            readable, writable, extensions, protocol = await wss.opened
            print(f"opened: extensions={extensions!r} protocol={protocol!r}")
            await writable.send("hello, wsstream")
            print(f"text echoed:   {await readable.receive()!r}")
            await writable.send(bytes(range(8)))
            print(f"binary echoed: {await readable.receive()!r}")

            # Backpressure: the server stops reading; our sends soon block.
            await writable.send("pause")
            await paused.wait()
            chunk = os.urandom(65536)  # incompressible, so deflate cannot hide it
            sent = 0
            with trio.move_on_after(1.0) as blocked:
                while True:
                    await writable.send(chunk)
                    sent += 1
            stats = wss.statistics()
            print(
                f"backpressure: the server paused reading; send() blocked after "
                f"{sent} x 64 KiB (blocked={blocked.cancelled_caught}, "
                f"{stats.buffered_out} bytes waiting in our buffer)"
            )
            resume.set()
            for _ in range(sent):
                await readable.receive()
            print(f"resumed: all {sent} messages came back")
            latency = await wss.ping()
            print(f"ping round trip: {latency * 1000:.2f} ms")
            wss.close(1000, "demo done")
            try:
                info = await wss.closed
                print(f"closed cleanly: code={info.close_code} reason={info.reason!r}")
            except WebSocketError as exc:
                print(f"closed abnormally: {exc!r}")
        nursery.cancel_scope.cancel()
    print("demo finished")


async def _serve_echo(host: str, port: int) -> None:
    async with trio.open_nursery() as nursery:
        listeners = await nursery.start(serve, _echo, host, port)
        for listener in listeners:
            print("echo server listening on", listener.socket.getsockname(), flush=True)


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``python -m wsstream`` and the ``wsstream`` script."""
    parser = argparse.ArgumentParser(prog="wsstream", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("demo", help="run a local echo server and client and show what happens")
    serve_parser = sub.add_parser("serve", help="run a server")
    serve_parser.add_argument("--echo", action="store_true", required=True,
                              help="echo every message back")
    serve_parser.add_argument("host", nargs="?", default="127.0.0.1")
    serve_parser.add_argument("port", type=int)
    args = parser.parse_args(argv)
    try:
        if args.command == "demo":
            trio.run(_demo)
        else:
            trio.run(_serve_echo, args.host, args.port)
    except KeyboardInterrupt:
        return 130
    except OSError as exc:
        print(f"wsstream: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
