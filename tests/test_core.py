"""The framing-core adapter alone: no trio, no sockets, bytes in and out."""

from __future__ import annotations

from collections.abc import Sequence

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.peer import BINARY, CONT, TEXT, build_frame
from wsstream import _core
from wsstream._core import Core, HandshakeFailure
from wsstream._http import Headers
from wsstream._url import parse_url


def make_pair(compression: str | None = None) -> tuple[Core, Core]:
    """A client core and a server core, handshake done, bytes moved by hand."""
    client = Core.client(
        parse_url("ws://example.com/path?q=1"), subprotocols=["b", "a"], compression=compression,
        max_message_size=2**20, origin=None, headers=Headers({"X-Test": "1"}), user_agent="t",
    )
    server = Core.server(compression=compression, max_message_size=2**20, origins=None)
    for chunk in client.data_to_send():
        server.protocol.receive_data(chunk)
    assert server.handshake_event()
    assert server.request is not None
    assert server.request.path == "/path?q=1"
    assert server.request.headers["x-test"] == "1"

    def select(offered: Sequence[str]) -> str | None:
        return "a" if "a" in offered else None

    assert server.accept(select, Headers({"Server": "unit"}))
    for chunk in server.data_to_send():
        client.protocol.receive_data(chunk)
    assert client.handshake_event()
    assert client.subprotocol == server.subprotocol == "a"
    return client, server


def feed(core: Core, data: bytes, sizes: Sequence[int]) -> None:
    pos = 0
    for size in sizes:
        if pos >= len(data):
            break
        core.receive_data(data[pos : pos + size])
        pos += size
    if pos < len(data):
        core.receive_data(data[pos:])


def test_handshake_negotiates_subprotocol_and_compression() -> None:
    client, server = make_pair("deflate")
    assert client.extensions.startswith("permessage-deflate")
    assert server.extensions == client.extensions


messages = st.lists(st.one_of(st.text(max_size=300), st.binary(max_size=300)), max_size=8)


@settings(max_examples=150, deadline=None)
@given(messages, st.lists(st.integers(1, 40), max_size=60), st.sampled_from([None, "deflate"]))
def test_messages_survive_any_chunking(
    msgs: list[str | bytes], sizes: list[int], compression: str | None
) -> None:
    client, server = make_pair(compression)
    for message in msgs:
        if isinstance(message, str):
            client.send_text(message)
        else:
            client.send_binary(message)
    wire = b"".join(client.data_to_send())
    feed(server, wire, sizes)
    assert server.take_messages() == msgs


@settings(max_examples=150, deadline=None)
@given(st.text(min_size=1, max_size=200), st.lists(st.integers(1, 7), min_size=1, max_size=50))
def test_text_fragmented_anywhere_decodes_incrementally(text: str, cuts: list[int]) -> None:
    client, server = make_pair()
    data = text.encode()
    frames = []
    pieces = []
    pos = 0
    for cut in cuts:
        if pos >= len(data):
            break
        pieces.append(data[pos : pos + cut])
        pos += cut
    if pos < len(data):
        pieces.append(data[pos:])
    for i, piece in enumerate(pieces):
        frames.append(
            build_frame(TEXT if i == 0 else CONT, piece, fin=i == len(pieces) - 1, mask=True)
        )
    wire = b"".join(frames)
    for i in range(len(wire)):  # one byte at a time
        server.receive_data(wire[i : i + 1])
    assert server.take_messages() == [text]


def test_invalid_utf8_fails_with_1007_even_mid_message() -> None:
    _, server = make_pair()
    server.receive_data(build_frame(TEXT, b"ok\xc3", fin=False, mask=True))
    assert server.protocol_failure is None  # a truncated sequence may continue
    # The bad byte, then frames the core must no longer act on.
    server.receive_data(
        build_frame(CONT, b"\x28", fin=False, mask=True)
        + build_frame(0x9, b"ping", mask=True)
        + build_frame(0x8, b"\x03\xe8", mask=True)
    )
    failure = server.protocol_failure
    assert failure is not None and failure[0] == 1007
    assert server.take_messages() == []
    wire = b"".join(server.data_to_send())
    assert wire.startswith(b"\x88") and wire[2:4] == b"\x03\xef"  # Close 1007, no pong


