"""The protocol core alone: frames in, messages and replies out, no trio."""

from __future__ import annotations

import os
import zlib
from collections.abc import Callable

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.core.wire import BINARY, CLOSE, CONT, PING, PONG, TEXT, Compressor, build, read_frames
from wsstream._protocol import Core, DeflateParams, Phase
from wsstream._protocol.frames import apply_mask, py_apply_mask


def server(max_message_size: int | None = 2**20, deflate: bool = False) -> Core:
    core = Core(client=False, max_message_size=max_message_size)
    core.open(DeflateParams() if deflate else None)
    return core


def client(max_message_size: int | None = 2**20) -> Core:
    core = Core(client=True, max_message_size=max_message_size)
    core.open(None)
    return core


def feed(core: Core, data: bytes, chunk: int | None = None) -> list[str | bytes]:
    step = chunk or max(len(data), 1)
    for i in range(0, len(data), step):
        core.receive_data(data[i : i + step])
        while core.parse() or core.held:
            if core.held:
                core.release(False)  # what receive() does with it
    return core.take_messages()  # type: ignore[return-value]


def sent(core: Core) -> list[tuple[int, bool, bool, bytes]]:
    return read_frames(b"".join(core.data_to_send()))


# -- masking ---------------------------------------------------------------


@given(st.binary(max_size=300), st.binary(min_size=4, max_size=4))
def test_c_and_python_masking_agree(data: bytes, key: bytes) -> None:
    assert apply_mask(data, key) == py_apply_mask(data, key)
    assert py_apply_mask(py_apply_mask(data, key), key) == data


def test_masking_takes_views_and_bytearrays() -> None:
    data = bytearray(os.urandom(1000))
    key = b"\x01\x02\x03\x04"
    assert apply_mask(memoryview(data)[3:], key) == py_apply_mask(bytes(data[3:]), key)


# -- messages --------------------------------------------------------------


def test_messages_come_whole_and_in_order() -> None:
    core = server()
    data = (
        build(TEXT, b"hello")
        + build(BINARY, b"\x00\xff")
        + build(TEXT, "h\u00e9".encode()[:2], fin=False)
        + build(PING, b"p")
        + build(CONT, "h\u00e9".encode()[2:] + b"!", fin=False)
        + build(CONT, b"", fin=True)
        + build(BINARY, b"a" * 70000, fin=False)
        + build(CONT, b"b" * 70000)
    )
    assert feed(core, data) == ["hello", b"\x00\xff", "h\u00e9!", b"a" * 70000 + b"b" * 70000]
    assert sent(core) == [(PONG, True, False, b"p")]


@given(st.integers(min_value=1, max_value=200))
def test_any_chunking_gives_the_same_messages(chunk: int) -> None:
    big = os.urandom(40000)
    data = (
        build(TEXT, "\u20ac".encode() * 50, fin=False)
        + build(CONT, "\u00e9".encode() * 3)
        + build(BINARY, big)
        + build(BINARY, b"", fin=False)
        + build(CONT, b"x")
    )
    assert feed(server(), data, chunk) == ["\u20ac" * 50 + "\u00e9" * 3, big, b"x"]


def test_one_byte_at_a_time() -> None:
    data = build(TEXT, b"abc") + build(BINARY, bytes(300)) + build(TEXT, "\u00e9t\u00e9".encode())
    assert feed(server(), data, 1) == ["abc", bytes(300), "\u00e9t\u00e9"]


def test_a_client_reads_unmasked_frames_and_masks_its_own() -> None:
    core = client()
    assert feed(core, build(TEXT, b"hi", mask=False) + build(PING, b"x", mask=False)) == ["hi"]
    raw = b"".join(core.data_to_send())
    assert raw[1] & 0x80  # masked
    assert read_frames(raw) == [(PONG, True, False, b"x")]
    chunks = core.send_binary(b"payload")
    assert read_frames(b"".join(chunks)) == [(BINARY, True, False, b"payload")]


