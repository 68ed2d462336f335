"""``broadcast``: one message queued on many connections, waiting on none."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Generic, Literal, TypeVar

import attrs
import trio

from .._engine.connection import Connection
from .._errors import MAX_REASON_BYTES
from .._protocol import shared_frame
from .channels import Writable
from .messages import SendableMessage, encode_message
from .stream import WebSocketStream

__all__ = ["BroadcastResult", "broadcast"]

#: What ``broadcast`` takes (and gives back in ``slow``): a connection named
#: by its stream or by its writable.
TargetT = TypeVar("TargetT", bound="WebSocketStream | Writable")


@attrs.frozen
class BroadcastResult(Generic[TargetT]):
    """What one :func:`broadcast` call did, target by target.

    Every target is counted once: in ``sent``, in ``slow`` or in
    ``not_open``.
    """

    #: Connections the message was queued on.
    sent: int
    #: The targets that were over ``write_limit``, as given and in the
    #: order given: not sent the message, and closed if the policy was
    #: ``"close"``.
    slow: tuple[TargetT, ...]
    #: Targets skipped because their connection was not open (closing,
    #: closed, failed, or a client whose handshake is not done).
    not_open: int


def broadcast(
    targets: Iterable[TargetT],
    message: SendableMessage,
    *,
    policy: Literal["skip", "close"] = "skip",
    close_code: int = 1008,
    reason: str = "too slow",
) -> BroadcastResult[TargetT]:
    """Queue one message on many connections at once, waiting on none of them.

    ``targets`` is an iterable of :class:`WebSocketStream` and
    :class:`Writable` objects, mixed as you like: each names one connection
    (a handler holds the stream, a producer may hold only the writable), and
    the result gives back the very objects passed. A connection named twice
    is sent the message twice. ``message`` is what :meth:`Writable.send`
    takes: ``str`` for a text message, a bytes-like object for a binary one
    (copied if mutable).

    Each open connection is offered the message as
    :meth:`Writable.send_nowait` would offer it: queued whole if no more
    than ``write_limit`` bytes are waiting to be written on that connection.
    A connection over ``write_limit`` is **slow**: it is not sent the
    message, and ``policy`` says what else happens to it:

    * ``"skip"`` (the default): nothing more. It misses this message only;
      the next broadcast offers it the next one. The result lists it, so the
      caller can count what it missed and tell it.
    * ``"close"``: it is also closed with ``close_code`` and ``reason``, as
      :meth:`WebSocketStream.close` would (on either side): the Close frame
      goes out after what was already queued, and ``close_timeout`` bounds
      the wait for a peer that reads nothing. ``close_code`` is 1008
      (policy violation, the default), 1013 (try again later) or an
      application code 3000-4999; ``reason`` at most 123 UTF-8 bytes.

    So no connection ever waits for another, and what one connection holds
    stays within its ``write_limit`` plus one message, however many
    broadcasts it misses. Connections that are not open (closing, closed,
    failed, or a client whose handshake is not done) are skipped silently
    and counted.

    Encoding: every server-side connection without compression sends the
    same bytes for the same message (a server does not mask, RFC 6455 5.1),
    so the frame is built once and that one bytes object is queued on all
    of them. A client masks each frame with a fresh key (5.3), and a
    connection with permessage-deflate compresses with its own context
    (with context takeover the output depends on what that connection sent
    before, RFC 7692 7.2.1), so each of those encodes its own frame, as
    ``send_nowait`` does. A broadcast-heavy server may prefer
    ``compression=None``: see the server guide for what each costs.

    Returns a :class:`BroadcastResult`. Raises :class:`TypeError` (a target
    that is neither a :class:`WebSocketStream` nor a :class:`Writable`, a
    bare stream or string in place of an iterable, a message of another
    type, a non-int ``close_code``, a non-str ``reason``) or
    :class:`ValueError` (an unknown ``policy``, another ``close_code``, a
    ``reason`` over 123 bytes) before anything is queued.

    Not a checkpoint, like ``send_nowait``: a plain function that never
    yields, so no cancellation can reach it and the message is queued on
    every connection that took it even if the caller is cancelled right
    after. Call it from a trio task. It holds the event loop for a time
    proportional to the number of targets (a few microseconds per
    connection: ``python -m benchmarks.broadcast``); for very large
    audiences, split them and ``await trio.lowlevel.checkpoint()`` between
    the parts.
    """
    # The payload, as send_nowait encodes it (the same function): once for
    # every connection, and a bad message fails before anything is queued.
    text, data = encode_message(message)
    closing = _check_policy(policy, close_code, reason)
    if isinstance(targets, (str, bytes, bytearray, memoryview, WebSocketStream, Writable)) or (
        not isinstance(targets, Iterable)
    ):
        raise TypeError(
            "targets must be an iterable of WebSocketStream or Writable objects, "
            f"not {type(targets).__name__}"
        )
    # Every target checked before any is sent to: a bad one queues nothing.
    items = list(targets)
    conns: list[Connection] = []
    for item in items:
        if not isinstance(item, (WebSocketStream, Writable)):
            raise TypeError(
                f"a broadcast target must be a WebSocketStream or a Writable, "
                f"not {type(item).__name__}"
            )
        conns.append(item._conn)

    shared: tuple[bytes, ...] | None = None
    sent = not_open = 0
    slow: list[TargetT] = []
    for item, conn in zip(items, conns, strict=True):
        frame = None
        if conn.core.shares_frames:
            # Built by the first connection that can take it, then the same
            # bytes objects for every other one (the saving broadcast is for).
            frame = shared
            if frame is None:
                frame = shared = shared_frame(text, data)
        try:
            conn.broadcast_nowait(data, text, frame)
        except trio.WouldBlock:
            slow.append(item)
            if closing:
                conn.close(close_code, reason)
        except (trio.ClosedResourceError, trio.BrokenResourceError):
            not_open += 1
        else:
            sent += 1
    return BroadcastResult(sent, tuple(slow), not_open)


def _check_policy(policy: object, close_code: object, reason: object) -> bool:
    """Validate the slow-client policy; returns whether it closes."""
    if not isinstance(policy, str):
        raise TypeError(f"policy must be a str, not {type(policy).__name__}")
    if policy not in ("skip", "close"):
        raise ValueError(f"policy must be 'skip' or 'close', not {policy!r}")
    if not isinstance(close_code, int) or isinstance(close_code, bool):
        raise TypeError(f"close_code must be an int, not {type(close_code).__name__}")
    if not (close_code in (1008, 1013) or 3000 <= close_code <= 4999):
        raise ValueError(f"close_code must be 1008, 1013 or 3000-4999, not {close_code}")
    if not isinstance(reason, str):
        raise TypeError(f"reason must be a str, not {type(reason).__name__}")
    try:
        size = len(reason.encode())
    except UnicodeEncodeError as exc:
        raise ValueError("reason must be encodable as UTF-8") from exc
    if size > MAX_REASON_BYTES:
        raise ValueError(f"reason must be at most {MAX_REASON_BYTES} UTF-8 bytes, not {size}")
    return policy == "close"
