"""permessage-deflate settings: the ``Deflate`` object, the offer and the
answer each side builds from it (RFC 7692 7.1), what each side then uses,
and the core's ``min_size``, ``level`` and ``mem_level``. Over memory
streams and hand-written HTTP, no sockets."""

from __future__ import annotations

import base64
import hashlib
import os
import zlib
from typing import Any

import attrs
import pytest
import trio
import trio.testing

import wsstream
from tests.core.wire import BINARY, TEXT, build, read_frames
from wsstream._endpoints.compression import DEFAULT_DEFLATE, client_offers, server_factory, settle
from wsstream._endpoints.handshake import (
    ClientHandshake,
    Handshake,
    HandshakeFailure,
    ServerHandshake,
    ServerHooks,
)
from wsstream._endpoints.http import Headers, Request, Response
from wsstream._endpoints.url import parse_url
from wsstream._options import Options
from wsstream._protocol import Core, DeflateParams

GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
#: How our server's answers begin under the default client_no_context_takeover.
PMD_CNCT = "permessage-deflate; client_no_context_takeover"

# -- the settings object ---------------------------------------------------


def test_deflate_means_the_default_settings() -> None:
    assert Options(compression="deflate").deflate == wsstream.Deflate() == DEFAULT_DEFLATE
    assert Options(compression=None).deflate is None
    mine = wsstream.Deflate(server_max_window_bits=10)
    assert Options(compression=mine).deflate is mine


def test_deflate_settings_are_frozen_and_keyword_only() -> None:
    settings = wsstream.Deflate()
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        settings.level = 9  # type: ignore[misc]
    with pytest.raises(TypeError):
        wsstream.Deflate(12)  # type: ignore[call-arg]
    assert attrs.evolve(settings, min_size=64).min_size == 64


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"server_max_window_bits": 8}, ValueError),
        ({"client_max_window_bits": 8}, ValueError),
        ({"server_max_window_bits": 16}, ValueError),
        ({"client_max_window_bits": "12"}, TypeError),
        ({"server_max_window_bits": 12.0}, TypeError),
        ({"server_max_window_bits": True}, TypeError),
        ({"server_no_context_takeover": 1}, TypeError),
        ({"client_no_context_takeover": "yes"}, TypeError),
        ({"level": -1}, ValueError),
        ({"level": 10}, ValueError),
        ({"level": False}, TypeError),
        ({"mem_level": 0}, ValueError),
        ({"mem_level": 10}, ValueError),
        ({"min_size": -1}, ValueError),
        ({"min_size": 1.5}, TypeError),
    ],
)
def test_deflate_rejects_bad_arguments(kwargs: dict[str, Any], error: type[Exception]) -> None:
    with pytest.raises(error):
        wsstream.Deflate(**kwargs)


def test_compression_accepts_deflate_a_settings_object_or_none() -> None:
    with pytest.raises(ValueError, match="compression"):
        wsstream.WebSocketStream("ws://example.com/", compression="gzip")
    with pytest.raises(TypeError, match="compression"):
        wsstream.WebSocketStream("ws://example.com/", compression=15)  # type: ignore[arg-type]
    wsstream.WebSocketStream("ws://example.com/", compression=wsstream.Deflate(level=1))


# -- helpers: both sides over a memory stream, or one side against bytes ---


def client_side(settings: wsstream.Deflate | None) -> ClientHandshake:
    return ClientHandshake(
        parse_url("ws://example.com/"), subprotocols=(), compression=settings,
        origin=None, headers=Headers(), user_agent=None,
    )


def server_side(settings: wsstream.Deflate | None) -> ServerHandshake:
    async def process(request: Request) -> Response | None:
        return None

    return ServerHandshake(ServerHooks(
        select_subprotocol=lambda request, offered: None, process_request=process,
        response_headers=Headers(), origins=None, compression=settings,
    ))


async def negotiate(
    client: wsstream.Deflate | None, server: wsstream.Deflate | None
) -> tuple[Handshake, Handshake]:
    left, right = trio.testing.memory_stream_pair()
    results: dict[str, Any] = {}

    async def run(name: str, side: ClientHandshake | ServerHandshake, stream: Any) -> None:
        results[name] = await side.run(stream)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(run, "client", client_side(client), left)
        nursery.start_soon(run, "server", server_side(server), right)
    assert isinstance(results["client"], Handshake)
    assert isinstance(results["server"], Handshake)
    return results["client"], results["server"]