def test_lengths_at_the_header_boundaries() -> None:
    for n in (0, 125, 126, 65535, 65536, 70000):
        payload = os.urandom(n)
        assert feed(server(), build(BINARY, payload), 4096) == [payload]
        (out,) = [b"".join(client().send_binary(payload))]
        assert read_frames(out) == [(BINARY, True, False, payload)]


def test_large_payloads_are_sent_behind_their_header_without_a_copy() -> None:
    payload = os.urandom(100_000)
    header, body = server().send_binary(payload)
    assert body is payload
    assert len(header) == 10


# -- protocol errors -------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "code"),
    [
        (build(TEXT, b"x", mask=False), 1002),  # unmasked from a client
        (build(TEXT, b"x", rsv2=True), 1002),
        (build(TEXT, b"x", rsv1=True), 1002),  # deflate not negotiated
        (build(0x3, b"x"), 1002),
        (build(0xB, b""), 1002),
        (build(PING, b"x", fin=False), 1002),
        (build(PING, b"x" * 126), 1002),
        (build(CONT, b"x"), 1002),
        (build(TEXT, b"x", fin=False) + build(BINARY, b"y"), 1002),
        (build(CLOSE, b"\x03"), 1002),
        (build(CLOSE, (1004).to_bytes(2, "big")), 1002),
        (build(CLOSE, (1005).to_bytes(2, "big")), 1002),
        (build(CLOSE, (2999).to_bytes(2, "big")), 1002),
        (build(CLOSE, (5000).to_bytes(2, "big")), 1002),
        (build(CLOSE, b"\x03\xe8\xff"), 1007),
        (build(TEXT, b"\xff"), 1007),
        (build(TEXT, b"\xce", fin=False) + build(CONT, b"a"), 1007),
        (build(BINARY, bytes(1025)), 1009),
        (build(BINARY, bytes(600), fin=False) + build(CONT, bytes(600)), 1009),
        (build(BINARY, b"", length=2**63), 1002),
    ],
)
def test_protocol_errors_fail_with_their_code(data: bytes, code: int) -> None:
    core = server(max_message_size=1024)
    feed(core, data + build(TEXT, b"after"))
    assert core.lifecycle.failure is not None
    assert core.lifecycle.failure[0] == code
    assert core.phase is Phase.CLOSED
    assert core.eof_wanted
    frames = sent(core)
    assert frames[-1][0] == CLOSE
    assert int.from_bytes(frames[-1][3][:2], "big") == code
    verdict = core.lifecycle.verdict
    assert verdict is not None and not verdict.clean and verdict.code == code


def test_invalid_utf8_fails_at_the_frame_that_holds_it() -> None:
    core = server()
    core.receive_data(build(TEXT, b"ok", fin=False) + build(CONT, b"\xed\xa0\x80", fin=False))
    core.parse()
    assert core.lifecycle.failure == (1007, "invalid UTF-8: invalid continuation byte")


def test_too_big_is_held_from_the_header_alone_then_refused_or_streamed() -> None:
    # The header says 1 GB: nothing of the payload is read before the user's
    # next call decides (receive(): 1009; receive_stream(): streamed).
    core = server(max_message_size=1000)
    header_only = build(BINARY, b"", length=10**9)
    core.receive_data(header_only)
    assert not core.parse()
    assert core.held and core.take_messages() == []
    core.release(False)
    assert core.lifecycle.failure is not None and core.lifecycle.failure[0] == 1009
    assert not core.held


# -- closing -----------------------------------------------------------------


def test_a_close_is_echoed_and_later_input_ignored() -> None:
    core = server()
    assert feed(core, build(CLOSE, b"\x0f\xa0bye") + build(TEXT, b"late")) == []
    assert sent(core) == [(CLOSE, True, False, b"\x0f\xa0bye")]
    assert core.phase is Phase.REMOTE_CLOSING
    assert core.eof_wanted  # a server ends TCP first
    core.writes_settled(True)
    assert core.lifecycle.verdict is not None and core.lifecycle.verdict.clean
    assert (core.lifecycle.verdict.code, core.lifecycle.verdict.reason) == (4000, "bye")


