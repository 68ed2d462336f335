"""Streamed and held messages in the protocol core (issue 16): chunks as
the frames arrive, pieces of frames not all there, decompression in steps,
and messages over max_message_size held for the user's decision."""

from __future__ import annotations

import os
import zlib

import pytest

from tests.core.wire import BINARY, CONT, PING, TEXT, Compressor, build
from wsstream._protocol import Core, DeflateParams
from wsstream._protocol.assembly import Chunk


def server(limit: int | None = 1000, streamed: int | None = None, deflate: bool = False) -> Core:
    core = Core(client=False, max_message_size=limit, max_streamed_size=streamed)
    core.open(DeflateParams() if deflate else None)
    return core


def pump(core: Core, data: bytes, step: int, budget: int | None = None) -> list[object]:
    """Feed ``data`` ``step`` bytes at a time, parsing after each; returns
    what came out, in order."""
    out: list[object] = []
    for i in range(0, len(data), step):
        core.receive_data(data[i : i + step])
        while core.parse(max_decoded=budget):
            out += core.take_messages()
        out += core.take_messages()
    return out


def joined(items: list[object]) -> bytes | str:
    chunks = [item for item in items if isinstance(item, Chunk)]
    assert chunks and chunks[-1].final and not any(c.final for c in chunks[:-1])
    first = chunks[0].data
    return ("" if isinstance(first, str) else b"").join(c.data for c in chunks)  # type: ignore[attr-defined]


def test_a_streamed_message_comes_as_one_chunk_per_frame() -> None:
    core = server()
    core.stream_message()
    data = build(BINARY, b"a" * 600, fin=False) + build(CONT, b"b" * 600) + build(TEXT, b"next")
    out = pump(core, data, len(data))
    assert [(c.data, c.final) for c in out[:2]] == [(b"a" * 600, False), (b"b" * 600, True)]  # type: ignore[attr-defined]
    assert out[2] == "next"  # the one after is whole again


def test_a_frame_not_all_there_comes_in_pieces() -> None:
    core = server(limit=None)
    core.stream_message()
    payload = os.urandom(1_000_000)
    frame = build(BINARY, payload)
    core.receive_data(frame[:70_000])
    core.parse()
    first = core.take_messages()
    assert first and isinstance(first[0], Chunk) and not first[0].final
    assert payload.startswith(first[0].data)  # type: ignore[arg-type]
    rest = pump(core, frame[70_000:], 65_536)
    assert joined(first + rest) == payload


@pytest.mark.parametrize("step", [1, 3, 5, 7, 4096])
def test_masks_of_pieces_at_any_offset(step: int) -> None:
    core = server(limit=None)
    core.stream_message()
    payload = os.urandom(20_000)
    assert joined(pump(core, build(BINARY, payload), step)) == payload


def test_text_pieces_split_on_character_boundaries() -> None:
    core = server(limit=None)
    core.stream_message()
    text = "\u00e9\u20ac\U0001f600" * 3000
    out = pump(core, build(TEXT, text.encode()), 1001)
    assert all(isinstance(c.data, str) for c in out)  # type: ignore[attr-defined]
    assert joined(out) == text


def test_invalid_utf8_in_a_streamed_message_fails_at_once() -> None:
    core = server(limit=None)
    core.stream_message()
    frame = build(TEXT, b"ok" * 10_000 + b"\xff" + b"x" * 100_000)
    core.receive_data(frame[:30_000])
    core.parse()
    assert core.lifecycle.failure is not None and core.lifecycle.failure[0] == 1007


def test_a_message_over_the_limit_is_held_and_can_be_streamed() -> None:
    core = server(limit=1000)
    data = build(BINARY, os.urandom(3000))
    core.receive_data(data)
    assert not core.parse()
    assert core.held
    core.release(True)
    while core.parse():
        pass
    out = core.take_messages()
    assert len(joined(out)) == 3000


