"""Benchmark clients: ``python -m benchmarks.clients IMPL URL SPEC_JSON``.

Runs one measurement against a server started by ``benchmarks.servers`` and
prints one JSON line: ``{"ok": true, "elapsed": ..., ...}`` or
``{"ok": false, "error": "timeout" | "<message>"}``. Then exits at once,
without a closing handshake (closing is not measured, and a deadlocked
library must not hold the process).

SPEC: ``kind`` is ``echo`` (``count`` messages of ``size`` bytes, ``inflight``
of them outstanding at any time, every echo checked), ``rtt`` (one message
at a time, per-message latency) or ``stream`` (``count`` messages one way to a
``sink`` server, then a short marker that is echoed when all arrived).
``warmup`` messages go first, untimed. Every message received is compared with
the one sent.

IMPL is a WebSocket client library, or ``raw-asyncio`` / ``raw-trio`` for the
length-prefixed TCP floor.
"""

from __future__ import annotations

import json
import statistics
import sys
import time
from typing import Any

from .common import MARKER, MAX_SIZE, emit, hard_exit


def payload_for(spec: dict[str, Any]) -> str | bytes:
    size = spec["size"]
    if spec.get("text"):
        return ("wsstream" * (size // 8 + 1))[:size]
    return bytes(range(256)) * (size // 256) + bytes(range(size % 256))


def _latency_summary(lat_ns: list[int]) -> dict[str, float]:
    lat_ns.sort()
    p99 = lat_ns[min(len(lat_ns) - 1, int(len(lat_ns) * 0.99))]
    return {"median_us": statistics.median(lat_ns) / 1000, "p99_us": p99 / 1000}


class Mismatch(Exception):
    pass


def _check(received: object, expected: object) -> None:
    if received != expected:
        kind = type(received).__name__
        size = len(received) if isinstance(received, (str, bytes, bytearray)) else "?"
        raise Mismatch(f"echo mismatch: got {kind} of {size}")


# ------------------------------------------------- generic send/recv drivers


async def _measure(send, recv, spec, payload, pipelined):  # type: ignore[no-untyped-def]
    """The scenario ``spec["kind"]``, timed; ``pipelined(count, inflight)``
    is the event loop's own (trio or asyncio), the rest is shared."""
    kind = spec["kind"]

    async def one_way(count: int) -> None:
        for _ in range(count):
            await send(payload)
        await send(MARKER)
        _check(await recv(), MARKER)

    if kind == "echo":
        await pipelined(spec["warmup"], spec["inflight"])
        t0, c0 = time.perf_counter(), time.process_time()
        await pipelined(spec["count"], spec["inflight"])
        return _timed(t0, c0)
    if kind == "rtt":
        await pipelined(spec["warmup"], 1)
        lat = []
        t0, c0 = time.perf_counter(), time.process_time()
        for _ in range(spec["count"]):
            s = time.perf_counter_ns()
            await send(payload)
            _check(await recv(), payload)
            lat.append(time.perf_counter_ns() - s)
        return {**_timed(t0, c0), **_latency_summary(lat)}
    if kind == "stream":
        await one_way(spec["warmup"])
        t0, c0 = time.perf_counter(), time.process_time()
        await one_way(spec["count"])
        return _timed(t0, c0)
    raise ValueError(kind)


def _timed(t0: float, c0: float) -> dict[str, float]:
    """Wall time and the client's own CPU time (user + system, this
    process) since ``t0`` / ``c0``: CPU per message is steadier than a rate
    on a shared machine."""
    return {"elapsed": time.perf_counter() - t0, "cpu": time.process_time() - c0}


async def trio_workload(send, recv, spec):  # type: ignore[no-untyped-def]
    import trio

    payload = payload_for(spec)

    async def pipelined(count: int, inflight: int) -> None:
        slots = trio.Semaphore(inflight)

        async def sender() -> None:
            for _ in range(count):
                await slots.acquire()
                await send(payload)

        async with trio.open_nursery() as nursery:
            nursery.start_soon(sender)
            for _ in range(count):
                _check(await recv(), payload)
                slots.release()

    return await _measure(send, recv, spec, payload, pipelined)


async def asyncio_workload(send, recv, spec):  # type: ignore[no-untyped-def]
    import asyncio

    payload = payload_for(spec)

    async def pipelined(count: int, inflight: int) -> None:
        slots = asyncio.Semaphore(inflight)

        async def sender() -> None:
            for _ in range(count):
                await slots.acquire()
                await send(payload)

        task = asyncio.ensure_future(sender())
        try:
            for _ in range(count):
                _check(await recv(), payload)
                slots.release()
        finally:
            task.cancel()
        await asyncio.gather(task, return_exceptions=True)

    return await _measure(send, recv, spec, payload, pipelined)


# ------------------------------------------------------------- trio clients


def run_trio(connect_and_run, spec):  # type: ignore[no-untyped-def]
    import trio

    async def main() -> dict[str, Any]:
        with trio.fail_after(spec["timeout"]):
            return await connect_and_run()

    return trio.run(main)


def client_wsstream(url: str, spec: dict[str, Any]) -> dict[str, Any]:
    import wsstream

    async def go() -> dict[str, Any]:
        async with wsstream.WebSocketStream(
            url, compression=None, ping_interval=None, max_message_size=MAX_SIZE
        ) as wss:
            readable, writable, *_ = await wss.opened
            result = await trio_workload(writable.send, readable.receive, spec)
            _finish(result)
            raise AssertionError("unreachable")

    return run_trio(go, spec)


def client_websockets_trio(url: str, spec: dict[str, Any]) -> dict[str, Any]:
    from websockets.trio.client import connect

    async def go() -> dict[str, Any]:
        async with connect(url, compression=None, ping_interval=None, max_size=MAX_SIZE) as ws:
            result = await trio_workload(ws.send, ws.recv, spec)
            _finish(result)
            raise AssertionError("unreachable")

    return run_trio(go, spec)


def client_trio_websocket(url: str, spec: dict[str, Any]) -> dict[str, Any]:
    from trio_websocket import open_websocket_url

    async def go() -> dict[str, Any]:
        async with open_websocket_url(url, max_message_size=MAX_SIZE) as ws:
            result = await trio_workload(ws.send_message, ws.get_message, spec)
            _finish(result)
            raise AssertionError("unreachable")

    return run_trio(go, spec)


def client_raw_trio(url: str, spec: dict[str, Any]) -> dict[str, Any]:
    import trio

    host, port = _host_port(url)

    async def go() -> dict[str, Any]:
        stream = await trio.open_tcp_stream(host, port)
        buf = bytearray()

        async def send(message: str | bytes) -> None:
            data = message.encode() if isinstance(message, str) else message
            await stream.send_all(len(data).to_bytes(4, "big") + data)

        async def recv() -> bytes:
            while True:
                if len(buf) >= 4:
                    length = int.from_bytes(buf[:4], "big")
                    if len(buf) >= 4 + length:
                        message = bytes(buf[4:4 + length])
                        del buf[:4 + length]
                        return message
                data = await stream.receive_some(262144)
                if not data:
                    raise EOFError
                buf.extend(data)

        spec2 = dict(spec, text=False)  # the floor has no text frames
        result = await trio_workload(send, recv, spec2)
        _finish(result)
        raise AssertionError("unreachable")

    return run_trio(go, spec)


# ---------------------------------------------------------- asyncio clients


def run_asyncio(connect_and_run, spec):  # type: ignore[no-untyped-def]
    import asyncio

    async def main() -> dict[str, Any]:
        async with asyncio.timeout(spec["timeout"]):
            return await connect_and_run()

    try:
        return asyncio.run(main())
    except TimeoutError:
        return {"ok": False, "error": "timeout"}


def client_websockets_asyncio(url: str, spec: dict[str, Any]) -> dict[str, Any]:
    from websockets.asyncio.client import connect

    async def go() -> dict[str, Any]:
        async with connect(url, compression=None, ping_interval=None, max_size=MAX_SIZE) as ws:
            result = await asyncio_workload(ws.send, ws.recv, spec)
            _finish(result)
            raise AssertionError("unreachable")

    return run_asyncio(go, spec)


class _Flow:
    """Write-side flow control for callback-based asyncio transports."""

    def __init__(self) -> None:
        import asyncio

        self.resumed = asyncio.Event()
        self.resumed.set()

    def pause_writing(self) -> None:
        self.resumed.clear()

    def resume_writing(self) -> None:
        self.resumed.set()


class _Pipeline:
    """The workload for callback clients: received messages drive the sends.

    ``send(message)`` is synchronous (the transport buffers); ``received(m)``
    is called for each complete message.
    """

    def __init__(self, send, spec) -> None:  # type: ignore[no-untyped-def]
        self.send = send
        self.spec = spec
        self.payload = payload_for(spec)
        self.expected: Any = self.payload
        self.future: Any = None
        self.sent = self.got = self.count = 0
        self.refill = True

    def received(self, message: Any) -> None:
        _check(message, self.expected)
        self.got += 1
        if self.refill and self.sent < self.count:
            self.sent += 1
            self.send(self.payload)
        if self.got == self.count and not self.future.done():
            self.future.set_result(None)

    async def pipelined(self, count: int, inflight: int) -> None:
        import asyncio

        self.future = asyncio.get_running_loop().create_future()
        self.sent = self.got = 0
        self.count = count
        self.expected = self.payload
        self.refill = True
        if count == 0:
            return
        for _ in range(min(inflight, count)):
            self.sent += 1
            self.send(self.payload)
        await self.future

    async def one_way(self, count: int, flow: _Flow) -> None:
        import asyncio

        self.future = asyncio.get_running_loop().create_future()
        self.got, self.count, self.refill = 0, 1, False
        self.expected = MARKER
        for _ in range(count):
            await flow.resumed.wait()
            self.send(self.payload)
        self.send(MARKER)
        await self.future

    async def run(self, flow: _Flow) -> dict[str, Any]:
        spec = self.spec
        kind = spec["kind"]
        if kind == "echo":
            await self.pipelined(spec["warmup"], spec["inflight"])
            t0, c0 = time.perf_counter(), time.process_time()
            await self.pipelined(spec["count"], spec["inflight"])
            return _timed(t0, c0)
        if kind == "rtt":
            await self.pipelined(spec["warmup"], 1)
            lat = []
            t0, c0 = time.perf_counter(), time.process_time()
            for _ in range(spec["count"]):
                s = time.perf_counter_ns()
                await self.pipelined(1, 1)
                lat.append(time.perf_counter_ns() - s)
            return {**_timed(t0, c0), **_latency_summary(lat)}
        if kind == "stream":
            await self.one_way(spec["warmup"], flow)
            t0, c0 = time.perf_counter(), time.process_time()
            await self.one_way(spec["count"], flow)
            return _timed(t0, c0)
        raise ValueError(kind)


def client_picows(url: str, spec: dict[str, Any]) -> dict[str, Any]:
    from picows import WSListener, WSMsgType, ws_connect

    class Client(WSListener, _Flow):  # type: ignore[misc]
        def __init__(self) -> None:
            _Flow.__init__(self)
            self.transport: Any = None
            self.pipeline: _Pipeline | None = None
            self.parts: list[bytes] = []
            self.type = WSMsgType.BINARY

        def on_ws_connected(self, transport) -> None:  # type: ignore[no-untyped-def]
            self.transport = transport

        def pause_writing(self) -> None:
            _Flow.pause_writing(self)

        def resume_writing(self) -> None:
            _Flow.resume_writing(self)

        def on_ws_frame(self, transport, frame) -> None:  # type: ignore[no-untyped-def]
            t = frame.msg_type
            if t not in (WSMsgType.TEXT, WSMsgType.BINARY, WSMsgType.CONTINUATION):
                future = self.pipeline.future if self.pipeline else None
                if t is WSMsgType.CLOSE and future is not None and not future.done():
                    future.set_exception(EOFError(
                        f"closed by the server: {frame.get_close_code()} "
                        f"{frame.get_close_reason()!r}"))
                return
            if t is not WSMsgType.CONTINUATION:
                self.type = t
            if frame.fin and not self.parts:
                data = frame.get_payload_as_bytes()
            else:
                self.parts.append(frame.get_payload_as_bytes())
                if not frame.fin:
                    return
                data, self.parts = b"".join(self.parts), []
            assert self.pipeline is not None
            try:
                self.pipeline.received(data.decode() if self.type is WSMsgType.TEXT else data)
            except Exception as exc:
                if not self.pipeline.future.done():
                    self.pipeline.future.set_exception(exc)

    async def go() -> dict[str, Any]:
        transport, client = await ws_connect(Client, url, max_frame_size=MAX_SIZE)

        def send(message: str | bytes) -> None:
            if isinstance(message, str):
                transport.send(WSMsgType.TEXT, message.encode())
            else:
                transport.send(WSMsgType.BINARY, message)

        client.pipeline = _Pipeline(send, spec)
        result = await client.pipeline.run(client)
        _finish(result)
        raise AssertionError("unreachable")

    return run_asyncio(go, spec)


def client_raw_asyncio(url: str, spec: dict[str, Any]) -> dict[str, Any]:
    """The floor's cheapest client: an asyncio Protocol parsing length prefixes."""
    import asyncio

    host, port = _host_port(url)
    spec = dict(spec, text=False)

    class Proto(asyncio.Protocol, _Flow):
        def __init__(self) -> None:
            _Flow.__init__(self)
            self.buf = bytearray()
            self.pipeline: _Pipeline | None = None

        def data_received(self, data: bytes) -> None:
            buf = self.buf
            buf += data
            pos, end = 0, len(buf)
            assert self.pipeline is not None
            try:
                while end - pos >= 4:
                    length = int.from_bytes(buf[pos:pos + 4], "big")
                    if end - pos - 4 < length:
                        break
                    self.pipeline.received(bytes(buf[pos + 4:pos + 4 + length]))
                    pos += 4 + length
            except Exception as exc:
                if not self.pipeline.future.done():
                    self.pipeline.future.set_exception(exc)
            del buf[:pos]

    async def go() -> dict[str, Any]:
        loop = asyncio.get_running_loop()
        transport, proto = await loop.create_connection(Proto, host, port)

        def send(message: bytes) -> None:
            transport.writelines([len(message).to_bytes(4, "big"), message])

        proto.pipeline = _Pipeline(send, spec)
        result = await proto.pipeline.run(proto)
        _finish(result)
        raise AssertionError("unreachable")

    return run_asyncio(go, spec)


# ------------------------------------------------------------------ driver


def _host_port(url: str) -> tuple[str, int]:
    rest = url.split("://", 1)[1].split("/", 1)[0]
    host, port = rest.rsplit(":", 1)
    return host, int(port)


def _finish(result: dict[str, Any]) -> None:
    """Report the measurement and leave at once, from inside the connection."""
    emit(json.dumps({"ok": True, **result}))
    hard_exit(0)


CLIENTS = {
    "wsstream": client_wsstream,
    "websockets.trio": client_websockets_trio,
    "websockets.asyncio": client_websockets_asyncio,
    "trio-websocket": client_trio_websocket,
    "picows": client_picows,
    "raw-trio": client_raw_trio,
    "raw-trio-naive": client_raw_trio,
    "raw-asyncio": client_raw_asyncio,
}


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    impl, url, spec_json = argv
    spec = json.loads(spec_json)
    try:
        result = CLIENTS[impl](url, spec)
    except BaseException as exc:
        import trio

        timeout = isinstance(exc, (TimeoutError, trio.TooSlowError))
        if isinstance(exc, BaseExceptionGroup):
            leaves = exc.exceptions
            timeout = timeout or any(isinstance(e, trio.TooSlowError) for e in leaves)
        result = {"ok": False, "error": "timeout" if timeout else f"{type(exc).__name__}: {exc}"}
    emit(json.dumps(result))
    hard_exit(0 if result.get("ok") else 1)


if __name__ == "__main__":
    main()
