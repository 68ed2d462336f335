"""Interop with the ``websockets`` package's asyncio client and server.

The asyncio peer runs in its own process (tests/peers/websockets_peer.py),
not in a thread of the test process: asyncio and trio then never share a GIL
or a process, the peer's 1 MiB pipelines use the second core, and "the peer
went away" can be a real process death (SIGKILL) rather than a simulation.
Each test starts its own peer (about 0.1 s) so that no test sees another's
state; every peer is killed when its test ends.
"""

from __future__ import annotations

import hashlib
import json
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
import trio

import wsstream
from tests.conftest import Server, pipeline
from tests.interop_support import (
    LONGEST_REASON,
    OUR_CLOSE_CASES,
    OUR_SERVER_CLOSE_CASES,
    PEER_CLIENT_CLOSE_CASES,
    PEER_CLOSE_CASES,
    Recorder,
    StartPeer,
    check_deflate_with_peer_client,
    check_deflate_with_peer_server,
    check_echo_over_our_max_size_fails_with_1009,
    check_extensions,
    check_our_close_reaches_peer,
    check_our_server_closing_first,
    check_our_server_picks_the_first_offer,
    check_our_server_sees_the_clients_echo,
    check_peer_client_close_reaches_our_server,
    check_peer_closing_first,
    check_ping_answered,
    peer_servers,
    run_peer_client,
)
from tests.peers.websockets_peer import MIB, digest, sample_messages

pytestmark = pytest.mark.interop

PEER = Path(__file__).parent.parent / "peers" / "websockets_peer.py"

#: Room for the 1 MiB messages plus the UTF-8 growth of non-ASCII text.
MAX_SIZE = 2 * MIB

assert len(LONGEST_REASON.encode()) == 123


@pytest.fixture
async def websockets_server() -> AsyncIterator[StartPeer]:
    async with peer_servers([sys.executable, str(PEER), "server"]) as start:
        yield start


async def run_websockets_client(url: str, scenario: str, *args: str) -> dict[str, Any]:
    """Run one scenario of the websockets asyncio client; what it saw."""
    return await run_peer_client([sys.executable, str(PEER), "client", url, scenario, *args])


def compression_args(compression: str | None) -> list[str]:
    return [] if compression else ["--no-compression"]


# -- our client -> the websockets server ----------------------------------


@pytest.mark.parametrize("compression", ["deflate", None])
async def test_client_round_trips_text_and_binary_through_websockets_server(
    websockets_server: StartPeer, compression: str | None
) -> None:
    peer = await websockets_server(*compression_args(compression))
    messages = sample_messages()
    async with wsstream.WebSocketStream(
        peer.url + "/echo", compression=compression, max_message_size=MAX_SIZE
    ) as wss:
        readable, writable, extensions, protocol = await wss.opened
        check_extensions(extensions, compression)
        assert protocol == ""
        with trio.fail_after(20):
            for message in messages:
                await writable.send(message)
            for message in messages:
                assert await readable.receive() == message
            wss.close(1000, "done")
            assert await wss.closed == (1000, "done")
    report = await peer.next_connection_report()
    assert report == {
        "path": "/echo",
        "close_code": 1000,
        "close_reason": "done",
        "received": len(messages),
        "extensions": extensions,
    }


async def test_client_gets_the_subprotocol_websockets_server_prefers(
    websockets_server: StartPeer,
) -> None:
    # websockets picks the first of *its* list that the client offers.
    peer = await websockets_server("--subprotocols", "chat.v1,chat.v2")
    async with wsstream.WebSocketStream(
        peer.url + "/echo", protocols=["chat.v2", "chat.v1"]
    ) as wss:
        opened = await wss.opened
        assert opened.protocol == "chat.v1"
        await opened.writable.send("x")
        assert await opened.readable.receive() == "x"


async def test_client_without_subprotocol_is_rejected_by_websockets_server_requiring_one(
    websockets_server: StartPeer,
) -> None:
    peer = await websockets_server("--subprotocols", "chat.v1")
    async with wsstream.WebSocketStream(peer.url + "/echo") as wss:
        with pytest.raises(wsstream.HandshakeError) as info:
            await wss.opened
        assert info.value.status == 400
        assert info.value.close_code == 1006
        with pytest.raises(wsstream.HandshakeError):
            await wss.closed