def test_binary_fragments_are_joined_and_control_frames_interleave() -> None:
    _, server = make_pair()
    server.receive_data(build_frame(BINARY, b"ab", fin=False, mask=True))
    server.receive_data(build_frame(0x9, b"ping", mask=True))
    server.receive_data(build_frame(CONT, b"cd", fin=True, mask=True))
    assert server.take_messages() == [b"abcd"]
    assert server.pings_received == 1
    pong = b"".join(server.data_to_send())
    assert pong == b"\x8a\x04ping"


def test_server_rejects_a_request_without_upgrade_with_http_error() -> None:
    server = Core.server(compression=None, max_message_size=None, origins=None)
    server.protocol.receive_data(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    assert server.handshake_event()
    assert not server.accept(lambda offered: None, Headers())
    response = b"".join(server.data_to_send())
    assert response.startswith(b"HTTP/1.1 426")


def test_client_rejects_a_bad_accept_key() -> None:
    client = Core.client(
        parse_url("ws://h/"), subprotocols=[], compression=None, max_message_size=None,
        origin=None, headers=Headers(), user_agent=None,
    )
    client.protocol.receive_data(
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
        b"Connection: Upgrade\r\nSec-WebSocket-Accept: wrong\r\n\r\n"
    )
    try:
        client.handshake_event()
    except HandshakeFailure as exc:
        assert exc.status == 101
        assert "Sec-WebSocket-Accept" in str(exc)
    else:
        raise AssertionError("a wrong accept key must fail the handshake")


def test_client_reports_the_status_and_body_of_a_rejection() -> None:
    client = Core.client(
        parse_url("ws://h/"), subprotocols=[], compression=None, max_message_size=None,
        origin=None, headers=Headers(), user_agent=None,
    )
    client.protocol.receive_data(
        b"HTTP/1.1 404 Not Found\r\nContent-Length: 4\r\n\r\nnope"
    )
    try:
        client.handshake_event()
    except HandshakeFailure as exc:
        assert (exc.status, exc.body) == (404, b"nope")
    else:
        raise AssertionError("a 404 must fail the handshake")


def test_client_frames_are_masked_with_a_fresh_key_each(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The client serialises its frames itself, with keys cut from a pool of
    # os.urandom bytes (one system call per 1,024 frames). A counting
    # urandom makes every byte of every pool distinct, so a key used twice
    # would show; 2,500 frames cross the refill twice.
    calls: list[int] = []

    def urandom(n: int) -> bytes:
        calls.append(n)
        start = len(calls) * 10**6
        return b"".join((start + i).to_bytes(4, "big") for i in range(n // 4))

    monkeypatch.setattr(_core.os, "urandom", urandom)
    monkeypatch.setattr(_core._mask_keys, "offset", _core._MaskKeys.SIZE)
    client, server = make_pair()
    payloads = [i.to_bytes(4, "big") * (i % 40) for i in range(2500)]
    keys = set()
    for payload in payloads:
        client.send_binary(payload)
        (frame,) = client.data_to_send()
        assert frame[0] == 0x82 and frame[1] & 0x80
        start = 4 if frame[1] & 0x7F == 126 else 2  # payloads of 126 B and more
        keys.add(frame[start : start + 4])
        server.receive_data(frame)
    assert len(keys) == len(payloads)
    assert [n for n in calls if n != 16] == [4096] * 3  # 16: the handshake key
    assert server.take_messages() == payloads
    # The three length encodings (RFC 6455 5.2) and a masked control frame.
    for size in (125, 126, 65535, 65536):
        client.send_binary(b"x" * size)
    client.send_ping(b"p")
    server.receive_data(b"".join(client.data_to_send()))
    assert server.take_messages() == [b"x" * size for size in (125, 126, 65535, 65536)]


def test_large_server_frames_go_out_as_header_and_payload_uncopied() -> None:
    client, server = make_pair()
    big = bytes(range(256)) * 256  # 64 KiB
    server.send_binary(big)
    header, payload = server.data_to_send()
    assert header == bytes([0x82, 127]) + len(big).to_bytes(8, "big")
    assert payload is big  # bytes are immutable: sent as they are
    # A mutable buffer is copied: the caller may reuse it once send() returns.
    buffer = bytearray(big)
    server.send_binary(buffer)
    _, payload = server.data_to_send()
    buffer[:4] = b"XXXX"
    assert payload == big
    small = b"s" * 100
    server.send_binary(small)
    assert server.data_to_send() == [bytes([0x82, 100]) + small]
    client.receive_data(header + big + header + payload + bytes([0x82, 100]) + small)
    assert client.take_messages() == [big, big, small]
