"""Fuzzing: hostile frames and handshakes against a wsstream server and client.

Each case runs in a fresh ``trio.run`` on a MockClock that jumps whenever
every task is blocked, so ``close_timeout`` costs no real time and a hang is
caught at once by ``trio.fail_after`` (virtual seconds). Bytes are fed in
random chunkings, byte by byte included, each chunk read on its own.

Two kinds of cases:

* **modelled**: a valid prefix of messages (fragmented, with pings and pongs
  between fragments) followed either by a valid Close or by exactly one
  protocol violation, then trailing garbage. The outcome is known: every
  message of the prefix arrives, in order, then the connection closes with
  the peer's code, or fails with 1002 / 1007 / 1009 on the wire and in
  ``closed``.
* **unmodelled**: random bytes, mutated frames, mutated handshakes. Only the
  invariants are known: the run ends, no error is logged or raised, the
  stream is closed, the close code is one a WebSocket may send, a handshake
  is answered with 101, a 4xx, or nothing.

``fuzz/fuzz_wsstream.py`` runs the same cases with many more examples.
"""

from __future__ import annotations

import contextlib
import os
import struct
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import trio
import trio.testing
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import wsstream
from tests.hostile import (
    TrackedStream,
    client_request,
    error_log,
    feed,
    new_key,
    server_response,
    split,
)
from tests.peer import BINARY, CLOSE, CONT, PING, PONG, TEXT, Peer, build_frame

#: Small, so that 1009 cases are cheap; above 125 so that an over-long
#: control frame is a protocol error (1002), not a size error (1009).
MAX_MESSAGE = 200
EXAMPLES = int(os.environ.get("WSSTREAM_FUZZ_EXAMPLES", "150"))
FUZZ_SETTINGS = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

#: Codes a peer may legitimately put in a Close frame.
VALID_CLOSE_CODES = [1000, 1001, 1002, 1003, 1007, 1008, 1011, 3000, 4321, 4999]
#: Codes a WebSocket may ever send (RFC 6455 7.4, IANA registry).
SENDABLE = set(range(1000, 1004)) | set(range(1007, 1015)) | set(range(3000, 5000))
#: How wsstream may report a connection that a hostile peer ended.
FAILURE_CODES = {1002, 1006, 1007, 1008, 1009}


def run(case: Callable[[], Awaitable[None]]) -> None:
    """One case in its own trio run; virtual time jumps when all are blocked."""
    trio.run(case, clock=trio.testing.MockClock(autojump_threshold=0))


# ----------------------------------------------------------------------
# Strategies


@dataclass
class Script:
    """What a hostile peer sends after the handshake, and what must happen."""

    frames: list[bytes] = field(default_factory=list)
    messages: list[str | bytes] = field(default_factory=list)
    fault: str | None = None
    code: int | None = None  # the Close code we expect on the wire (None: empty)
    reason: str = ""


FAULTS = {
    # name: expected close code
    "reserved_opcode": 1002,
    "rsv_bit": 1002,
    "wrong_masking": 1002,
    "fragmented_control": 1002,
    "long_control": 1002,
    "orphan_continuation": 1002,
    "interrupted_message": 1002,
    "bad_utf8": 1007,
    "bad_utf8_fragmented": 1007,
    "too_big": 1009,
    "too_big_fragmented": 1009,
    "close_one_byte": 1002,
    "close_bad_code": 1002,
    "close_bad_reason": 1007,
}

BAD_UTF8 = [b"\xff", b"\xc0\xaf", b"\xed\xa0\x80", b"\xf4\x90\x80\x80", b"\xe2\x82", b"\x80"]