@OUR_CLOSE_CASES
async def test_client_close_code_and_reason_reach_websockets_server(
    websockets_server: StartPeer, code: int | None, reason: str, expected: tuple[int, str]
) -> None:
    await check_our_close_reaches_peer(await websockets_server(), code, reason, expected)


@PEER_CLOSE_CASES
async def test_websockets_server_closing_first_gives_its_code_and_reason(
    websockets_server: StartPeer, path: str, expected: tuple[int, str]
) -> None:
    await check_peer_closing_first(await websockets_server(), path, expected)


async def test_websockets_server_dropping_tcp_gives_1006(websockets_server: StartPeer) -> None:
    peer = await websockets_server()
    async with wsstream.WebSocketStream(peer.url + "/drop") as wss:
        readable, writable, *_ = await wss.opened
        await writable.send("x")
        with trio.fail_after(10):
            with pytest.raises(wsstream.WebSocketError) as info:
                await readable.receive()
            assert info.value.close_code == 1006
            with pytest.raises(wsstream.WebSocketError) as closed_info:
                await wss.closed
            assert closed_info.value is info.value
    report = await peer.next_connection_report()
    assert report["close_code"] == 1006


async def test_websockets_server_process_killed_gives_1006(
    websockets_server: StartPeer,
) -> None:
    peer = await websockets_server()
    async with wsstream.WebSocketStream(peer.url + "/echo") as wss:
        readable, writable, *_ = await wss.opened
        await writable.send("before")
        assert await readable.receive() == "before"
        peer.process.kill()
        with trio.fail_after(10):
            with pytest.raises(wsstream.WebSocketError) as info:
                await readable.receive()
            assert info.value.close_code == 1006
            with pytest.raises(wsstream.WebSocketError) as send_info:
                await writable.send("after")
            assert send_info.value.close_code == 1006
            with pytest.raises(wsstream.WebSocketError):
                await wss.closed


@pytest.mark.parametrize("compression", ["deflate", None])
async def test_pipelined_echo_of_64_messages_of_1_mib_with_websockets_server(
    websockets_server: StartPeer, compression: str | None
) -> None:
    # The required case: 64 messages of 1 MiB in flight in each direction.
    peer = await websockets_server(*compression_args(compression))
    payload = bytes(range(256)) * 4096
    async with wsstream.WebSocketStream(
        peer.url + "/echo", compression=compression, max_message_size=MAX_SIZE
    ) as wss:
        readable, writable, extensions, _ = await wss.opened
        check_extensions(extensions, compression)
        with trio.fail_after(40):
            await pipeline(readable, writable, payload, 64)
        stats = wss.statistics()
        assert stats.messages_sent == 64
        assert stats.messages_received == 64
    report = await peer.next_connection_report()
    assert report["received"] == 64
    assert report["close_code"] == 1000


async def test_websockets_server_streaming_64_mib_while_reading_ours(
    websockets_server: StartPeer,
) -> None:
    # The peer writes 64 x 1 MiB without waiting for its own reader, while we
    # write as many to it: both sides' buffers fill at once.
    peer = await websockets_server("--no-compression")
    payload = bytes(range(256)) * 4096
    async with wsstream.WebSocketStream(
        peer.url + "/pipeline/64", compression=None, max_message_size=MAX_SIZE
    ) as wss:
        readable, writable, *_ = await wss.opened
        with trio.fail_after(40):
            await pipeline(readable, writable, payload, 64)
    report = await peer.next_connection_report()
    assert report["received"] == 64


async def test_client_ping_is_answered_by_websockets_server(
    websockets_server: StartPeer,
) -> None:
    await check_ping_answered(await websockets_server())


# -- the websockets client -> our server ------------------------------------


async def test_websockets_client_fragmented_messages_are_reassembled_by_our_server(
    server: Server,
) -> None:
    recorder = Recorder()
    url = await server.start(recorder)
    report = await run_websockets_client(url, "fragments")
    expected: list[str | bytes] = ["fragménted ✓", b"abcd"]
    assert report["received"] == [digest(m) for m in expected]
    assert report["ping_answered"] is True
    await recorder.wait()
    assert recorder.received == expected


