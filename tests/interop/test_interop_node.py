"""Interop with Node's ``ws`` (version pinned in tests/node/package-lock.json).

The peers are tests/node/server.mjs and tests/node/client.mjs, run by
``node`` in child processes. Install them with ``npm ci --prefix tests/node``.

Without ``node`` on PATH these tests skip. With ``node`` but without the
installed ``ws`` they skip too, unless the ``CI`` environment variable is set
(.ci/run sets it and runs ``npm ci`` first): then they fail, so that a broken
install is loud in CI.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest
import trio

import wsstream
from tests.conftest import Server
from tests.interop_support import (
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

NODE = shutil.which("node")
NODE_DIR = Path(__file__).parent.parent / "node"

pytestmark = [
    pytest.mark.interop,
    pytest.mark.skipif(NODE is None, reason="node not found on PATH (Node.js >= 18 needed)"),
]

#: Over the 16 MiB messages, and over the websockets default of 1 MiB.
MAX_SIZE = 32 * MIB


def big_messages() -> list[str | bytes]:
    """The same 16 MiB payloads as bigMessages() in tests/node/client.mjs."""
    return [bytes(range(256)) * (16 * MIB // 256), "é" * (8 * MIB)]


@pytest.fixture(autouse=True)
def ws_installed() -> None:
    if not (NODE_DIR / "node_modules" / "ws" / "package.json").is_file():
        message = "Node's ws is not installed: run `npm ci --prefix tests/node`"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)


@pytest.fixture
async def node_server() -> AsyncIterator[StartPeer]:
    assert NODE is not None
    async with peer_servers([NODE, str(NODE_DIR / "server.mjs")]) as start:
        yield start


async def run_node_client(url: str, scenario: str, *args: str) -> dict[str, object]:
    assert NODE is not None
    return await run_peer_client([NODE, str(NODE_DIR / "client.mjs"), url, scenario, *args])


def deflate_args(compression: str | None) -> list[str]:
    return [] if compression else ["--no-deflate"]


# -- our client -> the ws server ---------------------------------------------


@pytest.mark.parametrize("compression", ["deflate", None])
async def test_client_round_trips_16_mib_messages_through_node_ws_server(
    node_server: StartPeer, compression: str | None
) -> None:
    peer = await node_server(*deflate_args(compression))
    messages = sample_messages() + big_messages()
    async with wsstream.WebSocketStream(
        peer.url + "/echo", compression=compression, max_message_size=MAX_SIZE
    ) as wss:
        readable, writable, extensions, protocol = await wss.opened
        check_extensions(extensions, compression)
        assert protocol == ""
        with trio.fail_after(30):
            async with trio.open_nursery() as nursery:

                async def sender() -> None:
                    for message in messages:
                        await writable.send(message)

                nursery.start_soon(sender)
                for message in messages:
                    assert await readable.receive() == message
            wss.close(1000, "done ✓")
            assert await wss.closed == (1000, "done ✓")
    report = await peer.next_connection_report()
    check_extensions(str(report["extensions"]), compression)
    assert (report["close_code"], report["close_reason"]) == (1000, "done ✓")
    assert report["received"] == len(messages)


@OUR_CLOSE_CASES
async def test_client_close_code_and_reason_reach_node_ws_server(
    node_server: StartPeer, code: int | None, reason: str, expected: tuple[int, str]
) -> None:
    await check_our_close_reaches_peer(await node_server(), code, reason, expected)


@PEER_CLOSE_CASES
async def test_node_ws_server_closing_first_gives_its_code_and_reason(
    node_server: StartPeer, path: str, expected: tuple[int, str]
) -> None:
    await check_peer_closing_first(await node_server(), path, expected)


async def test_node_ws_server_terminating_the_socket_gives_1006(node_server: StartPeer) -> None:
    peer = await node_server()
    async with wsstream.WebSocketStream(peer.url + "/drop") as wss:
        readable, writable, *_ = await wss.opened
        await writable.send("x")
        with trio.fail_after(10):
            with pytest.raises(wsstream.WebSocketError) as info:
                await readable.receive()
            assert info.value.close_code == 1006
            with pytest.raises(wsstream.WebSocketError) as closed_info:
                await wss.closed
            assert closed_info.value.close_code == 1006
    report = await peer.next_connection_report()
    assert report["close_code"] == 1006


async def test_client_gets_the_subprotocol_node_ws_server_accepts(
    node_server: StartPeer,
) -> None:
    # ws's default handleProtocols accepts the client's first offer.
    peer = await node_server()
    url = peer.url + "/echo"
    async with wsstream.WebSocketStream(url, protocols=["chat.v2", "chat.v1"]) as wss:
        opened = await wss.opened
        assert opened.protocol == "chat.v2"
        await opened.writable.send("x")
        assert await opened.readable.receive() == "x"


async def test_client_ping_is_answered_by_node_ws_server(node_server: StartPeer) -> None:
    await check_ping_answered(await node_server())


# -- the ws client -> our server ---------------------------------------------


async def test_node_ws_client_ping_is_answered_by_our_server(server: Server) -> None:
    recorder = Recorder()
    url = await server.start(recorder)
    report = await run_node_client(url, "ping")
    assert report["pong"] == "ping-payload ✓"
    assert (report["close_code"], report["close_reason"]) == (1000, "")
    await recorder.wait()
    assert recorder.received == []


@pytest.mark.parametrize("compression", ["deflate", None])
async def test_node_ws_client_round_trips_16_mib_messages_through_our_server(
    server: Server, compression: str | None
) -> None:
    recorder = Recorder()
    url = await server.start(recorder, compression=compression, max_message_size=MAX_SIZE)
    report = await run_node_client(url, "big", *deflate_args(compression))
    expected = [digest(m) for m in big_messages()]
    assert report["sent"] == expected
    assert report["received"] == expected
    check_extensions(str(report["extensions"]), compression)
    assert (report["close_code"], report["close_reason"]) == (1000, "")
    await recorder.wait()
    assert recorder.opened is not None
    check_extensions(recorder.opened.extensions, compression)
    assert recorder.received == big_messages()


async def test_our_server_picks_the_first_of_the_node_ws_clients_offers(
    server: Server,
) -> None:
    await check_our_server_picks_the_first_offer(server, run_node_client)


@OUR_SERVER_CLOSE_CASES
async def test_our_server_closing_first_reaches_node_ws_client(
    server: Server,
    then: Callable[[wsstream.WebSocketStream], Awaitable[None]],
    expected: tuple[int, str],
) -> None:
    await check_our_server_closing_first(server, run_node_client, then, expected)


async def test_our_server_closing_first_sees_the_node_ws_clients_echo(
    server: Server,
) -> None:
    await check_our_server_sees_the_clients_echo(server, run_node_client)


@PEER_CLIENT_CLOSE_CASES
async def test_node_ws_client_close_code_and_reason_reach_our_server(
    server: Server, code: str, reason: str, expected: tuple[int, str]
) -> None:
    await check_peer_client_close_reaches_our_server(
        server, run_node_client, code, reason, expected
    )


async def test_message_over_our_max_size_from_node_ws_server_fails_with_1009(
    node_server: StartPeer,
) -> None:
    await check_echo_over_our_max_size_fails_with_1009(await node_server())


async def test_node_ws_client_vanishing_gives_1006_on_our_server(server: Server) -> None:
    recorder = Recorder()
    url = await server.start(recorder)
    assert await run_node_client(url, "vanish") == {}
    await recorder.wait()
    assert recorder.received == ["bye"]
    assert isinstance(recorder.outcome, wsstream.WebSocketError)
    assert recorder.outcome.close_code == 1006


# -- permessage-deflate settings, both ways ---------------------------------------

D = wsstream.Deflate
_S, _C = D().server_max_window_bits, D().client_max_window_bits
PMD = "permessage-deflate"
NCT = "server_no_context_takeover; client_no_context_takeover"
#: Our server's answers under the default client_no_context_takeover (None).
PMD_CNCT = f"{PMD}; client_no_context_takeover"


@pytest.mark.parametrize(
    ("ours", "theirs", "expected"),
    [
        # ws's default server takes our first offer as it is (and sets no
        # client window: ours stays our own).
        (D(), None, f"{PMD}; server_max_window_bits={_S}"),
        (D(server_max_window_bits=10, client_max_window_bits=11), {},
         f"{PMD}; server_max_window_bits=10"),
        # ws declines an offer asking for less than its serverMaxWindowBits:
        # our fallback offer, which asks nothing of the server, is taken.
        (D(server_max_window_bits=10, client_max_window_bits=11), {"serverMaxWindowBits": 12},
         f"{PMD}; server_max_window_bits=12"),
        (D(server_max_window_bits=15, client_max_window_bits=15),
         {"serverNoContextTakeover": True, "clientNoContextTakeover": True,
          "clientMaxWindowBits": 9},
         f"{PMD}; client_max_window_bits=9; {NCT}"),
        (D(server_max_window_bits=9, client_max_window_bits=9,
           server_no_context_takeover=True, client_no_context_takeover=True), {},
         f"{PMD}; {NCT}; server_max_window_bits=9"),
    ],
    ids=["defaults", "10-11", "fallback-offer", "server-imposes-nct-9", "we-ask-nct-9-9"],
)
async def test_deflate_settings_negotiate_with_node_ws_server(
    node_server: StartPeer, ours: wsstream.Deflate, theirs: dict[str, object] | None,
    expected: str,
) -> None:
    args = [] if theirs is None else ["--deflate", json.dumps(theirs)]
    peer = await node_server(*args)
    report = await check_deflate_with_peer_server(peer, ours, expected)
    assert report["extensions_header"] == expected


@pytest.mark.parametrize(
    ("theirs", "ours", "expected"),
    [
        (None, D(), f"{PMD_CNCT}; server_max_window_bits={_S}; client_max_window_bits={_C}"),
        ({}, D(server_max_window_bits=10, client_max_window_bits=9),
         f"{PMD_CNCT}; server_max_window_bits=10; client_max_window_bits=9"),
        ({"serverMaxWindowBits": 9, "clientMaxWindowBits": 11},
         D(server_max_window_bits=12, client_max_window_bits=12, client_no_context_takeover=False),
         f"{PMD}; server_max_window_bits=9; client_max_window_bits=11"),
        ({"serverNoContextTakeover": True, "clientNoContextTakeover": True},
         D(server_max_window_bits=15, client_max_window_bits=15), f"{PMD}; {NCT}"),
        ({}, D(server_max_window_bits=11, client_max_window_bits=10,
               server_no_context_takeover=True, client_no_context_takeover=True),
         f"{PMD}; {NCT}; server_max_window_bits=11; client_max_window_bits=10"),
        ({"serverMaxWindowBits": 8}, D(), ""),
    ],
    ids=["defaults", "10-9", "client-asks-9-11", "client-asks-nct", "we-impose-nct",
         "client-asks-8-declined"],
)
async def test_deflate_settings_negotiate_with_node_ws_client(
    server: Server, theirs: dict[str, object] | None, ours: wsstream.Deflate, expected: str
) -> None:
    args = [] if theirs is None else ["--deflate", json.dumps(theirs)]
    report = await check_deflate_with_peer_client(server, run_node_client, ours, expected, *args)
    assert report["extensions_header"] == expected
    assert report["close_code"] == 1000