def params(p: DeflateParams | None) -> tuple[int, int, bool, bool]:
    """(local bits, remote bits, local nct, remote nct)."""
    assert p is not None
    return (p.local_max_window_bits, p.remote_max_window_bits,
            p.local_no_context_takeover, p.remote_no_context_takeover)


async def answer_offer(offer: str | None, settings: wsstream.Deflate) -> tuple[str, Handshake]:
    """Our server's response header to a request carrying ``offer``."""
    left, right = trio.testing.memory_stream_pair()
    request = (
        "GET / HTTP/1.1\r\nHost: example.com\r\nUpgrade: websocket\r\n"
        "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
        "Sec-WebSocket-Version: 13\r\n"
        + (f"Sec-WebSocket-Extensions: {offer}\r\n" if offer is not None else "")
        + "\r\n"
    )
    await left.send_all(request.encode())
    result = await server_side(settings).run(right)
    assert isinstance(result, Handshake)
    response = b""
    while b"\r\n\r\n" not in response:
        response += await left.receive_some()
    assert response.startswith(b"HTTP/1.1 101")
    return result.extensions, result


async def client_against(
    answer: str | None, settings: wsstream.Deflate
) -> tuple[str, Handshake | HandshakeFailure]:
    """Our client's offer, and what it makes of a server's 101 carrying
    ``answer`` as its Sec-WebSocket-Extensions."""
    left, right = trio.testing.memory_stream_pair()
    offer = ""
    outcome: Handshake | HandshakeFailure | None = None

    async def fake_server() -> None:
        nonlocal offer
        head = b""
        while b"\r\n\r\n" not in head:
            head += await right.receive_some()
        headers = dict(
            line.split(": ", 1) for line in head.decode().split("\r\n")[1:] if ": " in line
        )
        offer = headers.get("Sec-WebSocket-Extensions", "")
        accept = base64.b64encode(
            hashlib.sha1((headers["Sec-WebSocket-Key"] + GUID).encode()).digest()
        ).decode()
        response = (
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Accept: {accept}\r\n"
            + (f"Sec-WebSocket-Extensions: {answer}\r\n" if answer is not None else "")
            + "\r\n"
        )
        await right.send_all(response.encode())

    async def client() -> None:
        nonlocal outcome
        try:
            outcome = await client_side(settings).run(left)
        except HandshakeFailure as exc:
            outcome = exc

    async with trio.open_nursery() as nursery:
        nursery.start_soon(fake_server)
        nursery.start_soon(client)
    assert outcome is not None
    return offer, outcome


# -- our client and our server -------------------------------------------------


async def test_defaults_negotiate_the_default_windows_both_ways() -> None:
    client, server = await negotiate(DEFAULT_DEFLATE, DEFAULT_DEFLATE)
    s, c = DEFAULT_DEFLATE.server_max_window_bits, DEFAULT_DEFLATE.client_max_window_bits
    # The server asks the client to reset its context (client_no_context_
    # takeover=None): it then keeps no decompressor between messages.
    assert client.extensions == server.extensions == (
        f"permessage-deflate; client_no_context_takeover; server_max_window_bits={s}; "
        f"client_max_window_bits={c}"
    )
    assert params(client.deflate) == (c, s, True, False)
    assert params(server.deflate) == (s, c, False, True)


def test_client_no_context_takeover_defaults_by_side() -> None:
    # None: a client does not offer it, a server asks for it.
    offers = [factory.get_request_params() for factory in client_offers(DEFAULT_DEFLATE)]
    assert all(("client_no_context_takeover", None) not in offer for offer in offers)
    assert server_factory(DEFAULT_DEFLATE).client_no_context_takeover is True
    assert server_factory(
        wsstream.Deflate(client_no_context_takeover=False)
    ).client_no_context_takeover is False


@pytest.mark.parametrize("server_bits", [9, 10, 12, 15])
@pytest.mark.parametrize("client_bits", [9, 11, 15])
async def test_each_window_size_is_negotiated_both_ways(server_bits: int, client_bits: int) -> None:
    # The server's settings decide; a client asking for less gets less.
    settings = wsstream.Deflate(
        server_max_window_bits=server_bits, client_max_window_bits=client_bits
    )
    client, server = await negotiate(wsstream.Deflate(
        server_max_window_bits=15, client_max_window_bits=15
    ), settings)
    assert params(client.deflate)[:2] == (client_bits, server_bits)
    assert params(server.deflate)[:2] == (server_bits, client_bits)
    client, server = await negotiate(settings, wsstream.Deflate(
        server_max_window_bits=15, client_max_window_bits=15
    ))
    # The client keeps to its own window without telling (no hint in its
    # offer), so a server that sets none decompresses with 15.
    assert params(client.deflate)[:2] == (client_bits, server_bits)
    assert params(server.deflate)[:2] == (server_bits, 15)