async def test_our_server_picks_the_first_of_the_websockets_clients_offers(
    server: Server,
) -> None:
    await check_our_server_picks_the_first_offer(server, run_websockets_client)


@OUR_SERVER_CLOSE_CASES
async def test_our_server_closing_first_reaches_websockets_client(
    server: Server,
    then: Callable[[wsstream.WebSocketStream], Awaitable[None]],
    expected: tuple[int, str],
) -> None:
    await check_our_server_closing_first(server, run_websockets_client, then, expected)


async def test_our_server_closing_first_sees_the_websockets_clients_echo(
    server: Server,
) -> None:
    await check_our_server_sees_the_clients_echo(server, run_websockets_client)


async def test_websockets_client_vanishing_gives_1006_on_our_server(server: Server) -> None:
    seen: list[str | bytes] = []
    errors: list[wsstream.WebSocketError] = []
    done = trio.Event()

    async def handler(wss: wsstream.WebSocketStream) -> None:
        readable, *_ = await wss.opened
        try:
            seen.append(await readable.receive())
            with pytest.raises(wsstream.WebSocketError) as info:
                await readable.receive()
            errors.append(info.value)
            with pytest.raises(wsstream.WebSocketError) as closed_info:
                await wss.closed
            errors.append(closed_info.value)
        finally:
            done.set()

    url = await server.start(handler)
    assert await run_websockets_client(url, "vanish") == {}
    with trio.fail_after(10):
        await done.wait()
    assert seen == ["bye"]
    assert [e.close_code for e in errors] == [1006, 1006]


async def test_websockets_client_pipelines_64_mib_through_our_server(server: Server) -> None:
    recorder = Recorder()
    url = await server.start(recorder, compression=None, max_message_size=MAX_SIZE)
    report = await run_websockets_client(url, "pipeline", "--no-compression")
    assert report["echoed_ok"] == 64
    assert report["close_code"] == 1000
    await recorder.wait()
    assert len(recorder.received) == 64


async def test_message_over_our_max_size_from_websockets_server_fails_with_1009(
    websockets_server: StartPeer,
) -> None:
    await check_echo_over_our_max_size_fails_with_1009(await websockets_server())


async def test_message_over_websockets_servers_max_size_gives_its_1009_close(
    websockets_server: StartPeer,
) -> None:
    # The peer fails the connection with 1009 and a Close frame: for us the
    # Close frames were exchanged, so `closed` reports its code and reason.
    peer = await websockets_server("--max-size", str(MIB))
    async with wsstream.WebSocketStream(peer.url + "/echo", max_message_size=2 * MIB) as wss:
        readable, writable, *_ = await wss.opened
        await writable.send(bytes(MIB + 1))
        with trio.fail_after(10):
            code: int | None
            try:
                assert [m async for m in readable] == []
                code, reason = await wss.closed
            except wsstream.WebSocketError as exc:
                # The peer's Close may come while our message is still partly
                # unwritten: the engine then reports the close as unclean,
                # still with the peer's code and reason.
                code, reason = exc.close_code, exc.reason
    assert code == 1009
    assert "limit" in reason  # websockets: "frame exceeds limit of 1048576 bytes"
    report = await peer.next_connection_report()
    # websockets fails the connection as RFC 6455 7.1.7 says: its Close, then
    # TCP closed at once, without reading our echo; so it reports 1006.
    assert report["close_code"] == 1006


# A clean Close right after the peer got our last message must stay clean (the
# flusher's completed write is accounted before the close is judged).
@pytest.mark.parametrize("compression", ["deflate", None])
async def test_websockets_client_round_trips_through_our_server(
    server: Server, compression: str | None
) -> None:
    recorder = Recorder()
    url = await server.start(recorder, compression=compression, max_message_size=MAX_SIZE)
    report = await run_websockets_client(url + "/x", "echo", *compression_args(compression))
    messages = sample_messages()
    assert report["received"] == [digest(m) for m in messages]
    check_extensions(report["extensions"], compression)
    assert report["protocol"] is None
    assert (report["close_code"], report["close_reason"]) == (1000, "")
    await recorder.wait()
    assert recorder.opened is not None
    check_extensions(recorder.opened.extensions, compression)
    assert recorder.received == messages
    assert recorder.outcome == (1000, "")