@st.composite
def scripts(draw: st.DrawFn, *, masked: bool) -> Script:
    """A valid prefix, then a valid Close or one violation, then garbage."""
    frame = partial(build_frame, mask=masked)
    script = Script()
    controls = st.sampled_from([PING, PONG])
    for _ in range(draw(st.integers(0, 5))):
        if draw(st.booleans()):
            text = draw(st.text(max_size=20))
            data = text.encode()
            message: str | bytes = text
            opcode = TEXT
        else:
            data = draw(st.binary(max_size=64))
            message = data
            opcode = BINARY
        if len(data) > MAX_MESSAGE:
            continue
        cuts = sorted(draw(st.lists(st.integers(0, len(data)), max_size=3)))
        pieces = [data[a:b] for a, b in zip([0, *cuts], [*cuts, len(data)], strict=True)]
        for i, piece in enumerate(pieces):
            if i and draw(st.booleans()):  # a control frame between fragments
                script.frames.append(frame(draw(controls), draw(st.binary(max_size=125))))
            script.frames.append(
                frame(opcode if i == 0 else CONT, piece, fin=i == len(pieces) - 1)
            )
        script.messages.append(message)
        if draw(st.booleans()):
            script.frames.append(frame(draw(controls), draw(st.binary(max_size=20))))
    fault = draw(st.sampled_from([None, *FAULTS]))
    script.fault = fault
    if fault is None:
        if draw(st.booleans()):
            script.code, script.reason = None, ""
            script.frames.append(frame(CLOSE, b""))
        else:
            script.code = draw(st.sampled_from(VALID_CLOSE_CODES))
            script.reason = draw(st.text(max_size=30).filter(lambda r: len(r.encode()) <= 123))
            script.frames.append(
                frame(CLOSE, struct.pack("!H", script.code) + script.reason.encode())
            )
    else:
        script.code = FAULTS[fault]
        script.frames.append(_fault_frames(draw, fault, masked))
    # Ignored after the end: the first violation decides.
    script.frames.append(draw(st.binary(max_size=20)))
    return script


def _fault_frames(draw: st.DrawFn, fault: str, masked: bool) -> bytes:
    frame = partial(build_frame, mask=masked)
    payload = draw(st.binary(max_size=10))
    if fault == "reserved_opcode":
        return frame(draw(st.sampled_from([3, 4, 5, 6, 7, 0xB, 0xC, 0xD, 0xE, 0xF])), payload)
    if fault == "rsv_bit":
        raw = bytearray(frame(draw(st.sampled_from([TEXT, BINARY, PING])), b"ok"))
        raw[0] |= draw(st.sampled_from([0x40, 0x20, 0x10]))
        return bytes(raw)
    if fault == "wrong_masking":
        return build_frame(BINARY, payload, mask=not masked)
    if fault == "fragmented_control":
        return frame(draw(st.sampled_from([PING, PONG, CLOSE])), b"", fin=False)
    if fault == "long_control":
        n = draw(st.integers(126, MAX_MESSAGE))
        return frame(draw(st.sampled_from([PING, PONG])), b"x" * n)
    if fault == "orphan_continuation":
        return frame(CONT, payload, fin=draw(st.booleans()))
    if fault == "interrupted_message":
        first = draw(st.sampled_from([TEXT, BINARY]))
        return frame(first, b"a", fin=False) + frame(draw(st.sampled_from([TEXT, BINARY])), b"b")
    if fault == "bad_utf8":
        return frame(TEXT, b"ok" + draw(st.sampled_from(BAD_UTF8)))
    if fault == "bad_utf8_fragmented":
        # The bad byte arrives in the first fragment; no continuation follows.
        return frame(TEXT, "é".encode() + draw(st.sampled_from(BAD_UTF8[:4])), fin=False)
    if fault == "too_big":
        return frame(BINARY, b"x" * draw(st.integers(MAX_MESSAGE + 1, MAX_MESSAGE * 3)))
    if fault == "too_big_fragmented":
        half = MAX_MESSAGE // 2 + 1
        return frame(TEXT, b"y" * half, fin=False) + frame(CONT, b"y" * half)
    if fault == "close_one_byte":
        return frame(CLOSE, b"\x03")
    if fault == "close_bad_code":
        code = draw(st.sampled_from([0, 999, 1004, 1005, 1006, 1015, 1016, 2999, 5000, 65535]))
        return frame(CLOSE, struct.pack("!H", code))
    assert fault == "close_bad_reason"
    return frame(CLOSE, struct.pack("!H", 1000) + draw(st.sampled_from(BAD_UTF8)))


chunkings = st.one_of(
    st.just([]),  # all at once
    st.just([1]),  # byte by byte
    st.lists(st.integers(1, 40), min_size=1, max_size=8),
)


# ----------------------------------------------------------------------
# The server, fed by a hostile client


@dataclass
class ServerRun:
    status: str | None = None  # the response's status line, None if nothing came
    close_code: int | None = None  # the server's Close on the wire
    close_sent: bool = False
    messages: list[str | bytes] = field(default_factory=list)
    closed: Any = None  # CloseInfo or the WebSocketError
    receive_error: BaseException | None = None
    handler_ran: bool = False
    stream_closed: bool = False
    errors: list[str] = field(default_factory=list)


