"""Transports: bytes in, bytes out, for the engine.

Two implementations of one small interface:

* :class:`SocketTransport`, the fast path for a plain TCP (or Unix) socket on
  POSIX: reads go straight into a scratch buffer shared by every connection
  of the thread (``os.readv``), writes are ``os.write``/``os.writev`` that
  never block, and the only waits are ``wait_readable``/``wait_writable``.
  trio's ``SocketStream`` adds a schedule point after every system call that
  did not wait: one more task switch on each hop of a round trip.
* :class:`StreamTransport`, for any ``trio.abc.Stream`` (TLS, memory
  streams, a proxy tunnel): ``receive_some`` and ``send_all``.

``direct`` tells whether :meth:`Transport.write_some` works: a synchronous,
non-blocking write that any task may make (no cancellation can cut it).
"""

from __future__ import annotations

import contextlib
import os
import socket
import struct
import threading
from collections.abc import Sequence

import trio
from trio.lowlevel import wait_readable, wait_writable

__all__ = [
    "SCRATCH_SIZE",
    "SocketTransport",
    "StreamTransport",
    "Transport",
    "peer_address",
    "transport_for",
]

#: The largest read on the socket path: big messages arrive in a few system
#: calls (and a few schedule passes) rather than sixteen per MiB.
SCRATCH_SIZE = 256 * 1024

Buffer = bytes | bytearray | memoryview


class _Scratch(threading.local):
    """One read buffer per thread, shared by every connection of a trio run:
    the core copies what it is given before the reader can yield, so no two
    reads ever overlap in it, and no read allocates."""

    def __init__(self) -> None:
        self.view = memoryview(bytearray(SCRATCH_SIZE))


_scratch = _Scratch()


class Transport:
    """The interface; see the module docstring."""

    __slots__ = ("stream",)

    #: Whether write_some() works (synchronous writes).
    direct = False
    @property
    def must_yield(self) -> bool:
        """Whether the reader must yield before reading again (the last read
        did not wait and the source may hold more)."""
        return False

    def __init__(self, stream: trio.abc.Stream) -> None:
        self.stream = stream

    async def receive(self, size: int) -> Buffer:
        """Up to ``size`` bytes; ``b""`` at the end (or a broken stream).
        The result may be a view valid until the next call."""
        raise NotImplementedError

    def write_some(self, chunks: Sequence[Buffer]) -> int:
        """Write what the transport takes at once; the byte count."""
        raise NotImplementedError

    async def write(self, chunks: Sequence[Buffer]) -> None:
        """Write all of ``chunks``, waiting as needed."""
        raise NotImplementedError

    async def wait_writable(self) -> None:
        raise NotImplementedError

    async def send_eof(self) -> bool:
        """End our direction if the stream can (half-close); returns
        whether it could."""
        stream = self.stream
        if isinstance(stream, trio.abc.HalfCloseableStream):
            with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError):
                await stream.send_eof()
            return True
        return False

    def stop(self) -> None:
        """No more reads or writes through this object (before closing)."""

    def reset_on_close(self) -> None:
        """Make the coming close a reset (RST), so that a peer that stopped
        reading learns at once that the connection is gone (a FIN would wait
        behind the bytes it did not read)."""
        stream = self.stream
        while not isinstance(stream, trio.SocketStream):
            inner = getattr(stream, "transport_stream", None)
            if not isinstance(inner, trio.abc.Stream):
                return
            stream = inner
        with contextlib.suppress(OSError):
            stream.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))

    async def aclose_forcefully(self) -> None:
        await trio.aclose_forcefully(self.stream)


class StreamTransport(Transport):
    __slots__ = ()

    async def receive(self, size: int) -> Buffer:
        try:
            return await self.stream.receive_some(size)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            return b""

    async def write(self, chunks: Sequence[Buffer]) -> None:
        data = chunks[0] if len(chunks) == 1 else b"".join(chunks)
        await self.stream.send_all(data)


