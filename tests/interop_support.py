"""Helpers for the interop tests: peers in child processes, a recording handler.

A peer server is a child process that prints ``PORT <n>`` once it listens on
127.0.0.1, then one JSON line per connection that ended (what it saw). A peer
client runs one scenario and prints one JSON line with what it saw.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from typing import Any

import trio

import wsstream

#: Bound on one peer's start-up, one report, one client scenario.
PEER_TIMEOUT = 30


class LineReader:
    """Lines from a trio receive stream (a child's stdout)."""

    def __init__(self, stream: trio.abc.ReceiveStream) -> None:
        self._stream = stream
        self._buffer = bytearray()

    async def readline(self) -> str:
        while b"\n" not in self._buffer:
            chunk = await self._stream.receive_some()
            if not chunk:
                raise EOFError("the peer closed its stdout")
            self._buffer += chunk
        line, _, rest = bytes(self._buffer).partition(b"\n")
        self._buffer = bytearray(rest)
        return line.decode()


class PeerServer:
    """A peer's server running in a child process."""

    def __init__(self, process: trio.Process, reader: LineReader, port: int) -> None:
        self.process = process
        self._reader = reader
        self.url = f"ws://127.0.0.1:{port}"

    async def next_connection_report(self) -> dict[str, Any]:
        """What the peer saw of the next connection that ended."""
        with trio.fail_after(PEER_TIMEOUT):
            report: dict[str, Any] = json.loads(await self._reader.readline())
            return report


StartPeer = Callable[..., Awaitable[PeerServer]]


@asynccontextmanager
async def peer_servers(command: Sequence[str]) -> AsyncIterator[StartPeer]:
    """``start(*args)`` runs ``command + args`` as a peer server; every peer
    started is killed when the block ends."""
    processes: list[trio.Process] = []

    async def start(*args: str) -> PeerServer:
        process = await trio.lowlevel.open_process([*command, *args], stdout=subprocess.PIPE)
        processes.append(process)
        assert process.stdout is not None
        reader = LineReader(process.stdout)
        with trio.fail_after(PEER_TIMEOUT):
            line = await reader.readline()
        assert line.startswith("PORT "), line
        return PeerServer(process, reader, int(line.split()[1]))

    try:
        yield start
    finally:
        with trio.CancelScope(shield=True):
            for process in processes:
                process.kill()
                await process.wait()
                if process.stdout is not None:
                    await process.stdout.aclose()


async def run_peer_client(command: Sequence[str]) -> dict[str, Any]:
    """Run one peer client scenario to its end; its report ({} if none)."""
    with trio.fail_after(PEER_TIMEOUT):
        result = await trio.run_process(list(command), capture_stdout=True)
    lines = result.stdout.decode().splitlines()
    report: dict[str, Any] = json.loads(lines[-1]) if lines else {}
    return report


def check_extensions(extensions: str, compression: str | None) -> None:
    """permessage-deflate was negotiated if and only if compression is on."""
    if compression:
        assert extensions.startswith("permessage-deflate"), extensions
    else:
        assert extensions == ""


Then = Callable[[wsstream.WebSocketStream], Awaitable[None]]


class Recorder:
    """A wsstream server handler that echoes (or runs ``then``) and
    remembers what it saw: the OpenInfo, the messages, how it ended."""

    def __init__(self, then: Then | None = None) -> None:
        self.then = then
        self.opened: wsstream.OpenInfo | None = None
        self.received: list[str | bytes] = []
        self.outcome: wsstream.CloseInfo | wsstream.WebSocketError | None = None
        self.done = trio.Event()

    async def __call__(self, wss: wsstream.WebSocketStream) -> None:
        try:
            self.opened = await wss.opened
            if self.then is not None:
                await self.then(wss)
            else:
                async for message in self.opened.readable:
                    self.received.append(message)
                    await self.opened.writable.send(message)
            self.outcome = await wss.closed
        except wsstream.WebSocketError as exc:
            self.outcome = exc
        finally:
            self.done.set()

    async def wait(self) -> None:
        with trio.fail_after(PEER_TIMEOUT):
            await self.done.wait()
