"""The lifecycle table: every listed transition, the ignored events, and the
verdict each path decides (computed in one place, never changed after)."""

from __future__ import annotations

import pytest

from wsstream._protocol import Event, Lifecycle, Phase
from wsstream._protocol.lifecycle import TRANSITIONS

P, E = Phase, Event


def walk(*events: Event | tuple[Event, int, str]) -> Lifecycle:
    life = Lifecycle()
    for item in events:
        if isinstance(item, tuple):
            event, code, reason = item
            life.handle(event, code=code, reason=reason)
        else:
            life.handle(item)
    return life


@pytest.mark.parametrize(
    ("phase", "event"), [(p, e) for p in Phase for e in Event]
)
def test_every_pair_follows_the_table(phase: Phase, event: Event) -> None:
    life = Lifecycle(phase)
    if phase in (P.REMOTE_CLOSING, P.CLOSED, P.LOCAL_CLOSING):
        life.close_received = (1000, "")
        life.close_sent = (1000, "")
    new = life.handle(event, code=1000)
    assert new is TRANSITIONS[phase].get(event, phase)


def test_ended_is_terminal() -> None:
    assert TRANSITIONS[P.ENDED] == {}


@pytest.mark.parametrize(
    ("events", "clean", "code", "reason"),
    [
        # Our Close first, the peer's answer: clean, with the peer's code.
        ([E.OPENED, (E.SEND_CLOSE, 1000, "a"), (E.RECV_CLOSE, 4000, "b")], True, 4000, "b"),
        # The peer's Close first, everything written: clean.
        ([E.OPENED, (E.RECV_CLOSE, 1001, "bye"), E.WRITES_CONFIRMED], True, 1001, "bye"),
        # ... messages still unsent: unclean, with the peer's code.
        ([E.OPENED, (E.RECV_CLOSE, 4567, ""), E.WRITES_DROPPED], False, 4567, ""),
        # ... the transport ended before it could be told.
        ([E.OPENED, (E.RECV_CLOSE, 4567, ""), E.TRANSPORT_ENDED], False, 4567, ""),
        # We failed the connection, whatever follows.
        ([E.OPENED, (E.FAIL, 1009, "big"), (E.RECV_CLOSE, 1000, ""),
          E.TRANSPORT_ENDED], False, 1009, "big"),
        # Dropped without a Close.
        ([E.OPENED, E.TRANSPORT_ENDED], False, 1006, ""),
        # Our Close never answered (close_timeout).
        ([E.OPENED, (E.SEND_CLOSE, 1000, ""), E.ABORT], False, 1006, ""),
        # Closed during the handshake.
        ([E.TRANSPORT_ENDED], False, 1006, ""),
        # A clean handshake stays clean when the TCP close times out.
        ([E.OPENED, (E.SEND_CLOSE, 1000, ""), (E.RECV_CLOSE, 1000, ""), E.ABORT],
         True, 1000, ""),
    ],
)
def test_verdicts(
    events: list[Event | tuple[Event, int, str]], clean: bool, code: int, reason: str
) -> None:
    verdict = walk(*events).verdict
    assert verdict is not None
    assert (verdict.clean, verdict.code, verdict.reason) == (clean, code, reason)


def test_the_first_decision_stands() -> None:
    life = walk(E.OPENED, (E.FAIL, 1002, "bad"))
    first = life.verdict
    life.handle(E.ABORT, error="later")
    life.handle(E.TRANSPORT_ENDED)
    assert life.verdict is first
    assert life.phase is P.ENDED


def test_an_abort_carries_the_engines_error() -> None:
    marker = RuntimeError("handshake refused")
    life = Lifecycle()
    life.handle(E.ABORT, error=marker)
    assert life.verdict is not None and life.verdict.error is marker
    assert not life.verdict.clean


def test_no_verdict_while_the_connection_is_open_or_closing() -> None:
    assert walk(E.OPENED).verdict is None
    assert walk(E.OPENED, (E.SEND_CLOSE, 1000, "")).verdict is None
    assert walk(E.OPENED, (E.RECV_CLOSE, 1000, "")).verdict is None


def test_what_each_side_said_is_recorded_once() -> None:
    life = walk(E.OPENED, (E.RECV_CLOSE, 4000, "first"), (E.SEND_CLOSE, 4000, "first"))
    life.handle(E.SEND_CLOSE, code=1000, reason="second")
    assert life.close_received == (4000, "first")
    assert life.close_sent == (4000, "first")