@PEER_CLIENT_CLOSE_CASES
async def test_websockets_client_close_code_and_reason_reach_our_server(
    server: Server, code: str, reason: str, expected: tuple[int, str]
) -> None:
    await check_peer_client_close_reaches_our_server(
        server, run_websockets_client, code, reason, expected
    )


# -- messages larger than memory, streamed (issue 16) ------------------------


@pytest.mark.parametrize("compression", ["deflate", None])
async def test_our_server_streams_a_fragmented_upload_from_websockets_and_back(
    server: Server, compression: str | None
) -> None:
    # websockets' client sends one 16 MiB message as 64 frames (an async
    # iterable); our handler takes it in chunks (max_message_size stays at
    # 1 MiB: the message is held, then streamed), answers its digest, then
    # sends 16 MiB back in 32 parts, which websockets reads frame by frame.
    seen: dict[str, Any] = {}

    async def handler(wss: wsstream.WebSocketStream) -> None:
        readable, writable, *_ = await wss.opened
        hasher, chunks = hashlib.sha256(), 0
        async with readable.receive_stream() as message:
            async for chunk in message:
                hasher.update(chunk)  # type: ignore[arg-type]
                chunks += 1
                seen["most_buffered"] = max(
                    seen.get("most_buffered", 0), wss.statistics().buffered_in
                )
        await writable.send(json.dumps({"sha256": hasher.hexdigest(), "length": message.size}))
        async with writable.send_stream() as out:
            for i in range(32):
                await out.send(bytes([i]) * (512 * 1024))
        seen["chunks"] = chunks
        async for _ in readable:
            pass

    url = await server.start(handler, compression=compression)
    # websockets bounds even a message read frame by frame by max_size.
    report = await run_websockets_client(
        url, "stream", *compression_args(compression), "--max-size", str(64 * MIB)
    )
    assert report["answer"] == {"sha256": report["sent_sha256"], "length": 16 * MIB}
    expected = hashlib.sha256(b"".join(bytes([i]) * (512 * 1024) for i in range(32)))
    assert report["streamed"]["sha256"] == expected.hexdigest()
    assert report["streamed"]["length"] == 16 * MIB
    assert report["streamed"]["frames"] == 33  # 32 parts and the empty last frame
    assert seen["chunks"] >= 16  # it came in pieces, not whole
    assert seen["most_buffered"] <= 2 * MIB  # bounded by read_limit, not 16 MiB


@pytest.mark.parametrize("compression", ["deflate", None])
async def test_our_client_sends_a_message_in_parts_to_websockets(
    websockets_server: StartPeer, compression: str | None
) -> None:
    peer = await websockets_server(*compression_args(compression), "--max-size", str(64 * MIB))
    async with wsstream.WebSocketStream(peer.url + "/digest", compression=compression) as wss:
        readable, writable, *_ = await wss.opened
        hasher = hashlib.sha256()
        async with writable.send_stream(text=True) as message:
            for i in range(10):
                part = f"part {i} é✓ " * 10_000
                hasher.update(part.encode())
                await message.send(part)
        answer = json.loads(await readable.receive())  # type: ignore[arg-type]
    assert answer["sha256"] == hasher.hexdigest()
    assert answer["frames"] == 11
    report = await peer.next_connection_report()
    assert report["received"] == 1


# -- permessage-deflate settings, both ways ---------------------------------------

D = wsstream.Deflate
#: Our default offer (server window S, client window C) as websockets'
#: default server (12 and 12) answers it.
_S, _C = D().server_max_window_bits, D().client_max_window_bits
PMD = "permessage-deflate"
NCT = "server_no_context_takeover; client_no_context_takeover"
#: Our server's answers under the default client_no_context_takeover (None).
PMD_CNCT = f"{PMD}; client_no_context_takeover"


