"""``python -m wsstream demo``: what wsstream does, in one second."""

from __future__ import annotations

import os

import trio

from .._endpoints.listen import serve
from .._errors import WebSocketError
from .._streams.stream import WebSocketStream

# -- demo -------------------------------------------------------------------


async def _echo(wss: WebSocketStream) -> None:
    readable, writable, *_ = await wss.opened
    try:
        async for message in readable:
            await writable.send(message)
    except WebSocketError:
        # The peer closed (or the connection failed) while we were echoing;
        # nothing to report, and no reason to log a traceback.
        pass


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