def test_an_empty_close_gives_1005_and_an_empty_echo() -> None:
    core = client()
    feed(core, build(CLOSE, b"", mask=False))
    assert core.lifecycle.close_received == (1005, "")
    assert sent(core) == [(CLOSE, True, False, b"")]
    assert not core.eof_wanted  # a client waits for the server to end TCP


def test_a_close_between_fragments_drops_the_message_and_closes_cleanly() -> None:
    core = server()
    feed(core, build(TEXT, b"part", fin=False) + build(CLOSE, b"\x03\xe8"))
    core.writes_settled(True)
    assert core.take_messages() == []
    assert core.lifecycle.verdict is not None and core.lifecycle.verdict.clean


def test_our_close_then_theirs_is_clean_without_asking_the_engine() -> None:
    core = client()
    chunks = core.send_close(1000, "done")
    assert read_frames(b"".join(chunks)) == [(CLOSE, True, False, b"\x03\xe8done")]
    assert core.send_close(1000, "again") == ()
    assert feed(core, build(TEXT, b"in flight", mask=False)) == ["in flight"]
    feed(core, build(CLOSE, b"\x03\xe8", mask=False))
    assert core.phase is Phase.CLOSED
    assert sent(core) == []  # no second Close
    verdict = core.lifecycle.verdict
    assert verdict is not None and verdict.clean and verdict.code == 1000
    core.receive_eof()
    core.parse()
    assert core.phase is Phase.ENDED
    assert core.lifecycle.verdict is verdict


def test_eof_without_close_is_1006() -> None:
    core = server()
    feed(core, build(TEXT, b"x", fin=False))
    core.receive_eof()
    core.parse()
    verdict = core.lifecycle.verdict
    assert core.phase is Phase.ENDED
    assert verdict is not None and (verdict.clean, verdict.code) == (False, 1006)


def test_no_pong_once_we_sent_a_close() -> None:
    core = server()
    core.send_close(1000)
    feed(core, build(PING, b"late"))
    assert core.data_to_send() == []


def test_sending_after_close_is_refused() -> None:
    core = server()
    core.send_close(None)
    with pytest.raises(RuntimeError):
        core.send_text(b"x")


# -- budgets -------------------------------------------------------------------


def test_parse_stops_every_max_frames() -> None:
    core = server()
    core.receive_data(build(TEXT, b"", fin=False) + build(CONT, b"", fin=False) * 1000)
    rounds = 0
    while core.parse(max_frames=64):
        rounds += 1
    assert rounds == 1001 // 64
    assert core.is_open


def test_parse_stops_once_decoded_messages_reach_the_budget() -> None:
    core = server()
    core.receive_data(build(BINARY, bytes(1000)) * 10)
    assert core.parse(max_decoded=2500)
    assert len(core.take_messages()) == 3
    while core.parse(max_decoded=2500):
        pass
    assert len(core.take_messages()) == 7


def test_parse_stops_after_max_bytes() -> None:
    core = server()
    core.receive_data(build(BINARY, bytes(10_000)) * 100)
    assert core.parse(max_bytes=256 * 1024)
    assert len(core.take_messages()) == 27


# -- permessage-deflate -------------------------------------------------------


def test_compressed_messages_fragmented_and_not() -> None:
    core = server(deflate=True)
    peer = Compressor()
    one = peer.compress(b"hello " * 100)
    two = peer.compress("\u00e9t\u00e9".encode() * 100)
    data = (
        build(BINARY, one, rsv1=True)
        + build(TEXT, two[:5], rsv1=True, fin=False)
        + build(PING)
        + build(CONT, two[5:])
        + build(TEXT, b"plain")
    )
    assert feed(core, data, 7) == [b"hello " * 100, "\u00e9t\u00e9" * 100, "plain"]


