"""The lifecycle of one connection: its phases, one transition table, and
the verdict (how the connection ended) decided in exactly one place.

The rules
---------
A connection starts ``CONNECTING`` (the opening handshake, run by the
endpoints) and ends ``ENDED`` (its transport closed). In between:

* ``OPEN``: messages flow both ways.
* ``LOCAL_CLOSING``: we sent a Close first (RFC 6455 7.1.2) and wait for the
  peer's.
* ``REMOTE_CLOSING``: the peer's Close came first; the core queued the echo
  (5.5.1). The close is clean only if every message we had sent was written
  before the peer's Close arrived, since the peer reads nothing after its
  Close (the browser's rule, WPT remote-close R5). The engine, which knows
  what its transport took, settles it: ``WRITES_CONFIRMED`` (clean) or
  ``WRITES_DROPPED`` (unclean, with the peer's code and reason).
* ``CLOSED``: the closing handshake is over, or this side failed the
  connection (7.1.7); the verdict is known, the transport is ending.

The verdict is decided by the first event that decides it, and never
changes afterwards: a clean closing handshake stays clean if the TCP close
then times out; a failure stays a failure whatever the peer answers. An
``ABORT`` (the opening handshake failed, the abort signal, ``close_timeout``,
a broken transport, an internal error) decides only if nothing did before;
it carries an opaque error object from the engine, returned as it is.

Events that a phase does not list are ignored (a second ``close()``, the
Close echo of a connection already failed): the table lists every change.
"""

from __future__ import annotations

import enum

__all__ = ["Event", "Lifecycle", "Phase", "Verdict", "TRANSITIONS"]


class Phase(enum.Enum):
    CONNECTING = "connecting"
    OPEN = "open"
    LOCAL_CLOSING = "local closing"
    REMOTE_CLOSING = "remote closing"
    CLOSED = "closed"
    ENDED = "ended"


class Event(enum.Enum):
    OPENED = "the opening handshake succeeded"
    SEND_CLOSE = "we sent a Close"
    RECV_CLOSE = "the peer's Close arrived"
    WRITES_CONFIRMED = "everything we sent was written before the peer's Close"
    WRITES_DROPPED = "messages were still unsent when the peer's Close arrived"
    FAIL = "this side failed the connection"
    TRANSPORT_ENDED = "the transport ended"
    ABORT = "the engine stopped the connection"


_P, _E = Phase, Event

#: phase -> {event: next phase}. Anything not listed leaves the phase as it is.
TRANSITIONS: dict[Phase, dict[Event, Phase]] = {
    _P.CONNECTING: {
        _E.OPENED: _P.OPEN,
        _E.TRANSPORT_ENDED: _P.ENDED,
        _E.ABORT: _P.ENDED,
    },
    _P.OPEN: {
        _E.SEND_CLOSE: _P.LOCAL_CLOSING,
        _E.RECV_CLOSE: _P.REMOTE_CLOSING,
        _E.FAIL: _P.CLOSED,
        _E.TRANSPORT_ENDED: _P.ENDED,
        _E.ABORT: _P.ENDED,
    },
    _P.LOCAL_CLOSING: {
        _E.RECV_CLOSE: _P.CLOSED,
        _E.FAIL: _P.CLOSED,
        _E.TRANSPORT_ENDED: _P.ENDED,
        _E.ABORT: _P.ENDED,
    },
    _P.REMOTE_CLOSING: {
        _E.WRITES_CONFIRMED: _P.CLOSED,
        _E.WRITES_DROPPED: _P.CLOSED,
        _E.FAIL: _P.CLOSED,
        _E.TRANSPORT_ENDED: _P.ENDED,
        _E.ABORT: _P.ENDED,
    },
    _P.CLOSED: {
        _E.TRANSPORT_ENDED: _P.ENDED,
        _E.ABORT: _P.ENDED,
    },
    _P.ENDED: {},
}


