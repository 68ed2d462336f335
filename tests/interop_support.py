"""Helpers for the interop tests: peers in child processes, a recording handler.

A peer server is a child process that prints ``PORT <n>`` once it listens on
127.0.0.1, then one JSON line per connection that ended (what it saw). A peer
client runs one scenario and prints one JSON line with what it saw.
"""

from __future__ import annotations

import json
import subprocess
import urllib.parse
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

import pytest
import trio

import wsstream
from tests.peers.websockets_peer import MIB, compressible_messages, digest

if TYPE_CHECKING:
    from tests.conftest import Server

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


# -- checks shared by every peer ----------------------------------------------

#: A reason of exactly 123 UTF-8 bytes, the most a Close frame can carry.
LONGEST_REASON = "é" * 61 + "x"

#: (code, reason) our client closes with, and what both sides must report.
OUR_CLOSE_CASES = pytest.mark.parametrize(
    ("code", "reason", "expected"),
    [
        (1000, "", (1000, "")),
        (4001, "au revoir ✓ ünïcödé 😀", (4001, "au revoir ✓ ünïcödé 😀")),
        (4999, LONGEST_REASON, (4999, LONGEST_REASON)),
        (None, "", (1005, "")),
    ],
    ids=["1000", "4001-unicode", "4999-123-bytes", "no-body-1005"],
)

#: The peer server's /close/... paths, and the close both sides must report.
PEER_CLOSE_CASES = pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/close/1000", (1000, "")),
        ("/close/4002?reason=" + urllib.parse.quote("fermé ✓"), (4002, "fermé ✓")),
        ("/close/4003?reason=" + urllib.parse.quote(LONGEST_REASON), (4003, LONGEST_REASON)),
        ("/close/none", (1005, "")),
    ],
    ids=["1000", "4002-unicode", "4003-123-bytes", "no-body-1005"],
)


async def check_our_close_reaches_peer(
    peer: PeerServer, code: int | None, reason: str, expected: tuple[int, str]
) -> None:
    """Our client closes; the peer's echo and its own report agree."""
    async with wsstream.WebSocketStream(peer.url + "/echo") as wss:
        readable, writable, *_ = await wss.opened
        await writable.send("hi")
        assert await readable.receive() == "hi"
        wss.close(code, reason)
        with trio.fail_after(10):
            # The peer echoes the code and reason of the Close it received.
            assert await wss.closed == expected
    report = await peer.next_connection_report()
    assert (report["close_code"], report["close_reason"]) == expected


async def check_peer_closing_first(peer: PeerServer, path: str, expected: tuple[int, str]) -> None:
    """The peer closes first: its code and reason win, the close is clean."""
    async with wsstream.WebSocketStream(peer.url + path) as wss:
        readable, *_ = await wss.opened
        with trio.fail_after(10):
            assert [m async for m in readable] == []  # clean close: EndOfChannel
            assert await wss.closed == expected
    report = await peer.next_connection_report()
    # Our echo of its Close carries the same code and reason.
    assert (report["close_code"], report["close_reason"]) == expected


async def check_ping_answered(peer: PeerServer) -> None:
    """Our client's ping gets the peer's pong and a round trip."""
    async with wsstream.WebSocketStream(peer.url + "/echo") as wss:
        await wss.opened
        with trio.fail_after(10):
            round_trip = await wss.ping(b"interop")
        assert 0 < round_trip < 10
        assert wss.statistics().pongs_received == 1


async def check_echo_over_our_max_size_fails_with_1009(peer: PeerServer) -> None:
    """The peer echoes a message one byte over our max_message_size: 1009."""
    async with wsstream.WebSocketStream(peer.url + "/echo", max_message_size=MIB) as wss:
        readable, writable, *_ = await wss.opened
        await writable.send(bytes(MIB + 1))  # the echo is one byte over our limit
        with trio.fail_after(10):
            with pytest.raises(wsstream.WebSocketError) as info:
                await readable.receive()
            assert info.value.close_code == 1009
            with pytest.raises(wsstream.WebSocketError) as closed_info:
                await wss.closed
            assert closed_info.value.close_code == 1009
    report = await peer.next_connection_report()
    assert report["close_code"] == 1009


RunClient = Callable[..., Awaitable[dict[str, Any]]]


async def check_our_server_picks_the_first_offer(server: Server, run_client: RunClient) -> None:
    """The peer client offers chat.v2 then chat.v1: we pick chat.v2."""
    recorder = Recorder()
    url = await server.start(recorder, subprotocols=["chat.v1", "chat.v2"])
    report = await run_client(url, "close", "--protocols", "chat.v2,chat.v1")
    assert report["protocol"] == "chat.v2"
    await recorder.wait()
    assert recorder.opened is not None
    assert recorder.opened.protocol == "chat.v2"


async def _close_4003(wss: wsstream.WebSocketStream) -> None:
    readable, *_ = await wss.opened
    assert await readable.receive() == "hi"
    wss.close(4003, "fin ✓")


async def _return(wss: wsstream.WebSocketStream) -> None:
    readable, *_ = await wss.opened
    assert await readable.receive() == "hi"


class HandlerFailed(Exception):
    pass