def test_max_message_size_counts_decoded_bytes() -> None:
    # Incompressible data deflates to slightly more than itself: a message of
    # exactly the limit must still pass (defect 3 of issue 12).
    limit = 2**20
    data = os.urandom(limit)
    wire = Compressor().compress(data)
    assert len(wire) > limit
    core = server(max_message_size=limit, deflate=True)
    assert feed(core, build(BINARY, wire, rsv1=True), 65536) == [data]


def test_a_compression_bomb_stops_at_the_limit() -> None:
    bomb = Compressor().compress(bytes(50 * 2**20))
    assert len(bomb) < 100_000
    core = server(max_message_size=2**20, deflate=True)
    feed(core, build(BINARY, bomb, rsv1=True))
    assert core.lifecycle.failure is not None and core.lifecycle.failure[0] == 1009


def test_invalid_deflate_data_fails_with_1007() -> None:
    core = server(deflate=True)
    feed(core, build(BINARY, b"\xff\xff\xff\xff", rsv1=True))
    assert core.lifecycle.failure is not None and core.lifecycle.failure[0] == 1007


def test_zlib_contexts_are_made_by_the_first_compressed_message() -> None:
    core = server(deflate=True)
    assert core.allocated == 0
    feed(core, build(TEXT, b"uncompressed"))
    assert core.allocated == 0
    text = b"hi, hi, hi, hi, hi"  # long enough to shrink under deflate
    chunks = core.send_text(text)
    assert core.allocated == 1
    (opcode, _, rsv1, payload), = read_frames(b"".join(chunks))
    assert rsv1 and zlib.decompressobj(-15).decompress(payload + b"\x00\x00\xff\xff") == text


def test_no_context_takeover_releases_the_contexts_after_each_message() -> None:
    core = Core(client=False, max_message_size=2**20)
    core.open(DeflateParams(local_no_context_takeover=True, remote_no_context_takeover=True))
    peer = zlib.compressobj(6, zlib.DEFLATED, -15)
    wire = peer.compress(b"abc") + peer.flush(zlib.Z_SYNC_FLUSH)
    assert feed(core, build(BINARY, wire[:-4], rsv1=True)) == [b"abc"]
    core.send_binary(b"abc")
    assert core.allocated == 0


def test_negotiated_parameters_are_read_from_the_response_header() -> None:
    header = "permessage-deflate; server_no_context_takeover; client_max_window_bits=10"
    mine = DeflateParams.from_header(header, client=True)
    assert mine is not None
    assert (mine.local_max_window_bits, mine.remote_max_window_bits) == (10, 15)
    assert (mine.local_no_context_takeover, mine.remote_no_context_takeover) == (False, True)
    theirs = DeflateParams.from_header(header, client=False)
    assert theirs is not None
    assert (theirs.local_max_window_bits, theirs.remote_max_window_bits) == (15, 10)
    assert DeflateParams.from_header("x-other", client=True) is None