@pytest.mark.parametrize(
    ("ours", "theirs", "expected"),
    [
        (D(), None,
         f"{PMD}; server_max_window_bits={min(_S, 12)}; client_max_window_bits={min(_C, 12)}"),
        # Our client window is ours to keep (11), the answer's 12 a bound.
        (D(server_max_window_bits=10, client_max_window_bits=11),
         {"server_max_window_bits": 12, "client_max_window_bits": 12},
         f"{PMD}; server_max_window_bits=10; client_max_window_bits=12"),
        (D(server_max_window_bits=15, client_max_window_bits=15),
         {"server_max_window_bits": 12, "client_max_window_bits": 12},
         f"{PMD}; server_max_window_bits=12; client_max_window_bits=12"),
        (D(server_max_window_bits=9, client_max_window_bits=9), {},
         f"{PMD}; server_max_window_bits=9"),
        # The server limits its window more than we asked.
        (D(server_max_window_bits=12, client_max_window_bits=15),
         {"server_max_window_bits": 9},
         f"{PMD}; server_max_window_bits=9"),
        (D(server_max_window_bits=15, client_max_window_bits=15,
           server_no_context_takeover=True, client_no_context_takeover=True),
         {"server_max_window_bits": 12, "client_max_window_bits": 12},
         f"{PMD}; {NCT}; server_max_window_bits=12; client_max_window_bits=12"),
        (D(server_max_window_bits=13, client_max_window_bits=14),
         {"server_no_context_takeover": True, "client_no_context_takeover": True},
         f"{PMD}; {NCT}; server_max_window_bits=13"),
    ],
    ids=["defaults", "10-11", "15-15", "9-9", "server-limits-to-9", "we-ask-nct",
         "server-imposes-nct"],
)
async def test_deflate_settings_negotiate_with_websockets_server(
    websockets_server: StartPeer, ours: wsstream.Deflate, theirs: dict[str, object] | None,
    expected: str,
) -> None:
    args = [] if theirs is None else ["--deflate", json.dumps(theirs)]
    peer = await websockets_server(*args)
    report = await check_deflate_with_peer_server(peer, ours, expected)
    assert report["extensions"] == expected


@pytest.mark.parametrize(
    ("theirs", "ours", "expected"),
    [
        (None, D(), f"{PMD_CNCT}; server_max_window_bits={_S}; client_max_window_bits={_C}"),
        ({}, D(server_max_window_bits=10, client_max_window_bits=9),
         f"{PMD_CNCT}; server_max_window_bits=10; client_max_window_bits=9"),
        ({"server_max_window_bits": 9, "client_max_window_bits": 10},
         D(server_max_window_bits=12, client_max_window_bits=12, client_no_context_takeover=False),
         f"{PMD}; server_max_window_bits=9; client_max_window_bits=10"),
        # A client that cannot be limited keeps its 15-bit window.
        ({"client_max_window_bits": None}, D(server_max_window_bits=12, client_max_window_bits=10),
         f"{PMD_CNCT}; server_max_window_bits=12"),
        ({"server_no_context_takeover": True, "client_no_context_takeover": True},
         D(server_max_window_bits=15, client_max_window_bits=15), f"{PMD}; {NCT}"),
        ({}, D(server_max_window_bits=11, client_max_window_bits=11,
               server_no_context_takeover=True, client_no_context_takeover=True),
         f"{PMD}; {NCT}; server_max_window_bits=11; client_max_window_bits=11"),
        # An 8-bit server window cannot be written by zlib: declined.
        ({"server_max_window_bits": 8}, D(), ""),
    ],
    ids=["defaults", "10-9", "client-asks-9-10", "client-unlimited", "client-asks-nct",
         "we-impose-nct", "client-asks-8-declined"],
)
async def test_deflate_settings_negotiate_with_websockets_client(
    server: Server, theirs: dict[str, object] | None, ours: wsstream.Deflate, expected: str
) -> None:
    args = [] if theirs is None else ["--deflate", json.dumps(theirs)]
    report = await check_deflate_with_peer_client(
        server, run_websockets_client, ours, expected, *args
    )
    assert report["extensions"] == expected
