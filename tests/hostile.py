"""Helpers for the hostile-peer tests (fuzzing, faults, memory, load).

* :class:`TrackedStream` wraps a trio stream, records whether it was closed
  and can make it vanish (break) after a given number of bytes either way.
* :func:`count_tasks` counts the tasks alive in the current trio run, via
  the root task's nurseries, so a test can check that nothing was left behind.
* :func:`client_request` / :func:`server_response` build opening handshakes
  byte for byte; :func:`split` cuts bytes into the chunks a test feeds.
* :class:`ErrorLog` catches ERROR records of the ``wsstream`` loggers: an
  internal error of the engine is logged there, never raised.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import trio
import trio.testing

# client_request and new_key live in tests.peer (its client role uses them
# too); they are re-exported here beside server_response.
from tests.peer import accept_key
from tests.peer import client_request as client_request
from tests.peer import new_key as new_key


class TrackedStream(trio.abc.HalfCloseableStream):
    """A stream that records its closing and can break on cue.

    ``vanish_after_sent`` / ``vanish_after_received``: once that many bytes
    went through in that direction, every further call raises
    :class:`trio.BrokenResourceError` (the peer vanished: a reset socket).
    :meth:`pause_sends`: ``send_all`` waits until :meth:`resume_sends` (a
    peer that does not read), though it can be cancelled.
    """

    def __init__(
        self,
        inner: trio.abc.Stream,
        *,
        vanish_after_sent: int | None = None,
        vanish_after_received: int | None = None,
    ) -> None:
        self.inner = inner
        self.closed = False
        self.eof_sent = False
        self.sent = 0
        self.received = 0
        self.vanish_after_sent = vanish_after_sent
        self.vanish_after_received = vanish_after_received
        self.vanished = False
        self._gate: trio.Event | None = None

    def pause_sends(self) -> None:
        if self._gate is None:
            self._gate = trio.Event()

    def resume_sends(self) -> None:
        if self._gate is not None:
            self._gate.set()
            self._gate = None

    def _check(self) -> None:
        if self.closed:
            raise trio.ClosedResourceError("closed")
        if self.vanished:
            raise trio.BrokenResourceError("the peer vanished")

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        self._check()
        while self._gate is not None:
            await self._gate.wait()
            self._check()
        limit = self.vanish_after_sent
        if limit is not None and self.sent + len(data) >= limit:
            part = bytes(data[: limit - self.sent])
            if part:
                await self.inner.send_all(part)
            self.sent = limit
            self.vanished = True
            raise trio.BrokenResourceError("the peer vanished mid-write")
        await self.inner.send_all(data)
        self.sent += len(data)

    async def wait_send_all_might_not_block(self) -> None:
        self._check()
        await self.inner.wait_send_all_might_not_block()

    async def receive_some(self, max_bytes: int | None = None) -> bytes | bytearray:
        self._check()
        limit = self.vanish_after_received
        if limit is not None:
            if self.received >= limit:
                self.vanished = True
                raise trio.BrokenResourceError("the peer vanished mid-read")
            max_bytes = min(max_bytes or 65536, limit - self.received)
        data = await self.inner.receive_some(max_bytes)
        self.received += len(data)
        return data

    async def send_eof(self) -> None:
        self._check()
        self.eof_sent = True
        assert isinstance(self.inner, trio.abc.HalfCloseableStream)
        await self.inner.send_eof()

    async def aclose(self) -> None:
        self.closed = True
        await self.inner.aclose()


def count_tasks() -> int:
    """Tasks alive in this trio run (the root task's whole tree)."""

    def walk(task: trio.lowlevel.Task) -> int:
        return 1 + sum(
            walk(child) for nursery in task.child_nurseries for child in nursery.child_tasks
        )

    return walk(trio.lowlevel.current_root_task())


def server_response(key: str, extra: Sequence[str] = ()) -> bytes:
    lines = [
        "HTTP/1.1 101 Switching Protocols",
        "Upgrade: websocket",
        "Connection: Upgrade",
        f"Sec-WebSocket-Accept: {accept_key(key)}",
        *extra,
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def split(data: bytes, sizes: Sequence[int]) -> list[bytes]:
    """Cut ``data`` into chunks of the given sizes, cycled; ``[]`` means whole."""
    if not sizes:
        return [data] if data else []
    chunks = []
    i = 0
    k = 0
    while i < len(data):
        n = max(1, sizes[k % len(sizes)])
        chunks.append(data[i : i + n])
        i += n
        k += 1
    return chunks


async def feed(stream: trio.abc.SendStream, chunks: Sequence[bytes]) -> bool:
    """Send each chunk and let everyone run in between, so that each one is
    read on its own. Returns False if the other side went away first."""
    for chunk in chunks:
        try:
            await stream.send_all(chunk)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            return False
        await trio.testing.wait_all_tasks_blocked()
    return True


class ErrorLog(logging.Handler):
    """Collects ERROR (and worse) records of the ``wsstream`` loggers."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def messages(self) -> list[str]:
        return [self.format(r) for r in self.records]


@contextmanager
def error_log() -> Iterator[ErrorLog]:
    handler = ErrorLog()
    logger = logging.getLogger("wsstream")
    logger.addHandler(handler)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)
