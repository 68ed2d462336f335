"""Differential tests: the same bytes fed to our core and to websockets' own
``Protocol`` (the test oracle) must give the same messages, the same close
codes and the same frames sent back.

Differences, each justified by the RFCs and filtered out below:

* **A Close between the fragments of a message.** websockets fails with
  1002 ("incomplete fragmented message"); we drop the unfinished message and
  close cleanly: control frames may come between fragments (RFC 6455 5.4),
  and the Close ends the connection, so the message can never complete.
* **Invalid UTF-8 in a text message.** websockets' ``Protocol`` does not
  decode text (its I/O layers do, once the message is complete), so the
  oracle's verdict is computed here at the end of the message; we fail as
  soon as the bad frame is in (8.1, "fail fast"), so frames between that
  point and the end of the message (pings) are not compared.
* **Close reasons of failures** are free text in both: only codes compared.
* **A message over the limit** is held by our core until the user's next
  call decides (streamed or failed); here the decision is always what
  ``receive()`` makes: 1009, as websockets.
"""

from __future__ import annotations

import os
import zlib

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from websockets.client import ClientProtocol
from websockets.extensions.permessage_deflate import PerMessageDeflate
from websockets.frames import Opcode
from websockets.protocol import State
from websockets.server import ServerProtocol
from websockets.uri import parse_uri

from tests.core.wire import BINARY, CLOSE, CONT, PING, PONG, TEXT, build, read_frames
from wsstream._protocol import Core, DeflateParams

LIMIT = 4096


@st.composite
def messages(draw: st.DrawFn, compressed: bool) -> list[tuple[int, bytes, bool]]:
    """One data message as frames: [(opcode, payload, fin)], maybe with
    control frames between fragments."""
    text = draw(st.booleans())
    if text:
        body = draw(st.text(max_size=300)).encode("utf-8", "surrogatepass")
        if draw(st.integers(0, 9)) == 0:
            body = body + draw(st.sampled_from([b"\xff", b"\xc3", b"\xed\xa0\x80"]))
    else:
        body = draw(st.binary(max_size=400))
    cuts = sorted(draw(st.lists(st.integers(0, len(body)), max_size=3)))
    pieces = [body[a:b] for a, b in zip([0, *cuts], [*cuts, len(body)], strict=True)]
    frames = []
    for i, piece in enumerate(pieces):
        opcode = (TEXT if text else BINARY) if i == 0 else CONT
        frames.append((opcode, piece, i == len(pieces) - 1))
        if i < len(pieces) - 1 and draw(st.integers(0, 3)) == 0:
            frames.append((PING, draw(st.binary(max_size=20)), True))
    del compressed  # compression is applied per message by the stream builder
    return frames