def test_a_fragmented_message_held_midway_streams_what_it_had_first() -> None:
    core = server(limit=1000)
    data = build(BINARY, b"a" * 600, fin=False) + build(PING, b"p") + build(CONT, b"b" * 600)
    core.receive_data(data)
    core.parse()
    assert core.held
    core.stream_message()  # as receive_stream() does
    while core.parse():
        pass
    out = core.take_messages()
    assert [(c.data, c.final) for c in out] == [(b"a" * 600, False), (b"b" * 600, True)]  # type: ignore[attr-defined]


def test_a_held_message_dropped_lets_the_next_one_through() -> None:
    core = server(limit=1000)
    core.receive_data(build(BINARY, b"x" * 3000) + build(TEXT, b"after"))
    core.parse()
    core.release(None)
    while core.parse():
        pass
    assert core.take_messages() == ["after"]
    assert core.is_open


def test_the_streamed_limit_fails_with_1009() -> None:
    core = server(limit=None, streamed=5000)
    core.stream_message()
    pump(core, build(BINARY, b"a" * 3000, fin=False) + build(CONT, b"b" * 3000), 100_000)
    assert core.lifecycle.failure is not None and core.lifecycle.failure[0] == 1009


def test_a_compressed_stream_decompresses_in_steps_of_the_budget() -> None:
    core = server(limit=None, deflate=True)
    core.stream_message()
    payload = bytes(10_000_000)
    wire = Compressor().compress(payload)
    assert len(wire) < 20_000  # a "bomb": the budget, not the input, bounds each step
    core.receive_data(build(BINARY, wire, rsv1=True))
    sizes = []
    while True:
        more = core.parse(max_decoded=65_536)
        chunks = core.take_messages()
        sizes += [len(c) for c in chunks]  # type: ignore[arg-type]
        if not more:
            break
    assert sum(sizes) == len(payload)
    assert max(sizes) <= 65_536
    assert len(sizes) >= len(payload) // 65_536


def test_a_compressed_message_over_the_limit_is_held_then_streamed_whole() -> None:
    core = server(limit=100_000, deflate=True)
    payload = os.urandom(50_000) * 5  # compressible, 250 KB
    wire = Compressor().compress(payload)
    core.receive_data(build(BINARY, wire, rsv1=True) + build(TEXT, b"next"))
    core.parse()
    assert core.held
    core.release(True)
    out: list[object] = []
    while core.parse():
        out += core.take_messages()
    out += core.take_messages()
    assert joined(out[:-1]) == payload
    assert out[-1] == "next"


def test_a_compressed_message_over_the_limit_fails_when_refused() -> None:
    core = server(limit=1000, deflate=True)
    core.receive_data(build(BINARY, Compressor().compress(bytes(50_000)), rsv1=True))
    core.parse()
    assert core.held
    core.release(False)
    assert core.lifecycle.failure is not None and core.lifecycle.failure[0] == 1009


def test_streaming_asked_midway_flushes_what_was_assembled() -> None:
    core = server(limit=10_000)
    core.receive_data(build(TEXT, "\u00e9".encode() * 100, fin=False))
    core.parse()
    assert core.take_messages() == []
    core.stream_message()
    first = core.take_messages()
    assert [(c.data, c.final) for c in first] == [("\u00e9" * 100, False)]  # type: ignore[attr-defined]
    out = pump(core, build(CONT, b"!"), 10)
    assert [(c.data, c.final) for c in out] == [("!", True)]  # type: ignore[attr-defined]


def test_inflate_steps_never_exceed_what_is_asked() -> None:
    from wsstream._protocol.deflate import Inflater

    sender = zlib.compressobj(6, zlib.DEFLATED, -15)
    data = sender.compress(bytes(1_000_000)) + sender.flush(zlib.Z_SYNC_FLUSH)
    inflater = Inflater(15, False)
    inflater.feed(data[:-4], True)
    got = 0
    steps = 0
    while inflater.pending:
        piece = inflater.take(10_000)
        assert len(piece) <= 10_000
        got += len(piece)
        steps += 1
    assert got == 1_000_000 and inflater.ended and steps >= 100