async def _read_frames_until_close(peer: Peer, result: ServerRun) -> None:
    while True:
        try:
            opcode, payload, _ = await peer.receive_frame()
        except EOFError:
            return
        if opcode == CLOSE:
            result.close_sent = True
            result.close_code = struct.unpack("!H", payload[:2])[0] if payload else None
            return


async def serve_hostile(request: bytes, frames: bytes, sizes: list[int], *,
                        echo_close: bool = True, then_eof: bool = False,
                        **options: Any) -> ServerRun:
    """Feed ``request``, then (after a 101) ``frames`` to ``serve_stream``.

    The frames wait for the 101: frames pipelined in the same read as the
    request are covered by tests/engine/test_regressions_pipelined_request.py.
    ``then_eof``: end our side of TCP after the frames (for unmodelled
    input, which may leave the connection open and both sides waiting).
    """
    result = ServerRun()
    ours, theirs = trio.testing.memory_stream_pair()
    tracked = TrackedStream(ours)
    options = {"compression": None, "ping_interval": None, "close_timeout": 5,
               "open_timeout": 5, "max_message_size": MAX_MESSAGE, **options}

    async def handler(wss: wsstream.WebSocketStream) -> None:
        result.handler_ran = True
        readable, *_ = await wss.opened
        try:
            async for message in readable:
                result.messages.append(message)
        except wsstream.WebSocketError as exc:
            result.receive_error = exc
        try:
            result.closed = await wss.closed
        except wsstream.WebSocketError as exc:
            result.closed = exc

    with error_log() as log, trio.fail_after(120):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(partial(wsstream.serve_stream, handler, tracked, **options))
            peer = Peer(theirs, is_client=True)
            sent_all = await feed(theirs, split(request, sizes))
            try:
                status, _ = await peer.read_http()
                result.status = status
            except EOFError:
                pass
            if result.status is not None and result.status.startswith("HTTP/1.1 101"):
                sent_all = sent_all and await feed(theirs, split(frames, sizes))
                if then_eof and sent_all:
                    await theirs.send_eof()
                await _read_frames_until_close(peer, result)
                if result.close_sent and echo_close and sent_all:
                    with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError):
                        await peer.send_close(result.close_code)
            else:
                # Answered with an error (or nothing): the server must end TCP.
                pass
            await peer.expect_eof()
            await theirs.aclose()
    result.stream_closed = tracked.closed
    result.errors = log.messages()
    return result


@given(script=scripts(masked=True), sizes=chunkings)
@FUZZ_SETTINGS
def test_server_delivers_the_valid_prefix_then_closes_with_the_right_code(
    script: Script, sizes: list[int]
) -> None:
    result: ServerRun = ServerRun()

    async def case() -> None:
        nonlocal result
        result = await serve_hostile(client_request(new_key()), b"".join(script.frames), sizes)

    run(case)
    assert result.errors == []
    assert result.status is not None and result.status.startswith("HTTP/1.1 101")
    assert result.stream_closed
    assert result.messages == script.messages
    assert result.close_sent
    assert result.close_code == script.code
    if script.fault is None:
        assert result.closed == (1005 if script.code is None else script.code, script.reason)
    else:
        assert isinstance(result.closed, wsstream.WebSocketError)
        assert result.closed.close_code == script.code
        assert result.receive_error is result.closed


@given(script=scripts(masked=True), sizes=chunkings, data=st.data())
@FUZZ_SETTINGS
def test_server_survives_mutated_frames(
    script: Script, sizes: list[int], data: st.DataObject
) -> None:
    frames = bytearray(b"".join(script.frames))
    for _ in range(data.draw(st.integers(1, 4))):
        if not frames:
            break
        i = data.draw(st.integers(0, len(frames) - 1))
        action = data.draw(st.sampled_from(["flip", "set", "delete", "insert"]))
        if action == "flip":
            frames[i] ^= 1 << data.draw(st.integers(0, 7))
        elif action == "set":
            frames[i] = data.draw(st.integers(0, 255))
        elif action == "delete":
            del frames[i]
        else:
            frames[i:i] = data.draw(st.binary(min_size=1, max_size=4))
    _check_server_invariants(client_request(new_key()), bytes(frames), sizes)


