"""How a connection ends, as the user sees it: the lifecycle's verdict
turned into what ``closed``, ``send()`` and ``receive()`` raise.

A mixin of :class:`~wsstream._engine.connection.Connection`. The verdict is
the protocol core's (its lifecycle decides it, once); here it becomes the
user's exception in one place, :meth:`Ending._error`, so that ``closed``,
the readable and the writable raise the same object.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import trio

from .._errors import WebSocketError
from .._options import Options
from .._protocol import Core, Verdict
from .inbox import Inbox
from .outbox import Outbox

__all__ = ["Ending"]


class Ending:
    """The verdict, the errors built from it, and the ends it sets."""

    __slots__ = ("_errors", "_send_error", "_verdict_seen")

    # The Connection's, used here.
    core: Core
    inbox: Inbox
    options: Options
    _out: Outbox
    _scope: trio.CancelScope
    # What send() raises: ClosedResourceError (we closed) or a
    # WebSocketError (the peer closed, or the connection failed).
    _send_error: BaseException | None
    _verdict_seen: Verdict | None  # set by Connection.__init__
    _errors: dict[tuple[int, str], WebSocketError] | None

    if TYPE_CHECKING:
        def _arm_close_deadline(self) -> None: ...

    async def _settle_remote_close(self) -> None:
        """The peer's Close came first: were all our messages written?

        Message bytes not yet handed to the transport will never be read:
        drop the frames not started (a frame partly written is finished)
        and report an unclean close. Bytes being written: wait for that one
        write (the event the answer depends on; ``close_timeout`` bounds
        it). Nothing pending: clean.
        """
        out = self._out
        if out.data_pending:
            out.drop_unstarted_messages()
            self.core.writes_settled(False)
        elif out.data_inflight:
            await out.wait_inflight()
            self.core.writes_settled(not out.data_pending and not out.broken)
        else:
            self.core.writes_settled(True)
        self._on_lifecycle()

    def _on_lifecycle(self) -> None:
        """Act on the lifecycle: what send() and receive() now raise, and
        the close deadline."""
        life = self.core.lifecycle
        verdict = life.verdict
        if verdict is not None and verdict is not self._verdict_seen:
            self._verdict_seen = verdict
            self.inbox.stop_pausing()
            if verdict.clean:
                self.inbox.finish(trio.EndOfChannel(), replace_clean_end=False)
                if self._send_error is None:
                    self._send_error = self._peer_closed()
                self._out.wake_senders()
            else:
                error = self._error(verdict)
                self._set_ends(error, error)
        elif life.close_received is not None and self._send_error is None:
            # The peer's Close is in: no more sending (its verdict comes
            # once our writes are settled).
            self._send_error = self._peer_closed()
            self._out.wake_senders()
        if not self.core.is_open:
            self._arm_close_deadline()

    def _peer_closed(self) -> WebSocketError:
        received = self.core.lifecycle.close_received
        code, reason = received if received is not None else (1006, "")
        return self._exception("the peer closed the connection", code, reason)

    def _exception(self, message: str, code: int, reason: str) -> WebSocketError:
        # One object per (code, reason): "the peer closed" raised by send()
        # is the very object `closed` raises if that close turns out unclean.
        errors = self._errors
        if errors is None:
            errors = self._errors = {}
        error = errors.get((code, reason))
        if error is None:
            error = errors[(code, reason)] = WebSocketError._build(message, code, reason)
        return error

    def _error(self, verdict: Verdict) -> WebSocketError:
        """The exception the user sees for an unclean verdict (one object)."""
        if isinstance(verdict.error, WebSocketError):
            return verdict.error
        return self._exception(verdict.message, verdict.code, verdict.reason)

    def _fail(self, code: int, reason: str) -> None:
        core = self.core
        core.fail(code, reason)
        replies = core.data_to_send()
        if replies:
            self._out.queue_control(replies)
        self._out.wake_flusher()
        self._on_lifecycle()

    def _set_ends(self, recv_end: BaseException, send_error: BaseException) -> None:
        self.inbox.finish(recv_end)
        # A connection error replaces "this side closed" (ClosedResourceError).
        if not isinstance(self._send_error, WebSocketError):
            self._send_error = send_error
        self._out.wake_senders()