@st.composite
def streams(draw: st.DrawFn) -> tuple[bool, bool, bytes, list[int]]:
    """(client side?, deflate?, the bytes, chunk sizes)."""
    client = draw(st.booleans())
    deflate = draw(st.booleans())
    mask = not client
    compressor = zlib.compressobj(6, zlib.DEFLATED, -15)
    out = b""
    for _ in range(draw(st.integers(0, 6))):
        kind = draw(st.integers(0, 9))
        if kind <= 5:
            frames = draw(messages(deflate))
            compress = deflate and draw(st.booleans())
            if compress:
                # A compressed message: the whole body deflated, then split
                # at the same points (RFC 7692 6.1: fragments of one stream).
                data_frames = [f for f in frames if f[0] in (TEXT, BINARY, CONT)]
                body = b"".join(p for _, p, _ in data_frames)
                wire = compressor.compress(body) + compressor.flush(zlib.Z_SYNC_FLUSH)
                wire = wire[:-4]
                n = len(data_frames)
                size = max(1, len(wire) // n)
                parts = [wire[i * size : (i + 1) * size] for i in range(n - 1)]
                parts.append(wire[(n - 1) * size :])
                it = iter(parts)
                frames = [
                    (op, next(it), fin) if op in (TEXT, BINARY, CONT) else (op, p, fin)
                    for op, p, fin in frames
                ]
            first = True
            for opcode, payload, fin in frames:
                rsv1 = compress and first and opcode in (TEXT, BINARY)
                if opcode in (TEXT, BINARY):
                    first = False
                out += build(opcode, payload, fin=fin, mask=mask, rsv1=rsv1)
        elif kind == 6:
            out += build(PING, draw(st.binary(max_size=125)), mask=mask)
        elif kind == 7:
            out += build(PONG, draw(st.binary(max_size=10)), mask=mask)
        elif kind == 8:
            code = draw(st.sampled_from([1000, 1001, 1003, 1004, 1011, 2999, 3000, 4999, 5000]))
            body = b"" if draw(st.booleans()) else code.to_bytes(2, "big") + b"bye"
            out += build(CLOSE, body, mask=mask)
        else:
            bad = draw(st.sampled_from([
                build(0x3, b"", mask=mask),
                build(PING, b"x", fin=False, mask=mask),
                build(CONT, b"x", mask=mask),
                build(TEXT, b"x", mask=mask, rsv2=True),
                build(TEXT, b"x", mask=not mask),
                build(BINARY, bytes(LIMIT + 1), mask=mask),
            ]))
            out += bad
    chunks = draw(st.lists(st.integers(1, 64), max_size=20))
    return client, deflate, out, chunks


def run_ours(client: bool, deflate: bool, data: bytes, chunks: list[int]) -> dict[str, object]:
    core = Core(client=client, max_message_size=LIMIT)
    core.open(DeflateParams() if deflate else None)
    pos = 0
    for size in [*chunks, len(data)]:
        core.receive_data(data[pos : pos + size])
        pos += size
        while core.parse(max_frames=3) or core.held:
            if core.held:
                core.release(False)  # what receive() does: no streaming here
    core.receive_eof()
    core.parse()
    if core.phase.name == "REMOTE_CLOSING":
        core.writes_settled(True)
    life = core.lifecycle
    return {
        "messages": core.take_messages(),
        "sent": [f for f in read_frames(b"".join(core.data_to_send()))],
        "close_received": life.close_received,
        "failure": life.failure[0] if life.failure else None,
    }


def run_oracle(client: bool, deflate: bool, data: bytes) -> dict[str, object]:
    protocol: ClientProtocol | ServerProtocol
    if client:
        protocol = ClientProtocol(parse_uri("ws://x/"), state=State.OPEN, max_size=LIMIT)
    else:
        protocol = ServerProtocol(state=State.OPEN, max_size=LIMIT)
    if deflate:
        protocol.extensions = [PerMessageDeflate(False, False, 15, 15)]
    protocol.receive_data(data)
    protocol.receive_eof()
    result: list[str | bytes] = []
    failure: int | None = None
    parts: list[bytes] = []
    opcode = None
    for event in protocol.events_received():
        frame = event
        if frame.opcode in (Opcode.TEXT, Opcode.BINARY):
            opcode, parts = frame.opcode, [frame.data]
        elif frame.opcode is Opcode.CONT:
            parts.append(frame.data)
        else:
            continue
        if frame.fin:
            body = b"".join(parts)
            if opcode is Opcode.TEXT:
                try:
                    result.append(body.decode())
                except UnicodeDecodeError:
                    failure = 1007
                    break
            else:
                result.append(body)
    if failure is None and protocol.close_sent is not None and (
        protocol.close_rcvd is None or protocol.close_sent.code != protocol.close_rcvd.code
    ):
        failure = int(protocol.close_sent.code)
    sent = read_frames(b"".join(protocol.data_to_send()))
    return {
        "messages": result,
        "sent": sent,
        "close_received": (
            None if protocol.close_rcvd is None
            else (int(protocol.close_rcvd.code), protocol.close_rcvd.reason)
        ),
        "failure": failure,
    }


def close_codes(frames: object) -> list[tuple[int, bytes]]:
    out = []
    for opcode, _, _, payload in frames:  # type: ignore[attr-defined]
        out.append((opcode, payload[:2] if opcode == CLOSE else payload))
    return out


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(streams())
def test_the_core_agrees_with_websockets(case: tuple[bool, bool, bytes, list[int]]) -> None:
    client, deflate, data, chunks = case
    ours = run_ours(client, deflate, data, chunks)
    oracle = run_oracle(client, deflate, data)
    if oracle["failure"] == 1002 and ours["failure"] is None and ours["close_received"]:
        # A Close between fragments: see the module docstring.
        assert oracle["close_received"] == ours["close_received"]
        assert ours["messages"] == oracle["messages"]
        return
    assert ours["messages"] == oracle["messages"]
    if oracle["failure"] == 1007 or ours["failure"] == 1007:
        # Fail fast on bad UTF-8: see the module docstring.
        assert ours["failure"] == oracle["failure"] == 1007
        return
    assert ours["failure"] == oracle["failure"]
    assert ours["close_received"] == oracle["close_received"]
    assert close_codes(ours["sent"]) == close_codes(oracle["sent"])


def test_the_oracle_sees_what_we_send() -> None:
    # The other direction: our frames parsed by websockets.
    for client in (False, True):
        core = Core(client=client, max_message_size=LIMIT)
        core.open(DeflateParams())
        payload = os.urandom(3000)
        data = b"".join(
            [*core.send_text("h\u00e9".encode()), *core.send_binary(payload),
             *core.send_ping(b"p"), *core.send_close(4000, "r")]
        )
        oracle: ClientProtocol | ServerProtocol
        if client:
            oracle = ServerProtocol(state=State.OPEN, max_size=LIMIT)
        else:
            oracle = ClientProtocol(parse_uri("ws://x/"), state=State.OPEN, max_size=LIMIT)
        oracle.extensions = [PerMessageDeflate(False, False, 15, 15)]
        oracle.receive_data(data)
        frames = [(f.opcode, bytes(f.data)) for f in oracle.events_received()]
        assert frames[:3] == [
            (Opcode.TEXT, "h\u00e9".encode()), (Opcode.BINARY, payload), (Opcode.PING, b"p")
        ]
        assert oracle.close_rcvd is not None
        assert (oracle.close_rcvd.code, oracle.close_rcvd.reason) == (4000, "r")