async def _raise(wss: wsstream.WebSocketStream) -> None:
    readable, *_ = await wss.opened
    assert await readable.receive() == "hi"
    raise HandlerFailed("on purpose")


#: How our server's handler ends, and the close the peer client must see.
OUR_SERVER_CLOSE_CASES = pytest.mark.parametrize(
    ("then", "expected"),
    [(_close_4003, (4003, "fin ✓")), (_return, (1000, "")), (_raise, (1011, ""))],
    ids=["close-4003", "handler-returns", "handler-raises"],
)


async def check_our_server_closing_first(
    server: Server,
    run_client: RunClient,
    then: Callable[[wsstream.WebSocketStream], Awaitable[None]],
    expected: tuple[int, str],
) -> None:
    done = trio.Event()

    async def handler(wss: wsstream.WebSocketStream) -> None:
        try:
            await then(wss)
        finally:
            done.set()

    url = await server.start(handler)
    report = await run_client(url, "wait")
    assert report["received"] == []
    assert (report["close_code"], report["close_reason"]) == expected
    with trio.fail_after(10):
        await done.wait()


async def check_our_server_sees_the_clients_echo(server: Server, run_client: RunClient) -> None:
    recorder = Recorder(then=_close_4003)
    url = await server.start(recorder)
    report = await run_client(url, "wait")
    assert (report["close_code"], report["close_reason"]) == (4003, "fin ✓")
    await recorder.wait()
    assert recorder.outcome == (4003, "fin ✓")


#: (--code, --reason) the peer client closes with, and what both sides report.
PEER_CLIENT_CLOSE_CASES = pytest.mark.parametrize(
    ("code", "reason", "expected"),
    [
        ("1000", "", (1000, "")),
        ("4001", "au revoir ✓ ünïcödé 😀", (4001, "au revoir ✓ ünïcödé 😀")),
        ("4999", LONGEST_REASON, (4999, LONGEST_REASON)),
        ("none", "", (1005, "")),
    ],
    ids=["1000", "4001-unicode", "4999-123-bytes", "no-body-1005"],
)


async def check_peer_client_close_reaches_our_server(
    server: Server, run_client: RunClient, code: str, reason: str, expected: tuple[int, str]
) -> None:
    recorder = Recorder()
    url = await server.start(recorder)
    report = await run_client(url, "close", "--code", code, "--reason", reason)
    # Our server echoes the Close frame it received.
    assert (report["close_code"], report["close_reason"]) == expected
    await recorder.wait()
    assert recorder.received == ["hi"]
    assert recorder.outcome == expected


# -- permessage-deflate settings against a peer --------------------------------

RunClient = Callable[..., Awaitable[dict[str, Any]]]


def _check_shrunk(stats: wsstream.Statistics, messages: Sequence[str], compressed: bool) -> None:
    """Wire bytes each way against the payload: well under it when deflate
    was negotiated (both sides compressed), over it when not."""
    payload = sum(len(message.encode()) for message in messages)
    if compressed:
        assert stats.bytes_sent < payload // 2, (stats.bytes_sent, payload)
        assert stats.bytes_received < payload // 2, (stats.bytes_received, payload)
    else:
        assert stats.bytes_sent > payload and stats.bytes_received > payload


async def check_deflate_with_peer_server(
    peer: PeerServer, settings: wsstream.Deflate, expected: str
) -> dict[str, Any]:
    """Our client with ``settings``: the 101 carries ``expected`` (our side
    reads it), compressible text round-trips, compressed both ways; the
    peer's report of the connection is returned."""
    messages = compressible_messages()
    async with wsstream.WebSocketStream(peer.url + "/echo", compression=settings) as wss:
        readable, writable, extensions, _ = await wss.opened
        assert extensions == expected
        with trio.fail_after(PEER_TIMEOUT):
            for message in messages:
                await writable.send(message)
            for message in messages:
                assert await readable.receive() == message
        stats = wss.statistics()
        wss.close(1000)
        assert await wss.closed == (1000, "")
    _check_shrunk(stats, messages, bool(expected))
    return await peer.next_connection_report()


async def check_deflate_with_peer_client(
    server: Server, run_client: RunClient, settings: wsstream.Deflate, expected: str,
    *client_args: str,
) -> dict[str, Any]:
    """The peer's client (``client_args``) against our server with
    ``settings``: the 101 carries ``expected``, compressible text
    round-trips, compressed both ways; the client's report is returned."""
    seen: list[tuple[str, wsstream.Statistics]] = []
    done = trio.Event()

    async def echo(wss: wsstream.WebSocketStream) -> None:
        try:
            readable, writable, extensions, _ = await wss.opened
            async for message in readable:
                await writable.send(message)
            seen.append((extensions, wss.statistics()))
        finally:
            done.set()

    url = await server.start(echo, compression=settings)
    report = await run_client(url + "/echo", "text", *client_args)
    messages = compressible_messages()
    assert report["received"] == [digest(message) for message in messages]
    with trio.fail_after(PEER_TIMEOUT):
        await done.wait()
    (extensions, stats), = seen
    assert extensions == expected
    _check_shrunk(stats, messages, bool(expected))
    return report