def _readv_nowait(fd: int, buffer: memoryview) -> int:
    """Read what the socket holds into ``buffer``: the byte count, ``0`` at
    the end of the stream (or a reset), ``-1`` if nothing is there yet.

    A function of its own so that the frequent BlockingIOError never passes
    through the reader's frame: a traceback through it would give that frame
    a frame object kept as long as the connection (about 0.25 KiB).
    """
    try:
        return os.readv(fd, [buffer])
    except BlockingIOError:
        return -1
    except OSError:
        return 0


class SocketTransport(Transport):
    __slots__ = ("_drained", "fd")

    direct = True

    def __init__(self, stream: trio.SocketStream) -> None:
        super().__init__(stream)
        self.fd = stream.socket.fileno()
        self._drained = False

    @property
    def must_yield(self) -> bool:
        return not self._drained

    async def receive(self, size: int) -> Buffer:
        while True:
            if self._drained and self.fd >= 0:
                # The last read emptied the socket: wait first, rather than
                # spend a system call to learn it is still empty.
                try:
                    await wait_readable(self.fd)
                except (OSError, trio.BrokenResourceError, trio.ClosedResourceError):
                    return b""
            data = self.read_ready(size)
            if data is not None:
                return data

    def read_ready(self, size: int) -> Buffer | None:
        """Read what the socket holds now, up to ``size`` bytes, into the
        scratch buffer (a view valid until the next read); ``b""`` at the
        end, ``None`` if nothing is there.

        With trio's ``wait_readable(fd)`` first unless :attr:`must_yield`,
        it is :meth:`receive` without a coroutine: the engine's reader waits on the
        descriptor in its own frame, and an idle connection holds no frame of
        this method nor a view of the buffer while it waits (about 0.8 KiB).
        """
        fd = self.fd
        if fd < 0:
            return b""
        view = _scratch.view
        n = _readv_nowait(fd, view[:size])
        if n < 0:
            self._drained = True
            return None
        self._drained = n < size
        return view[:n] if n else b""

    async def receive_into(self, buffer: memoryview) -> int:
        """Read into ``buffer`` (as :meth:`receive`, without the scratch
        buffer): the byte count, ``0`` at the end. The reader uses it to put
        a large payload straight into the buffer that will hold it."""
        fd = self.fd
        while True:
            if fd < 0:
                return 0
            if self._drained:
                # The last read emptied the socket: wait first, rather than
                # spend a system call to learn it is still empty.
                try:
                    await wait_readable(fd)
                except (OSError, trio.BrokenResourceError, trio.ClosedResourceError):
                    return 0
            n = _readv_nowait(fd, buffer)
            if n < 0:
                self._drained = True
                continue
            self._drained = n < len(buffer)
            return n

    def write_some(self, chunks: Sequence[Buffer]) -> int:
        fd = self.fd
        if fd < 0:
            raise OSError("the transport is closed")
        try:
            if len(chunks) == 1:
                return os.write(fd, chunks[0])
            return os.writev(fd, chunks)
        except BlockingIOError:
            return 0

    async def write(self, chunks: Sequence[Buffer]) -> None:  # pragma: no cover - unused
        raise NotImplementedError("the outbox writes a direct transport with write_some")

    async def wait_writable(self) -> None:
        if self.fd < 0:
            raise trio.ClosedResourceError("the transport is closed")
        try:
            await wait_writable(self.fd)
        except OSError as exc:
            raise trio.BrokenResourceError(f"socket connection broken: {exc}") from exc

    def stop(self) -> None:
        # The descriptor may be reused once the stream is closed.
        self.fd = -1


def transport_for(stream: trio.abc.Stream) -> Transport:
    """The fast path for a plain socket on POSIX, else the generic one."""
    if type(stream) is trio.SocketStream and os.name == "posix":
        return SocketTransport(stream)
    return StreamTransport(stream)


def peer_address(stream: object) -> object:
    """The peer's address as the socket under ``stream`` reports it (through
    TLS and other wrappers); ``None`` if there is no socket."""
    while stream is not None:
        sock = getattr(stream, "socket", None)
        if sock is not None:
            try:
                return sock.getpeername()
            except OSError:
                return None
        stream = getattr(stream, "transport_stream", None)
    return None