class Verdict:
    """How the connection ended: clean (``error is None`` and ``clean``) or
    not, with the close code and reason the user sees.

    ``message`` explains an unclean end; ``error`` is the engine's own
    object when an ``ABORT`` decided (a handshake error, an abort).
    One object per connection: the engine builds the user's exception from
    it once, so every call reports the same exception object.
    """

    __slots__ = ("clean", "code", "error", "message", "reason")

    def __init__(
        self, clean: bool, code: int, reason: str, message: str, error: object = None
    ) -> None:
        self.clean = clean
        self.code = code
        self.reason = reason
        self.message = message
        self.error = error

    def __repr__(self) -> str:
        kind = "clean" if self.clean else "unclean"
        return f"Verdict({kind}, {self.code}, {self.reason!r}, {self.message!r})"


class Lifecycle:
    """The phase, what each side's Close said, and the verdict."""

    __slots__ = ("close_received", "close_sent", "failure", "phase", "verdict")

    def __init__(self, phase: Phase = Phase.CONNECTING) -> None:
        self.phase = phase
        #: (code, reason) of the Close frames; 1005 and "" for one without body.
        self.close_sent: tuple[int, str] | None = None
        self.close_received: tuple[int, str] | None = None
        #: (code, reason) when this side failed the connection.
        self.failure: tuple[int, str] | None = None
        self.verdict: Verdict | None = None

    @property
    def is_open(self) -> bool:
        return self.phase is Phase.OPEN

    @property
    def ended(self) -> bool:
        return self.phase is Phase.ENDED

    def handle(
        self,
        event: Event,
        *,
        code: int = 1006,
        reason: str = "",
        error: object = None,
    ) -> Phase:
        """Apply ``event``; returns the new phase.

        ``code`` and ``reason``: the Close sent or received (``SEND_CLOSE``,
        ``RECV_CLOSE``), the code of a ``FAIL``. ``error``: the engine's
        error for an ``ABORT``.
        """
        old = self.phase
        new = TRANSITIONS[old].get(event)
        if event is Event.SEND_CLOSE and self.close_sent is None and old is not Phase.ENDED:
            self.close_sent = (code, reason)
        elif event is Event.RECV_CLOSE and self.close_received is None and new is not None:
            self.close_received = (code, reason)
        elif event is Event.FAIL and self.failure is None and new is not None:
            self.failure = (code, reason)
            if self.close_sent is None:
                self.close_sent = (code, reason)
        if new is None:
            return old
        self.phase = new
        if self.verdict is None:
            self.verdict = self._decide(old, event, code, reason, error)
        return new

    def _decide(
        self, old: Phase, event: Event, code: int, reason: str, error: object
    ) -> Verdict | None:
        # The one place where the outcome is computed.
        received = self.close_received
        if event is Event.FAIL:
            return Verdict(False, code, reason, f"the connection failed: {reason or code}")
        if event is Event.RECV_CLOSE and old is Phase.LOCAL_CLOSING:
            assert received is not None
            return Verdict(True, *received, "")
        if event is Event.WRITES_CONFIRMED:
            assert received is not None
            return Verdict(True, *received, "")
        if old is Phase.REMOTE_CLOSING and event in (
            Event.WRITES_DROPPED, Event.TRANSPORT_ENDED, Event.ABORT
        ):
            assert received is not None
            return Verdict(
                False, *received, "the peer closed the connection with messages still unsent"
            )
        if event is Event.ABORT and error is not None:
            return Verdict(False, code, reason, str(error), error)
        if event in (Event.TRANSPORT_ENDED, Event.ABORT):
            if old is Phase.CONNECTING:
                return Verdict(False, 1006, "", "the connection closed during the handshake")
            if old is Phase.LOCAL_CLOSING:
                return Verdict(False, 1006, "", "the peer did not answer our Close")
            return Verdict(False, 1006, "", "the connection closed without a closing handshake")
        return None