async def test_the_smaller_window_of_the_two_sides_wins() -> None:
    client, server = await negotiate(
        wsstream.Deflate(server_max_window_bits=10, client_max_window_bits=13),
        wsstream.Deflate(server_max_window_bits=12, client_max_window_bits=11),
    )
    assert params(client.deflate)[:2] == (11, 10)
    assert params(server.deflate)[:2] == (10, 11)


@pytest.mark.parametrize(
    ("client", "server", "expected"),
    [
        # (client nct, server nct) asked by the client / set by the server ->
        # what the server uses (local, remote).
        ((True, False), (False, False), (False, True)),
        ((False, True), (False, False), (True, False)),
        ((False, False), (True, False), (False, True)),
        ((False, False), (False, True), (True, False)),
        ((True, True), (True, True), (True, True)),
    ],
)
async def test_no_context_takeover_is_negotiated_each_way(
    client: tuple[bool, bool], server: tuple[bool, bool], expected: tuple[bool, bool]
) -> None:
    ours, theirs = await negotiate(
        wsstream.Deflate(client_no_context_takeover=client[0],
                         server_no_context_takeover=client[1]),
        wsstream.Deflate(client_no_context_takeover=server[0],
                         server_no_context_takeover=server[1]),
    )
    server_params, client_params = params(theirs.deflate), params(ours.deflate)
    assert server_params[2:] == (expected[0], expected[1])
    assert client_params[2:] == (expected[1], expected[0])


async def test_no_compression_on_either_side_negotiates_none() -> None:
    for client, server in ((None, DEFAULT_DEFLATE), (DEFAULT_DEFLATE, None)):
        ours, theirs = await negotiate(client, server)
        assert ours.extensions == theirs.extensions == ""
        assert ours.deflate is None and theirs.deflate is None


# -- the client's offer ----------------------------------------------------------


def test_the_client_asks_for_the_server_settings_then_falls_back() -> None:
    settings = wsstream.Deflate(server_max_window_bits=10, client_max_window_bits=11)
    offers = [factory.get_request_params() for factory in client_offers(settings)]
    assert offers == [
        [("server_max_window_bits", "10"), ("client_max_window_bits", None)],
        [("client_max_window_bits", None)],
    ]
    settings = wsstream.Deflate(server_max_window_bits=15, client_max_window_bits=15)
    offers = [factory.get_request_params() for factory in client_offers(settings)]
    assert offers == [[("client_max_window_bits", None)]]
    settings = wsstream.Deflate(
        server_max_window_bits=15, server_no_context_takeover=True,
        client_no_context_takeover=True,
    )
    offers = [factory.get_request_params() for factory in client_offers(settings)]
    assert offers[0][:2] == [("server_no_context_takeover", None),
                             ("client_no_context_takeover", None)]
    assert ("server_no_context_takeover", None) not in offers[1]
    assert ("client_no_context_takeover", None) in offers[1]


async def test_a_server_that_declines_the_window_request_still_compresses() -> None:
    offer, outcome = await client_against(
        "permessage-deflate; client_max_window_bits=10",
        wsstream.Deflate(server_max_window_bits=10, client_max_window_bits=10),
    )
    assert offer == (
        "permessage-deflate; server_max_window_bits=10; client_max_window_bits, "
        "permessage-deflate; client_max_window_bits"
    )
    assert isinstance(outcome, Handshake)
    assert params(outcome.deflate) == (10, 15, False, False)


async def test_a_client_window_answered_above_our_own_is_accepted_and_ours_kept() -> None:
    # Autobahn|Testsuite's server answers 15 to any offer: the client
    # accepts and compresses within its own 12 bits.
    _, outcome = await client_against(
        "permessage-deflate; server_max_window_bits=12; client_max_window_bits=15",
        wsstream.Deflate(server_max_window_bits=12, client_max_window_bits=12),
    )
    assert isinstance(outcome, Handshake)
    assert params(outcome.deflate) == (12, 12, False, False)


async def test_the_client_keeps_within_its_own_settings_whatever_the_answer() -> None:
    # The answer omits client_max_window_bits and client_no_context_takeover
    # that the client offered: it still uses at most what it offered.
    _, outcome = await client_against(
        "permessage-deflate",
        wsstream.Deflate(server_max_window_bits=15, client_max_window_bits=11,
                         client_no_context_takeover=True),
    )
    assert isinstance(outcome, Handshake)
    assert params(outcome.deflate) == (11, 15, True, False)


