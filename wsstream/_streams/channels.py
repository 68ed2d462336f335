"""The readable and writable halves of a WebSocketStream, as trio channels."""

from __future__ import annotations

from collections.abc import Coroutine
from typing import Any, NamedTuple

import trio

from .._engine.connection import Connection
from .._errors import RESERVED_CODES, WebSocketError
from .large import MessageReader, MessageWriter
from .messages import SendableMessage

__all__ = ["Message", "OpenInfo", "Readable", "Writable", "close_args_from_reason", "open_info"]

#: What the readable gives: ``str`` for a text message, ``bytes`` for binary.
Message = str | bytes


def close_args_from_reason(reason: object) -> tuple[int | None, str]:
    """The Close frame for ``cancel(reason)`` / ``abort(reason)``.

    A :class:`WebSocketError` gives its code and reason; anything else, or a
    reserved code (1005, 1006, 1015), gives a Close frame without a body.
    """
    if isinstance(reason, WebSocketError):
        code = reason.close_code
        if code is None or code in RESERVED_CODES:
            return None, ""
        return code, reason.reason
    return None, ""


class Readable(trio.abc.ReceiveChannel[Message]):
    """The incoming messages of a connection, one item per message.

    ``receive()`` and ``async for`` give ``str`` for text and ``bytes`` for
    binary messages. When the peer closed cleanly and every message was read,
    ``receive()`` raises :class:`trio.EndOfChannel` (``async for`` ends);
    after an abnormal end it raises the connection's :class:`WebSocketError`,
    the same object every time. After :meth:`aclose` or :meth:`cancel` it
    raises :class:`trio.ClosedResourceError`.

    Messages wait in a buffer bounded by ``read_limit``; while it is full the
    connection stops reading the socket, so a fast sender is slowed by TCP.
    """

    __slots__ = ("_conn",)

    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    async def receive(self) -> Message:
        """Wait for the next message and return it.

        Cancellation is safe: a cancelled ``receive()`` takes no message.
        Every call is a cancellation point; when a message is already waiting
        it yields to the scheduler only every few calls (at least once in 16
        ``receive()``/``send()`` calls), so a busy loop stays fair to other
        tasks without paying a task switch per message.
        """
        return await self._conn.inbox.receive()

    def receive_nowait(self) -> Message:
        """Take the next message if one is already buffered, without waiting.

        As trio's ``MemoryReceiveChannel.receive_nowait``: raises
        :class:`trio.WouldBlock` when nothing is buffered, and otherwise what
        :meth:`receive` would raise (:class:`trio.EndOfChannel` after a clean
        close, the connection's :class:`WebSocketError`,
        :class:`trio.ClosedResourceError` after :meth:`aclose`). Not a
        checkpoint: a loop of ``receive_nowait()`` never yields, so drain
        what is buffered, handle it, then ``await`` once (see the batching
        pattern in the backpressure guide).
        """
        return self._conn.inbox.receive_nowait()

    def receive_stream(self) -> MessageReader:
        """The next message in chunks, as it arrives: ``async with
        readable.receive_stream() as message: async for chunk in message``.

        For messages of any size (beyond the browser's API): chunks wait in
        the buffer bounded by ``read_limit``, so memory stays bounded; the
        limit is ``max_streamed_size`` (default ``None``: any size), not
        ``max_message_size``. A message that grew past ``max_message_size``
        before this call is held, not failed, so this call streams it (see
        the guide, docs/large-messages.md). Leaving the block early drops
        the rest of the message. While it is open, ``receive()`` raises
        :class:`trio.BusyResourceError`. Entering is a checkpoint; what it
        raises at the end of the connection is what :meth:`receive` raises.
        """
        return MessageReader(self._conn)

    def __anext__(self) -> Coroutine[Any, Any, Message]:
        # ``async for`` straight to the buffer: trio's __anext__ awaits
        # receive(), two coroutines more per message, and two frames held by
        # every connection idle in the loop.
        return self._conn.inbox.receive(iterating=True)

    async def cancel(self, reason: object = None) -> None:
        """Stop reading and start the closing handshake.

        The browser's ``reader.cancel(reason)``: if ``reason`` is a
        :class:`WebSocketError`, its ``close_code`` and ``reason`` go in the
        Close frame; anything else sends a Close frame without a body. Unread
        messages are discarded. Returns at once (it does not wait for the
        peer's answer: await ``wss.closed`` for that).
        """
        code, text = close_args_from_reason(reason)
        self._conn.stop_reading()
        self._conn.close(code, text)
        await trio.lowlevel.checkpoint()

    async def aclose(self) -> None:
        """Stop reading: same as :meth:`cancel` with no reason."""
        await self.cancel()

    def statistics(self) -> int:
        """What waits to be read, as counted against ``read_limit`` (see
        :class:`Statistics`: payload plus 64 per message)."""
        return self._conn.statistics().buffered_in


