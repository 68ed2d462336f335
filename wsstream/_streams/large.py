"""Messages larger than memory: one message read or written in chunks.

:class:`MessageReader` (from :meth:`Readable.receive_stream`) and
:class:`MessageWriter` (from :meth:`Writable.send_stream`). The guide is
docs/large-messages.md; the engine's side is the inbox's streamed reads and
the writer's messages in parts.
"""

from __future__ import annotations

from types import TracebackType

import trio

from .._engine.connection import Connection

__all__ = ["MessageReader", "MessageWriter"]


class MessageReader(trio.abc.ReceiveChannel["str | bytes"]):
    """The chunks of one message, as they arrive (``async with`` it).

    ``receive()`` (or ``async for``) gives the next chunk: ``str`` for a
    text message (split on character boundaries), ``bytes`` for a binary
    one; after the last, :class:`trio.EndOfChannel` (``async for`` ends).
    :attr:`text` is known once the first chunk is in (``None`` before);
    :attr:`size` counts what was taken.

    Leaving the block before the end drops the rest of the message. A
    cancelled ``receive()`` takes no chunk. If the connection ends in the
    middle, ``receive()`` raises the connection's error, as the readable's
    ``receive()`` does.
    """

    __slots__ = ("_conn", "_done", "_entered", "_whole", "size", "text")

    def __init__(self, conn: Connection) -> None:
        self._conn = conn
        self._whole: str | bytes | None = None
        self._done = False
        self._entered = False
        self.text: bool | None = None
        self.size = 0

    async def __aenter__(self) -> MessageReader:
        if self._entered:
            raise RuntimeError("a MessageReader can be entered only once")
        self._entered = True
        await trio.lowlevel.checkpoint_if_cancelled()
        self._whole = self._conn.inbox.open_stream()
        if self._whole is not None:
            self.text = isinstance(self._whole, str)
        await trio.lowlevel.cancel_shielded_checkpoint()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._whole is None:  # a streamed read (not one already whole)
            self._conn.inbox.close_stream(self._done)
        self._done = True

    async def receive(self) -> str | bytes:
        """The next chunk; :class:`trio.EndOfChannel` after the last."""
        if not self._entered:
            raise RuntimeError("use the MessageReader in 'async with'")
        if self._done:
            await trio.lowlevel.checkpoint()
            raise trio.EndOfChannel
        whole = self._whole
        if whole is not None:
            await trio.lowlevel.checkpoint()
            self._done = True
            self.size += len(whole)
            return whole
        while True:
            chunk = await self._conn.inbox.receive_chunk()
            data = chunk.data
            if self.text is None:
                self.text = isinstance(data, str)
            self.size += len(data)
            if chunk.final:
                self._done = True
                self._conn.inbox.close_stream(True)
                self._whole = data  # nothing left to close on exit
                if not data:  # an empty last frame: the end, no chunk
                    raise trio.EndOfChannel
            if data:
                return data

    async def aclose(self) -> None:
        """Stop reading this message: the rest of it is dropped."""
        if self._entered and not self._done and self._whole is None:
            self._conn.inbox.close_stream(False)
        self._done = True
        await trio.lowlevel.checkpoint()


class MessageWriter(trio.abc.SendStream):
    """One message sent in parts (``async with`` it); see
    :meth:`Writable.send_stream`.

    ``await send(chunk)`` sends one frame (``send_all`` is the same, for
    code written for a :class:`trio.abc.SendStream`); leaving the block
    normally ends the message. Leaving it by an exception or a cancellation
    after a frame was sent fails the connection with 1011: a half-sent
    message cannot be taken back.
    """

    __slots__ = ("_conn", "_ended", "_entered", "text")

    def __init__(self, conn: Connection, text: bool) -> None:
        self._conn = conn
        self.text = text
        self._entered = False
        self._ended = False

    async def __aenter__(self) -> MessageWriter:
        if self._entered:
            raise RuntimeError("a MessageWriter can be entered only once")
        self._entered = True
        await trio.lowlevel.checkpoint_if_cancelled()
        self._conn.begin_parts()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if not self._ended:
            self._ended = True
            self._conn.end_parts(self.text, failed=exc is not None)

    async def send(self, chunk: str | bytes | bytearray | memoryview) -> None:
        """Send one frame of the message; waits while more than
        ``write_limit`` bytes wait to be written. An empty chunk sends
        nothing. A cancelled call queued nothing."""
        if not self._entered or self._ended:
            raise trio.ClosedResourceError("the message is not open")
        if self.text:
            if not isinstance(chunk, str):
                raise TypeError(f"a text message takes str chunks, not {type(chunk).__name__}")
        elif not isinstance(chunk, (bytes, bytearray, memoryview)):
            raise TypeError(f"a binary message takes bytes-like chunks, not {type(chunk).__name__}")
        if not chunk:
            await trio.lowlevel.checkpoint()
            return
        await self._conn.send_part(chunk, self.text, False)

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        """The same as :meth:`send` (a :class:`trio.abc.SendStream` method)."""
        await self.send(data)

    async def wait_send_all_might_not_block(self) -> None:
        """Wait until the outgoing buffer is at most ``write_limit``."""
        out = self._conn._out
        while out.size > self._conn.options.write_limit and self._conn._send_error is None:
            await out.wait_for_writes()
        await trio.lowlevel.checkpoint()

    async def aclose(self) -> None:
        """End the message (as leaving the block normally does)."""
        if self._entered and not self._ended:
            self._ended = True
            self._conn.end_parts(self.text, failed=False)
        await trio.lowlevel.checkpoint()