async def test_a_server_imposing_an_8_bit_client_window_fails_the_handshake() -> None:
    _, outcome = await client_against(
        "permessage-deflate; client_max_window_bits=8", DEFAULT_DEFLATE
    )
    assert isinstance(outcome, HandshakeFailure)


async def test_an_8_bit_server_window_is_read_with_9_bits() -> None:
    _, outcome = await client_against(
        "permessage-deflate; server_max_window_bits=8",
        wsstream.Deflate(server_max_window_bits=15),
    )
    assert isinstance(outcome, Handshake)
    assert outcome.extensions == "permessage-deflate; server_max_window_bits=8"
    assert params(outcome.deflate)[1] == 9


async def test_an_answer_above_the_requested_server_window_is_taken_by_the_fallback() -> None:
    # The first offer asked for 10 and 12 is over it; the fallback asked for
    # nothing, and a server may always limit its own window.
    _, outcome = await client_against(
        "permessage-deflate; server_max_window_bits=12",
        wsstream.Deflate(server_max_window_bits=10),
    )
    assert isinstance(outcome, Handshake)
    assert params(outcome.deflate)[1] == 12


# -- the server's answer ------------------------------------------------------------


@pytest.mark.parametrize(
    ("offer", "settings", "answer", "used"),
    [
        # What browsers send.
        ("permessage-deflate; client_max_window_bits",
         wsstream.Deflate(server_max_window_bits=12, client_max_window_bits=10),
         f"{PMD_CNCT}; server_max_window_bits=12; client_max_window_bits=10",
         (12, 10, False, True)),
        # The same, the client keeping its context.
        ("permessage-deflate; client_max_window_bits",
         wsstream.Deflate(server_max_window_bits=12, client_max_window_bits=10,
                          client_no_context_takeover=False),
         "permessage-deflate; server_max_window_bits=12; client_max_window_bits=10",
         (12, 10, False, False)),
        # A client that cannot be limited keeps its 15.
        ("permessage-deflate",
         wsstream.Deflate(server_max_window_bits=12, client_max_window_bits=10),
         f"{PMD_CNCT}; server_max_window_bits=12", (12, 15, False, True)),
        # A client's hint below our setting is kept; 8 is read with 9.
        ("permessage-deflate; client_max_window_bits=8",
         wsstream.Deflate(client_max_window_bits=10),
         f"{PMD_CNCT}; server_max_window_bits="
         f"{DEFAULT_DEFLATE.server_max_window_bits}; client_max_window_bits=8",
         (DEFAULT_DEFLATE.server_max_window_bits, 9, False, True)),
        # A client asking for a smaller server window gets it.
        ("permessage-deflate; server_max_window_bits=9; client_max_window_bits",
         wsstream.Deflate(server_max_window_bits=12, client_max_window_bits=12),
         f"{PMD_CNCT}; server_max_window_bits=9; client_max_window_bits=12",
         (9, 12, False, True)),
        # 15 both ways and the client's context kept: nothing to say.
        ("permessage-deflate; client_max_window_bits",
         wsstream.Deflate(server_max_window_bits=15, client_max_window_bits=15,
                          client_no_context_takeover=False),
         "permessage-deflate", (15, 15, False, False)),
        # An offer for an 8-bit server window is declined; the next is taken.
        ("permessage-deflate; server_max_window_bits=8, permessage-deflate",
         wsstream.Deflate(server_max_window_bits=12, client_max_window_bits=12),
         f"{PMD_CNCT}; server_max_window_bits=12", (12, 15, False, True)),
        # The client's no-context-takeover hint lets our decompressor go.
        ("permessage-deflate; client_no_context_takeover; server_no_context_takeover",
         wsstream.Deflate(server_max_window_bits=15, client_max_window_bits=15),
         "permessage-deflate; server_no_context_takeover; client_no_context_takeover",
         (15, 15, True, True)),
    ],
)
async def test_the_server_answers_offers_with_its_settings(
    offer: str, settings: wsstream.Deflate, answer: str, used: tuple[int, int, bool, bool]
) -> None:
    extensions, result = await answer_offer(offer, settings)
    assert extensions == answer
    assert params(result.deflate) == used