def test_client_frames_are_masked_with_a_fresh_key_each(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Keys are cut from a pool of os.urandom bytes (one system call per
    # 1,024 frames). A counting urandom makes every byte of every pool
    # distinct, so a key used twice would show; 2,500 frames cross the
    # refill twice.
    from wsstream._protocol import frames

    calls: list[int] = []

    def urandom(n: int) -> bytes:
        calls.append(n)
        start = len(calls) * 10**6
        return b"".join((start + i).to_bytes(4, "big") for i in range(n // 4))

    monkeypatch.setattr(frames.os, "urandom", urandom)
    frames._mask_keys.clear()  # the next frame refills the pool
    try:
        sender = client()
        receiver = server()
        payloads = [i.to_bytes(4, "big") * (i % 40) for i in range(2500)]
        keys = set()
        for payload in payloads:
            (data,) = sender.send_binary(payload)
            assert data[0] == 0x82 and data[1] & 0x80
            start = 4 if data[1] & 0x7F == 126 else 2
            keys.add(data[start : start + 4])
            receiver.receive_data(data)
            receiver.parse()
        assert len(keys) == len(payloads)
        assert calls == [4096] * 3
        assert receiver.take_messages() == payloads
    finally:
        frames._mask_keys.clear()  # no counting keys for later tests


def test_a_mutable_buffer_is_copied_when_sent() -> None:
    big = bytearray(bytes(range(256)) * 256)
    header, payload = server().send_binary(big)
    big[:4] = b"XXXX"
    assert payload[:4] == bytes(range(4))


# -- input ownership and large payloads -------------------------------------


def test_input_is_borrowed_until_parsed_and_owned_on_request() -> None:
    core = server()
    source = bytearray(build(TEXT, b"hello") + build(TEXT, b"wor", fin=False))
    core.receive_data(memoryview(source))
    core.own_input()  # the caller is about to wait: the core must own it
    source[:] = bytes(len(source))  # the caller reuses its buffer
    assert feed(core, build(CONT, b"ld")) == ["hello", "world"]


def test_the_unparsed_rest_of_a_borrowed_read_is_kept() -> None:
    core = server()
    source = bytearray(build(BINARY, b"a" * 10) * 100)
    core.receive_data(memoryview(source))
    assert core.parse(max_frames=10)  # a budget stops it
    source[:] = bytes(len(source))
    while core.parse(max_frames=10):
        pass
    assert core.take_messages() == [b"a" * 10] * 100


def test_large_payload_buffers_are_reused_and_the_spares_are_bounded() -> None:
    from wsstream._protocol import buffers as core_module

    spares = core_module.spare
    spares.buffers.clear()
    spares.total = 0
    receiver = server(max_message_size=None)
    payload = os.urandom(200_000)
    frame = build(BINARY, payload)
    for _ in range(3):
        assert feed(receiver, frame, 65536) == [payload]
    assert len(spares.buffers) == 1  # one buffer, handed from frame to frame
    huge = os.urandom(core_module.SPARE_EACH + 1)
    assert feed(receiver, build(BINARY, huge), 1 << 20) == [huge]
    assert spares.total <= core_module.SPARE_TOTAL
    assert all(len(b) <= core_module.SPARE_EACH for b in spares.buffers)


@pytest.mark.parametrize("make", [server, client])
def test_the_rest_of_a_large_payload_can_be_read_straight_into_its_buffer(
    make: Callable[..., Core],
) -> None:
    core = make(max_message_size=None)
    payload = os.urandom(300_000)
    frame = build(BINARY, payload, mask=make is server)
    assert core.input_buffer(1) is None  # nothing in progress
    core.receive_data(frame[:50_000])
    core.parse()
    assert core.input_buffer(300_000) is None  # less than that is left
    rest = memoryview(frame)[50_000:]
    while rest:
        target = core.input_buffer(1)
        assert target is not None
        with target:
            n = min(len(target), 70_000)
            target[:n] = rest[:n]
        core.input_filled(n)
        rest = rest[n:]
        core.parse()
    assert core.take_messages() == [payload]
    assert core.input_buffer(1) is None


@pytest.mark.parametrize("opcode", [BINARY, TEXT])
def test_a_message_of_tiny_fragments_costs_its_bytes_not_an_object_each(opcode: int) -> None:
    # 20,000 one-byte fragments (60 KB on the wire, unmasked to a client):
    # kept as one buffer (20 KB). A list of pieces would hold 20,000
    # objects, about 1 MB.
    import tracemalloc

    core = client(max_message_size=None)
    data = bytes([opcode, 1]) + b"x" + (bytes([CONT, 1]) + b"y") * 20_000
    tracemalloc.start()
    try:
        core.receive_data(data)
        while core.parse(max_frames=100_000, max_bytes=1 << 30):
            pass
        current, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert core.is_open and core.take_messages() == []
    assert current < 300_000, current
    whole = "x" + "y" * 20_000 + "!" if opcode == TEXT else b"x" + b"y" * 20_000 + b"!"
    assert feed(core, build(CONT, b"!", mask=False)) == [whole]