@given(garbage=st.binary(max_size=300), sizes=chunkings)
@FUZZ_SETTINGS
def test_server_survives_random_bytes_after_the_handshake(
    garbage: bytes, sizes: list[int]
) -> None:
    _check_server_invariants(client_request(new_key()), garbage, sizes)


def _check_server_invariants(
    request: bytes, frames: bytes, sizes: list[int], **options: Any
) -> ServerRun:
    result: ServerRun = ServerRun()

    async def case() -> None:
        nonlocal result
        result = await serve_hostile(request, frames, sizes, then_eof=True, **options)

    run(case)
    assert result.errors == []
    assert result.stream_closed
    if result.status is None:
        assert not result.handler_ran
        return result
    code = int(result.status.split()[1])
    if code != 101:
        assert 400 <= code < 500, result.status
        assert not result.handler_ran
        return result
    assert result.handler_ran
    if result.close_code is not None:
        assert result.close_code in SENDABLE
    if isinstance(result.closed, wsstream.WebSocketError):
        assert result.closed.close_code in FAILURE_CODES
        if result.closed.close_code != 1006:
            # We failed the connection: the code went on the wire first.
            assert result.close_code == result.closed.close_code
    else:
        assert isinstance(result.closed, wsstream.CloseInfo)
    return result


@given(sizes=chunkings, data=st.data())
@FUZZ_SETTINGS
def test_server_answers_mutated_handshakes_with_101_4xx_or_nothing(
    sizes: list[int], data: st.DataObject
) -> None:
    extra = data.draw(st.lists(st.sampled_from([
        "Sec-WebSocket-Protocol: chat, , x",
        "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits=99",
        "Sec-WebSocket-Extensions: x-unknown",
        "Origin: http://evil",
        "Sec-WebSocket-Version: 8",
        "X-Long: " + "a" * 9000,
    ]), max_size=2))
    request = bytearray(client_request(new_key(), extra=extra))
    mode = data.draw(st.sampled_from(["flip", "truncate", "drop_line", "garbage", "none"]))
    if mode == "flip":
        for _ in range(data.draw(st.integers(1, 3))):
            i = data.draw(st.integers(0, len(request) - 1))
            request[i] = data.draw(st.integers(0, 255))
    elif mode == "truncate":
        del request[data.draw(st.integers(0, len(request) - 1)):]
    elif mode == "drop_line":
        lines = bytes(request).split(b"\r\n")
        del lines[data.draw(st.integers(0, 5))]
        request = bytearray(b"\r\n".join(lines))
    elif mode == "garbage":
        request = bytearray(data.draw(st.binary(max_size=200)))
    trailer = data.draw(st.sampled_from([b"", build_frame(TEXT, b"hi", mask=True)]))
    _check_server_invariants(bytes(request) + trailer, b"", sizes, origins=None)


# ----------------------------------------------------------------------
# The client, facing a hostile server


@dataclass
class ClientRun:
    opened: Any = None  # OpenInfo or the error
    close_code: int | None = None  # the client's Close on the wire
    close_sent: bool = False
    messages: list[str | bytes] = field(default_factory=list)
    closed: Any = None
    receive_error: BaseException | None = None
    stream_closed: bool = False
    errors: list[str] = field(default_factory=list)


async def connect_hostile(make_response: Callable[[str], bytes], sizes: list[int], *,
                          then_eof: bool = False, **options: Any) -> ClientRun:
    """A client over a memory stream; the peer answers with ``make_response(key)``
    (``then_eof``: and ends its side of TCP, as in :func:`serve_hostile`)."""
    result = ClientRun()
    ours, theirs = trio.testing.memory_stream_pair()
    tracked = TrackedStream(ours)
    options = {"compression": None, "ping_interval": None, "close_timeout": 5,
               "open_timeout": 5, "max_message_size": MAX_MESSAGE, **options}
    peer = Peer(theirs, is_client=False)
    scratch = ServerRun()

    async def hostile_server() -> None:
        _, headers = await peer.read_http()
        sent_all = await feed(theirs, split(make_response(headers["sec-websocket-key"]), sizes))
        if then_eof and sent_all:
            await theirs.send_eof()
        await _read_frames_until_close(peer, scratch)
        # A server ends TCP once it saw the client's Close (or gave up).
        await theirs.aclose()

    with error_log() as log, trio.fail_after(120):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(hostile_server)
            async with wsstream.WebSocketStream(
                "ws://test/", stream=tracked, **options
            ) as wss:
                try:
                    result.opened = await wss.opened
                except wsstream.WebSocketError as exc:
                    result.opened = exc
                else:
                    try:
                        async for message in result.opened.readable:
                            result.messages.append(message)
                    except wsstream.WebSocketError as exc:
                        result.receive_error = exc
                try:
                    result.closed = await wss.closed
                except wsstream.WebSocketError as exc:
                    result.closed = exc
    result.close_sent, result.close_code = scratch.close_sent, scratch.close_code
    result.stream_closed = tracked.closed
    result.errors = log.messages()
    return result