async def test_an_offer_of_only_8_bit_server_windows_gets_no_compression() -> None:
    extensions, result = await answer_offer(
        "permessage-deflate; server_max_window_bits=8", DEFAULT_DEFLATE
    )
    assert extensions == ""
    assert result.deflate is None


def test_our_compressor_is_never_given_an_8_bit_window() -> None:
    # Reading a header keeps our side's 8 (zlib cannot write it), and
    # settling refuses it: the negotiation declines such answers first.
    mine = DeflateParams.from_header("permessage-deflate; client_max_window_bits=8", client=True)
    assert mine is not None and mine.local_max_window_bits == 8
    with pytest.raises(ValueError, match="8-bit"):
        settle(mine, DEFAULT_DEFLATE, client=True)
    theirs = DeflateParams.from_header("permessage-deflate; client_max_window_bits=8",
                                       client=False)
    assert theirs is not None and theirs.remote_max_window_bits == 9


# -- the core: min_size, level, mem_level -------------------------------------------


def opened_core(**kwargs: int) -> Core:
    core = Core(client=False, max_message_size=2**20)
    core.open(DeflateParams(local_max_window_bits=12, remote_max_window_bits=12), **kwargs)
    return core


def test_messages_under_min_size_go_uncompressed() -> None:
    core = opened_core(min_size=64)
    (frame,) = read_frames(b"".join(core.send_text(b"x" * 63)))
    assert frame == (TEXT, True, False, b"x" * 63)
    assert core.allocated == 0  # no compressor for short messages
    (frame,) = read_frames(b"".join(core.send_binary(b"x" * 64)))
    opcode, _, rsv1, payload = frame
    assert (opcode, rsv1) == (BINARY, True)
    assert zlib.decompressobj(-12).decompress(payload + b"\x00\x00\xff\xff") == b"x" * 64
    # An uncompressed message between compressed ones leaves the context be.
    (frame,) = read_frames(b"".join(core.send_text(b"short")))
    assert frame == (TEXT, True, False, b"short")
    assert core.allocated == 1


@pytest.mark.parametrize(("level", "mem_level"), [(1, 1), (7, 2), (9, 9)])
def test_level_and_mem_level_reach_the_compressor(level: int, mem_level: int) -> None:
    # zlib is deterministic: the payload is what these settings produce.
    text = b"".join(b"message %d: a message that deflate would shrink; " % i for i in range(400))
    core = opened_core(level=level, mem_level=mem_level)
    (_, _, rsv1, payload), = read_frames(b"".join(core.send_binary(text)))
    reference = zlib.compressobj(level, zlib.DEFLATED, -12, mem_level)
    assert rsv1
    assert payload + b"\x00\x00\xff\xff" == (
        reference.compress(text) + reference.flush(zlib.Z_SYNC_FLUSH)
    )



def test_a_message_deflate_would_grow_goes_uncompressed_and_resets_the_context() -> None:
    core = opened_core(mem_level=2)
    peer = zlib.decompressobj(-12)  # the peer's, with context takeover
    text = b"the same words again and again, " * 8
    (_, _, rsv1, payload), = read_frames(b"".join(core.send_text(text)))
    assert rsv1 and peer.decompress(payload + b"\x00\x00\xff\xff") == text
    noise = os.urandom(4096)
    (frame,) = read_frames(b"".join(core.send_binary(noise)))
    assert frame == (BINARY, True, False, noise)  # as it is, RSV1 clear
    assert core.allocated == 0  # the context that saw the noise is gone
    # The next message refers to nothing the peer did not see.
    (_, _, rsv1, payload), = read_frames(b"".join(core.send_text(text)))
    assert rsv1 and peer.decompress(payload + b"\x00\x00\xff\xff") == text
    # An empty message leaves the context alone.
    (frame,) = read_frames(b"".join(core.send_text(b"")))
    assert frame == (TEXT, True, False, b"")
    assert core.allocated == 1


def test_a_max_sized_incompressible_message_from_a_mem_level_1_encoder_is_accepted() -> None:
    # zlib at memLevel 1 writes a stored block per 128 bytes: 3.9 % more.
    limit = 2**16
    core = Core(client=False, max_message_size=limit)
    core.open(DeflateParams())
    noise = os.urandom(limit)
    encoder = zlib.compressobj(6, zlib.DEFLATED, -15, 1)
    payload = (encoder.compress(noise) + encoder.flush(zlib.Z_SYNC_FLUSH))[:-4]
    assert len(payload) > limit * 1.03
    core.receive_data(build(BINARY, payload, rsv1=True))
    while core.parse():
        pass
    assert core.take_messages() == [noise]
