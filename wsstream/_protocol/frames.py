"""Frames on the wire (RFC 6455 5.2): opcodes, headers, masking, Close bodies.

Incoming frames are parsed by :mod:`wsstream._protocol.core`, which reads
headers inline for speed; this module holds what both directions share and
the serialisation of outgoing frames.
"""

from __future__ import annotations

import os
import struct
import sys
import threading
from collections.abc import Callable

from .._endpoints.websockets import c_apply_mask

__all__ = [
    "BINARY",
    "CLOSE",
    "CONT",
    "PING",
    "PONG",
    "KEEP_MASKED_MAX",
    "KEEP_MASKED_MIN",
    "SPLIT_PAYLOAD",
    "TEXT",
    "apply_mask",
    "close_body",
    "frame",
    "parse_close",
    "py_apply_mask",
    "valid_close_code",
]

CONT, TEXT, BINARY, CLOSE, PING, PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA

#: Largest payload of a control frame (5.5).
MAX_CONTROL_PAYLOAD = 125

#: Frames whose payload is at least this long go out as two chunks, header
#: and payload, which the engine writes with one ``writev``: no copy of the
#: payload behind the header. Shorter ones are one chunk (one small copy,
#: fewer buffers to gather).
SPLIT_PAYLOAD = 16 * 1024

#: A masked payload between these sizes is kept (one per thread) until the
#: next one is made. Each large masked frame is a fresh allocation of its
#: size; when the engine freed two of them, glibc found more than its trim
#: threshold free at the top of the heap and gave it back to the system, and
#: the next frame's masking faulted the pages in again: about 70 page faults
#: and 150 us per MiB sent (a third of a client's CPU streaming 1 MiB
#: messages, measured; 82341ab, through websockets' serialiser, had 1-3).
#: Kept until the next one is made, the old block is freed only once the new
#: one exists, and the heap does not shrink. The cost: one masked payload of
#: at most KEEP_MASKED_MAX bytes per thread that sent one.
KEEP_MASKED_MIN = 128 * 1024
KEEP_MASKED_MAX = 4 * 1024 * 1024


def py_apply_mask(data: bytes | bytearray | memoryview, mask: bytes) -> bytes:
    """XOR ``data`` with the 4-byte ``mask`` repeated (5.3), in pure Python.

    One big-integer XOR over the whole payload: a few microseconds per KiB,
    against a byte loop's hundreds. The fallback when websockets' C routine
    is missing, and the reference it is tested against.
    """
    n = len(data)
    if not n:
        return b""
    order = sys.byteorder
    repeated = mask * (n >> 2) + mask[: n & 3]
    value = int.from_bytes(data, order) ^ int.from_bytes(repeated, order)
    return value.to_bytes(n, order)


#: ``apply_mask(data, mask) -> bytes``: websockets' C routine when present.
apply_mask: Callable[[bytes | bytearray | memoryview, bytes], bytes] = (
    c_apply_mask if c_apply_mask is not None else py_apply_mask
)


#: How many masking keys one ``os.urandom`` call makes.
MASK_KEYS_PER_CALL = 1024

#: Masking keys for client frames, cut from one ``os.urandom`` call per
#: 1,024 frames rather than one system call per frame. Every key is fresh
#: bytes from the system's strong source and none is used twice, which is
#: what 5.3 asks of them ("unpredictable", from a strong source). One list
#: for every thread: ``pop`` and ``extend`` are each one step under the GIL,
#: so no key goes to two frames, and two threads refilling at once only
#: make more keys.
_mask_keys: list[bytes] = []
_pop_key = _mask_keys.pop


def _refill_keys() -> bytes:
    """Refill the pool; returns a key."""
    pool = os.urandom(4 * MASK_KEYS_PER_CALL)
    _mask_keys.extend([pool[i : i + 4] for i in range(4, len(pool), 4)])
    return pool[:4]


_pack_short = struct.Struct("!BB").pack
_pack_medium = struct.Struct("!BBH").pack
_pack_long = struct.Struct("!BBQ").pack
_join = b"".join


class _Kept(threading.local):
    """The last large masked payload of this thread (see KEEP_MASKED_MIN)."""

    data = b""


_kept = _Kept()


def frame(
    head: int, payload: bytes | bytearray | memoryview, mask: bool
) -> tuple[bytes] | tuple[bytes, bytes]:
    """One frame as one chunk, or as header and payload when the payload is
    large (:data:`SPLIT_PAYLOAD`).

    ``head`` is the first byte (FIN, RSV1-3, opcode). A client's payload is
    masked with a fresh key (a new buffer, so the caller's is untouched); a
    server's is sent as it is when it is ``bytes`` (immutable), else copied
    once, since a caller may reuse its buffer as soon as ``send()`` returns.
    """
    length = len(payload)
    if mask:
        try:
            key = _pop_key()
        except IndexError:
            key = _refill_keys()
        if length < 126:
            # The common small frame, in one piece: header, key, payload.
            return (_join((_pack_short(head, 0x80 | length), key, apply_mask(payload, key))),)
        if length < 65536:
            header = _pack_medium(head, 0xFE, length) + key
        else:
            header = _pack_long(head, 0xFF, length) + key
        data: bytes = apply_mask(payload, key)
        if KEEP_MASKED_MIN <= length <= KEEP_MASKED_MAX:
            _kept.data = data
    else:
        if length < 126:
            header = _pack_short(head, length)
        elif length < 65536:
            header = _pack_medium(head, 126, length)
        else:
            header = _pack_long(head, 127, length)
        data = payload if type(payload) is bytes else bytes(payload)
    if length < SPLIT_PAYLOAD:
        return (header + data,)
    return (header, data)


def valid_close_code(code: int) -> bool:
    """Whether a received Close may carry ``code`` (7.4.1, 7.4.2, and the
    IANA registry's 1012-1014): 1004-1006, 1015 and 1016-2999 are not."""
    return 1000 <= code <= 1003 or 1007 <= code <= 1014 or 3000 <= code <= 4999


def close_body(code: int | None, reason: str) -> bytes:
    """The payload of a Close frame (5.5.1); ``None`` gives an empty one."""
    if code is None:
        return b""
    return code.to_bytes(2, "big") + reason.encode()


def parse_close(payload: bytes) -> tuple[int, str]:
    """(code, reason) of a received Close's payload; 1005 when it has none.

    Raises :class:`ValueError` for a one-byte payload or a code no peer may
    send (the connection then fails with 1002) and
    :class:`UnicodeDecodeError` for a reason that is not UTF-8 (1007).
    """
    if not payload:
        return 1005, ""
    if len(payload) == 1:
        raise ValueError("a Close frame's payload of one byte")
    code = int.from_bytes(payload[:2], "big")
    if not valid_close_code(code):
        raise ValueError(f"invalid close code {code}")
    return code, payload[2:].decode()
