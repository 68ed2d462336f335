"""The ``websockets`` package's asyncio implementation as a peer for wsstream.

Run as a separate process by tests/interop/test_interop_websockets.py, so that the
asyncio event loop never shares a process (or a GIL) with the trio tests, and
so that "the peer went away" can be a real process death.

    websockets_peer.py server [--no-compression] [--deflate JSON] [--subprotocols a,b]
                              [--max-size N]

Prints ``PORT <n>`` once it listens on 127.0.0.1, then one JSON line per
finished connection: ``{"path", "close_code", "close_reason", "received",
"extensions"}``. ``--deflate`` gives the arguments of websockets'
``ServerPerMessageDeflateFactory`` (``ClientPerMessageDeflateFactory`` for the
client) as a JSON object, instead of its default permessage-deflate.
What a connection does depends on its path:

* ``/echo``: echo every message.
* ``/close/<code>?reason=<text>``: close at once with that code and reason
  (``/close/none`` sends a Close frame without a body).
* ``/drop``: wait for one message, then drop TCP without a Close frame.
* ``/pipeline/<n>``: send ``n`` copies of the first message received, as
  fast as the connection takes them, while still reading (an echo that does
  not wait for the reader).
* ``/digest``: read one message frame by frame (``recv_streaming``), answer
  a JSON text with its sha256, length and number of frames.

    websockets_peer.py client URL SCENARIO [--no-compression] [--deflate JSON]
                      [--protocols a,b] [--max-size N] [--code N] [--reason TEXT]

Runs one scenario against URL and prints one JSON line with what it saw:

* ``echo``: send :func:`sample_messages`, read as many back.
* ``fragments``: send a text and a binary message in several frames each,
  read both back, then ping and wait for the pong.
* ``close``: send "hi", read it back, close with --code/--reason (``none``
  for a Close frame without a body).
* ``wait``: send "hi", then read until the server closes.
* ``vanish``: send "bye", then exit without closing (the kernel ends TCP).
* ``pipeline``: send 64 messages of 1 MiB while reading 64 back.
* ``stream``: send one binary message of 64 frames of 256 KiB (an async
  iterable), read the server's JSON answer, then read one message frame by
  frame (``recv_streaming``) and report its digest and frame count.
* ``text``: send :func:`compressible_messages`, read as many back.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import sys
import urllib.parse
from collections.abc import Sequence
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.extensions.permessage_deflate import (
    ClientPerMessageDeflateFactory,
    ServerPerMessageDeflateFactory,
)
from websockets.typing import Subprotocol

MIB = 2**20


def sample_messages() -> list[str | bytes]:
    """Text and binary, non-ASCII, empty, and 1 MiB of each kind."""
    return [
        "hello",
        "héllo wörld ✓ 😀",
        "",
        b"",
        b"\x00\x01\xfe\xff",
        bytes(range(256)) * 4096,
        ("0123456789abcdé" * 70000)[:MIB],
    ]


def compressible_messages() -> list[str]:
    """Chat-sized JSON events and 64 KiB of text: what deflate shrinks."""
    users = ("alice", "bob", "carol", "dave")
    events = [
        json.dumps({
            "type": "message", "id": i, "user": users[i % 4],
            "text": f"message {i}: the build is green again, shipping the fix to staging",
        }, separators=(",", ":"))  # as JSON.stringify writes it (tests/node/client.mjs)
        for i in range(40)
    ]
    text = "".join(f"line {i}: the quick brown fox jumps over the lazy dog\n" for i in range(1200))
    return [*events, text[: 64 * 1024]]


def digest(message: str | bytes) -> dict[str, Any]:
    """A short, comparable description of a message."""
    kind = "text" if isinstance(message, str) else "binary"
    data = message.encode() if isinstance(message, str) else message
    return {"type": kind, "length": len(data), "sha256": hashlib.sha256(data).hexdigest()}


def emit(obj: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def _close_args(code: str) -> tuple[int | None, str]:
    return (None, "") if code == "none" else (int(code), "")


async def _handler(ws: ServerConnection) -> None:
    assert ws.request is not None
    url = urllib.parse.urlsplit(ws.request.path)
    query = urllib.parse.parse_qs(url.query)
    received = 0
    try:
        if url.path == "/echo":
            async for message in ws:
                received += 1
                await ws.send(message)
        elif url.path.startswith("/close/"):
            code, _ = _close_args(url.path.removeprefix("/close/"))
            reason = query.get("reason", [""])[0]
            # close(None) sends a Close frame without a body.
            await ws.close(code, reason)  # type: ignore[arg-type]
        elif url.path == "/drop":
            await ws.recv()
            received += 1
            ws.transport.abort()
        elif url.path == "/digest":
            hasher, length, frames = hashlib.sha256(), 0, 0
            async for fragment in ws.recv_streaming():
                data = fragment.encode() if isinstance(fragment, str) else fragment
                hasher.update(data)
                length += len(data)
                frames += 1
            received += 1
            await ws.send(json.dumps(
                {"sha256": hasher.hexdigest(), "length": length, "frames": frames}
            ))
            await ws.wait_closed()
        elif url.path.startswith("/pipeline/"):
            count = int(url.path.removeprefix("/pipeline/"))
            first = await ws.recv()
            received += 1

            async def drain() -> None:
                nonlocal received
                async for _ in ws:
                    received += 1

            reader = asyncio.create_task(drain())
            for _ in range(count):
                await ws.send(first)
            await reader
    except ConnectionClosed:
        pass
    finally:
        await ws.wait_closed()
        emit(
            {
                "path": url.path,
                "close_code": ws.close_code,
                "close_reason": ws.close_reason,
                "received": received,
                "extensions": ws.response.headers.get("Sec-WebSocket-Extensions", "")
                if ws.response is not None
                else "",
            }
        )


async def run_server(args: argparse.Namespace) -> None:
    names = args.subprotocols.split(",") if args.subprotocols else []
    subprotocols = [Subprotocol(name) for name in names] or None
    async with serve(
        _handler,
        "127.0.0.1",
        0,
        compression=None if args.no_compression or args.deflate else "deflate",
        extensions=[ServerPerMessageDeflateFactory(**json.loads(args.deflate))]
        if args.deflate
        else None,
        subprotocols=subprotocols,
        max_size=args.max_size,
        ping_interval=None,
    ) as server:
        port = next(iter(server.sockets)).getsockname()[1]
        sys.stdout.write(f"PORT {port}\n")
        sys.stdout.flush()
        await server.serve_forever()


async def _scenario(ws: ClientConnection, args: argparse.Namespace) -> dict[str, Any]:
    result: dict[str, Any] = {
        "protocol": ws.subprotocol,
        "extensions": ws.response.headers.get("Sec-WebSocket-Extensions", "")
        if ws.response is not None
        else "",
    }
    if args.scenario == "echo":
        messages = sample_messages()
        for message in messages:
            await ws.send(message)
        result["received"] = [digest(await ws.recv()) for _ in messages]
        await ws.close()
    elif args.scenario == "fragments":
        # An iterable is sent as one fragmented message, a frame per item.
        await ws.send(["fra", "gmé", "nted ✓"])
        await ws.send([b"ab", b"", b"cd"])
        result["received"] = [digest(await ws.recv()) for _ in range(2)]
        pong_waiter = await ws.ping(b"interop")
        result["ping_answered"] = (await pong_waiter) >= 0
        await ws.close()
    elif args.scenario == "close":
        await ws.send("hi")
        result["received"] = [digest(await ws.recv())]
        code, _ = _close_args(args.code)
        await ws.close(code, args.reason)  # type: ignore[arg-type]
    elif args.scenario == "wait":
        await ws.send("hi")
        result["received"] = []
        try:
            async for message in ws:
                result["received"].append(digest(message))
        except ConnectionClosed:
            pass  # a close code other than 1000 and 1001
    elif args.scenario == "vanish":
        await ws.send("bye")
        # Let the frame leave, then die without a Close frame.
        await asyncio.sleep(0)
        os._exit(0)
    elif args.scenario == "text":
        messages = compressible_messages()
        for message in messages:
            await ws.send(message)
        result["received"] = [digest(await ws.recv()) for _ in messages]
        await ws.close()
    elif args.scenario == "pipeline":
        payload = bytes(range(256)) * 4096

        async def sender() -> None:
            for _ in range(64):
                await ws.send(payload)

        task = asyncio.create_task(sender())
        ok = 0
        for _ in range(64):
            if await ws.recv() == payload:
                ok += 1
        await task
        result["echoed_ok"] = ok
        await ws.close()
    elif args.scenario == "stream":
        block = bytes(range(256)) * 1024  # 256 KiB

        async def blocks() -> Any:
            for i in range(64):
                yield block[i:] + block[:i]

        sent = hashlib.sha256()
        for i in range(64):
            sent.update(block[i:] + block[:i])
        await ws.send(blocks())
        result["sent_sha256"] = sent.hexdigest()
        result["answer"] = json.loads(await ws.recv())
        hasher, length, frames = hashlib.sha256(), 0, 0
        async for fragment in ws.recv_streaming():
            data = fragment.encode() if isinstance(fragment, str) else fragment
            hasher.update(data)
            length += len(data)
            frames += 1
        result["streamed"] = {"sha256": hasher.hexdigest(), "length": length, "frames": frames}
        await ws.close()
    else:
        raise SystemExit(f"unknown scenario {args.scenario!r}")
    await ws.wait_closed()
    result["close_code"] = ws.close_code
    result["close_reason"] = ws.close_reason
    return result


async def run_client(args: argparse.Namespace) -> None:
    protocols = [Subprotocol(p) for p in args.protocols.split(",")] if args.protocols else None
    async with connect(
        args.url,
        compression=None if args.no_compression or args.deflate else "deflate",
        extensions=[ClientPerMessageDeflateFactory(**json.loads(args.deflate))]
        if args.deflate
        else None,
        subprotocols=protocols,
        max_size=args.max_size,
        ping_interval=None,
        open_timeout=10,
    ) as ws:
        emit(await _scenario(ws, args))


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="mode", required=True)
    server = sub.add_parser("server")
    server.add_argument("--subprotocols", default="")
    client = sub.add_parser("client")
    client.add_argument("url")
    client.add_argument("scenario")
    client.add_argument("--protocols", default="")
    client.add_argument("--code", default="1000")
    client.add_argument("--reason", default="")
    for p in (server, client):
        p.add_argument("--no-compression", action="store_true")
        p.add_argument("--deflate", default="")
        p.add_argument("--max-size", type=int, default=2 * MIB)
    args = parser.parse_args(argv)
    asyncio.run(run_server(args) if args.mode == "server" else run_client(args))


if __name__ == "__main__":
    main()
