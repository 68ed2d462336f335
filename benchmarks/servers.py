"""Benchmark servers: ``python -m benchmarks.servers IMPL MODE``.

Listens on 127.0.0.1 on a free port, prints ``PORT <n>`` and serves until
killed. MODE is ``echo`` (every message is sent back, same type), ``sink``
(messages are consumed; only short ones, the client's end marker, are sent
back) or ``defaults``: an echo with every setting at the library's default
(compression, keepalive, message size), as a user who changes nothing gets;
the other two use the harness's settings (common.py).

``BENCH_DEFLATE``, if set, is a JSON object of :class:`wsstream.Deflate`
arguments that wsstream's server uses as ``compression=`` in ``defaults``
mode: how ``benchmarks.deflate_settings`` measures candidate settings.
"""

from __future__ import annotations

import json
import os
import sys

from .common import MARKER_MAX, MAX_SIZE, emit, raise_nofile_limit


def _is_marker(message: str | bytes) -> bool:
    return len(message) < MARKER_MAX


def _settings(mode: str, **harness: object) -> dict[str, object]:
    """The harness's settings, or none at all in ``defaults`` mode."""
    return {} if mode == "defaults" else harness


# --------------------------------------------------------------------- trio


def serve_wsstream(mode: str) -> None:
    import trio

    import wsstream

    async def echo(wss: wsstream.WebSocketStream) -> None:
        readable, writable, *_ = await wss.opened
        try:
            async for message in readable:
                await writable.send(message)
        except wsstream.WebSocketError:
            pass  # the benchmark client leaves without a closing handshake

    async def sink(wss: wsstream.WebSocketStream) -> None:
        readable, writable, *_ = await wss.opened
        try:
            async for message in readable:
                if _is_marker(message):
                    await writable.send(message)
        except wsstream.WebSocketError:
            pass

    settings = _settings(mode, compression=None, ping_interval=None, max_message_size=MAX_SIZE)
    deflate = os.environ.get("BENCH_DEFLATE")
    if deflate and mode == "defaults":
        settings["compression"] = wsstream.Deflate(**json.loads(deflate))

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            listeners = await nursery.start(
                lambda task_status: wsstream.serve(
                    sink if mode == "sink" else echo, "127.0.0.1", 0,
                    task_status=task_status, **settings,
                )
            )
            emit(f"PORT {listeners[0].socket.getsockname()[1]}")

    trio.run(main)


def _websockets_handler(mode: str):  # type: ignore[no-untyped-def]
    """The handler for websockets' servers, trio and asyncio alike (the
    same connection API: ``async for`` and ``send``)."""
    from websockets.exceptions import ConnectionClosed

    async def echo(ws) -> None:  # type: ignore[no-untyped-def]
        try:
            async for message in ws:
                await ws.send(message)
        except ConnectionClosed:
            pass  # the benchmark client leaves without a closing handshake

    async def sink(ws) -> None:  # type: ignore[no-untyped-def]
        try:
            async for message in ws:
                if _is_marker(message):
                    await ws.send(message)
        except ConnectionClosed:
            pass

    return sink if mode == "sink" else echo


def serve_websockets_trio(mode: str) -> None:
    import trio
    from websockets.trio.server import serve

    handler = _websockets_handler(mode)

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            server = await nursery.start(
                lambda task_status: serve(
                    handler, 0, host="127.0.0.1", task_status=task_status,
                    **_settings(mode, compression=None, ping_interval=None, max_size=MAX_SIZE),
                )
            )
            emit(f"PORT {server.listeners[0].socket.getsockname()[1]}")

    trio.run(main)


def serve_trio_websocket(mode: str) -> None:
    import trio
    from trio_websocket import ConnectionClosed, serve_websocket

    async def handler(request) -> None:  # type: ignore[no-untyped-def]
        ws = await request.accept()
        try:
            while True:
                message = await ws.get_message()
                if mode != "sink" or _is_marker(message):
                    await ws.send_message(message)
        except ConnectionClosed:
            pass

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            server = await nursery.start(
                lambda task_status: serve_websocket(
                    handler, "127.0.0.1", 0, None, task_status=task_status,
                    **_settings(mode, max_message_size=MAX_SIZE),
                )
            )
            emit(f"PORT {server.port}")

    trio.run(main)