class Writable(trio.abc.SendChannel[SendableMessage]):
    """The outgoing messages of a connection.

    ``send(str)`` sends a text message, ``send(buffer)`` (``bytes``, or any
    object with the buffer protocol) a binary one.
    """

    __slots__ = ("_conn",)

    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    async def send(self, value: SendableMessage) -> None:
        """Queue one message for sending.

        A ``str`` is a text message; lone surrogates in it are sent as
        U+FFFD, as the browser's USVString conversion does. Any object with
        the buffer protocol (``bytes``, ``bytearray``, ``memoryview``,
        ``array.array``, a NumPy array...) is a binary message made of its
        bytes as ``memoryview(value).tobytes()`` gives them (C order).

        Waits while more than ``write_limit`` bytes are waiting to be written
        (so a slow peer slows the writer), then queues the whole message and
        returns; the bytes are copied, so a mutable buffer may be reused at
        once. Cancellation is safe: a cancelled ``send()`` queued nothing.
        Like :meth:`Readable.receive`, it is always a cancellation point and
        yields to the scheduler at least once in 16 calls when it need not
        wait. It never waits for the socket: the connection's own task
        gathers what was queued meanwhile into one write (on plain TCP, the
        calling task may also hand the socket what it takes at once, in one
        non-blocking system call, when it leaves more than ``write_limit``
        queued or is about to wait in ``receive()`` after sending).

        Raises :class:`TypeError` for anything else (before waiting);
        :class:`trio.ClosedResourceError` once this side closed; the
        connection's :class:`WebSocketError` once the peer closed or the
        connection failed.
        """
        await self._conn.send(value)

    def send_nowait(self, value: SendableMessage) -> None:
        """Queue one message now, or raise :class:`trio.WouldBlock`.

        As trio's ``MemorySendChannel.send_nowait``: queues the whole message
        and returns if no more than ``write_limit`` bytes are waiting to be
        written, else raises :class:`trio.WouldBlock` and queues nothing
        (wait with :meth:`send`, which then waits for room). Otherwise the
        same as :meth:`send`: the same types, the same errors. Not a
        checkpoint: it never yields, and a cancellation cannot reach it.
        """
        self._conn.send_nowait(value)

    def send_stream(self, *, text: bool = False) -> MessageWriter:
        """One message sent in parts: ``async with writable.send_stream() as
        message: await message.send(chunk)``, one frame per chunk (``str``
        chunks with ``text=True``, bytes-like otherwise).

        ``write_limit`` applies per chunk. Leaving the block ends the
        message. Leaving it by an exception or a cancellation after a chunk
        was sent fails the connection with 1011: a half-sent message cannot
        be taken back (the one exception to "a cancelled ``send()`` queued
        nothing"). Meanwhile :meth:`send` of other messages waits and
        :meth:`send_nowait` raises :class:`trio.WouldBlock`; a second
        ``send_stream()`` raises :class:`trio.BusyResourceError`.
        """
        if not isinstance(text, bool):
            raise TypeError("text must be a bool")
        return MessageWriter(self._conn, text)

    async def abort(self, reason: object = None) -> None:
        """Start the closing handshake, like :meth:`Readable.cancel`.

        The browser's ``writer.abort(reason)``: same rules for ``reason``.
        Returns at once.
        """
        code, text = close_args_from_reason(reason)
        self._conn.close(code, text)
        await trio.lowlevel.checkpoint()

    async def aclose(self) -> None:
        """Send a Close frame without a body and wait for the closing handshake.

        The browser's ``writer.close()``: returns once the connection is
        closed, cleanly or not (``close_timeout`` bounds the wait; the
        outcome is in ``wss.closed``). If cancelled, the connection is closed
        forcefully.
        """
        conn = self._conn
        conn.close(None, "")
        try:
            await conn.closed_event()
        except trio.Cancelled:
            conn.close_forcefully(1001, "")
            raise


class OpenInfo(NamedTuple):
    """What ``await wss.opened`` gives: the two halves and the negotiation.

    ``extensions`` is the negotiated ``Sec-WebSocket-Extensions`` value and
    ``protocol`` the chosen subprotocol, ``""`` when none.
    """

    readable: Readable
    writable: Writable
    extensions: str
    protocol: str


def open_info(conn: Connection) -> OpenInfo:
    """What ``opened`` gives for ``conn``, once its handshake succeeded."""
    return OpenInfo(Readable(conn), Writable(conn), conn.extensions, conn.subprotocol)