@given(script=scripts(masked=False), sizes=chunkings)
@FUZZ_SETTINGS
def test_client_delivers_the_valid_prefix_then_closes_with_the_right_code(
    script: Script, sizes: list[int]
) -> None:
    result: ClientRun = ClientRun()

    async def case() -> None:
        nonlocal result
        result = await connect_hostile(
            lambda key: server_response(key) + b"".join(script.frames), sizes
        )

    run(case)
    assert result.errors == []
    assert isinstance(result.opened, wsstream.OpenInfo)
    assert result.stream_closed
    assert result.messages == script.messages
    assert result.close_sent
    assert result.close_code == script.code
    if script.fault is None:
        assert result.closed == (1005 if script.code is None else script.code, script.reason)
    else:
        assert isinstance(result.closed, wsstream.WebSocketError)
        assert result.closed.close_code == script.code
        assert result.receive_error is result.closed


@given(garbage=st.binary(max_size=300), sizes=chunkings)
@FUZZ_SETTINGS
def test_client_survives_random_bytes_after_the_handshake(
    garbage: bytes, sizes: list[int]
) -> None:
    result: ClientRun = ClientRun()

    async def case() -> None:
        nonlocal result
        result = await connect_hostile(
            lambda key: server_response(key) + garbage, sizes, then_eof=True
        )

    run(case)
    assert result.errors == []
    assert result.stream_closed
    assert isinstance(result.opened, wsstream.OpenInfo)
    if result.close_code is not None:
        assert result.close_code in SENDABLE
    if isinstance(result.closed, wsstream.WebSocketError):
        assert result.closed.close_code in FAILURE_CODES
        if result.closed.close_code != 1006:
            assert result.close_code == result.closed.close_code
    else:
        assert isinstance(result.closed, wsstream.CloseInfo)


@given(sizes=chunkings, data=st.data())
@FUZZ_SETTINGS
def test_client_fails_mutated_handshake_responses_with_handshake_error(
    sizes: list[int], data: st.DataObject
) -> None:
    mode = data.draw(st.sampled_from(["flip", "truncate", "drop_line", "garbage", "status"]))
    status = data.draw(st.sampled_from([b"200 OK", b"400 Bad Request", b"302 Found", b"999 X"]))

    def make(key: str) -> bytes:
        response = bytearray(server_response(key))
        if mode == "flip":
            for _ in range(data.draw(st.integers(1, 3))):
                i = data.draw(st.integers(0, len(response) - 1))
                response[i] = data.draw(st.integers(0, 255))
        elif mode == "truncate":
            del response[data.draw(st.integers(0, len(response) - 1)):]
        elif mode == "drop_line":
            lines = bytes(response).split(b"\r\n")
            del lines[data.draw(st.integers(0, 3))]
            response = bytearray(b"\r\n".join(lines))
        elif mode == "garbage":
            response = bytearray(data.draw(st.binary(max_size=200)))
        else:
            response = bytearray(b"HTTP/1.1 " + status + b"\r\nContent-Length: 0\r\n\r\n")
        return bytes(response)

    result: ClientRun = ClientRun()

    async def case() -> None:
        nonlocal result
        result = await connect_hostile(make, sizes, then_eof=True)

    run(case)
    assert result.errors == []
    assert result.stream_closed
    if isinstance(result.opened, wsstream.OpenInfo):
        # A mutation that left the response valid (e.g. in the reason phrase).
        assert mode in ("flip", "drop_line")
        return
    assert isinstance(result.opened, wsstream.HandshakeError), repr(result.opened)
    assert result.closed is result.opened
    assert result.close_code is None and not result.close_sent