async def _raw_trio_handler(stream, mode: str) -> None:  # type: ignore[no-untyped-def]
    """Frames with a 4-byte big-endian length prefix; echo whole frames back.

    The floor: what any framing over a trio stream costs at least. Complete
    frames found in one read go back with one send_all.
    """
    buf = bytearray()
    try:
        while True:
            data = await stream.receive_some(262144)
            if not data:
                return
            buf += data
            pos, end = 0, len(buf)
            out = []
            while end - pos >= 4:
                length = int.from_bytes(buf[pos:pos + 4], "big")
                if end - pos - 4 < length:
                    break
                if mode == "sink" and length < MARKER_MAX:
                    out.append(bytes(buf[pos:pos + 4 + length]))
                pos += 4 + length
            if pos:
                if mode == "echo":
                    out = [bytes(buf[:pos])]
                del buf[:pos]
                if out:
                    await stream.send_all(b"".join(out))
    except Exception:
        return


async def _raw_trio_naive_handler(stream, mode: str) -> None:  # type: ignore[no-untyped-def]
    """The naive floor: frame by frame, each answered with its own send_all."""
    buf = bytearray()

    async def read_exactly(n: int) -> bytes | None:
        while len(buf) < n:
            data = await stream.receive_some(65536)
            if not data:
                return None
            buf.extend(data)
        chunk = bytes(buf[:n])
        del buf[:n]
        return chunk

    try:
        while True:
            header = await read_exactly(4)
            if header is None:
                return
            payload = await read_exactly(int.from_bytes(header, "big"))
            if payload is None:
                return
            if mode == "echo" or len(payload) < MARKER_MAX:
                await stream.send_all(header + payload)
    except Exception:
        return


def serve_raw_trio_naive(mode: str) -> None:
    serve_raw_trio(mode, _raw_trio_naive_handler)


def serve_raw_trio(mode: str, handler=None) -> None:  # type: ignore[no-untyped-def]
    import functools

    import trio

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            listeners = await nursery.start(
                functools.partial(
                    trio.serve_tcp,
                    functools.partial(handler or _raw_trio_handler_wrap, mode=mode), 0,
                    host="127.0.0.1",
                )
            )
            emit(f"PORT {listeners[0].socket.getsockname()[1]}")

    trio.run(main)


async def _raw_trio_handler_wrap(stream, mode: str) -> None:  # type: ignore[no-untyped-def]
    await _raw_trio_handler(stream, mode)


# ------------------------------------------------------------------ asyncio


def serve_websockets_asyncio(mode: str) -> None:
    import asyncio

    from websockets.asyncio.server import serve

    handler = _websockets_handler(mode)

    async def main() -> None:
        async with serve(
            handler, "127.0.0.1", 0,
            **_settings(mode, compression=None, ping_interval=None, max_size=MAX_SIZE),
        ) as server:
            emit(f"PORT {server.sockets[0].getsockname()[1]}")
            await asyncio.Future()

    asyncio.run(main())


def serve_picows(mode: str) -> None:
    import asyncio

    from picows import WSListener, WSMsgType, ws_create_server

    class Echo(WSListener):  # type: ignore[misc]
        def __init__(self) -> None:
            self.parts: list[bytes] = []
            self.type = WSMsgType.BINARY

        def on_ws_frame(self, transport, frame) -> None:  # type: ignore[no-untyped-def]
            t = frame.msg_type
            if t is WSMsgType.CLOSE:
                transport.send_close(frame.get_close_code())
                transport.disconnect()
                return
            if t not in (WSMsgType.TEXT, WSMsgType.BINARY, WSMsgType.CONTINUATION):
                return
            if frame.fin and not self.parts:
                # The common case: an unfragmented message, echoed from the
                # receive buffer without a copy.
                if mode != "sink" or frame.payload_size < MARKER_MAX:
                    transport.send(t, frame.get_payload_as_memoryview())
                return
            if t is not WSMsgType.CONTINUATION:
                self.type = t
            self.parts.append(frame.get_payload_as_bytes())
            if frame.fin:
                message = b"".join(self.parts)
                self.parts = []
                if mode != "sink" or len(message) < MARKER_MAX:
                    transport.send(self.type, message)

    async def main() -> None:
        server = await ws_create_server(
            lambda request: Echo(), "127.0.0.1", 0, **_settings(mode, max_frame_size=MAX_SIZE)
        )
        emit(f"PORT {server.sockets[0].getsockname()[1]}")
        await server.serve_forever()

    asyncio.run(main())


SERVERS = {
    "wsstream": serve_wsstream,
    "websockets.trio": serve_websockets_trio,
    "websockets.asyncio": serve_websockets_asyncio,
    "trio-websocket": serve_trio_websocket,
    "picows": serve_picows,
    "raw-trio": serve_raw_trio,
    "raw-trio-naive": serve_raw_trio_naive,
}


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    impl, mode = argv
    if mode not in ("echo", "sink", "defaults"):
        raise SystemExit(f"unknown mode {mode!r}")
    raise_nofile_limit()
    SERVERS[impl](mode)


if __name__ == "__main__":
    main()
