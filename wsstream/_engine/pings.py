"""Ping bookkeeping: which pings wait for a pong, and the round trips."""

from __future__ import annotations

import os

import trio

__all__ = ["Ping", "PingTracker"]


class Ping:
    """A ping waiting for its pong: ``event`` is set when it came (``rtt``
    set) or the connection ended (``rtt`` None)."""

    __slots__ = ("event", "rtt", "sent_at")

    def __init__(self, sent_at: float) -> None:
        self.sent_at = sent_at
        self.event = trio.Event()
        self.rtt: float | None = None


class PingTracker:
    """Pings in flight by payload; a pong answers its ping and every earlier
    one (RFC 6455 5.5.3 lets a peer answer only the latest)."""

    __slots__ = ("_waiting", "latency", "pings_sent", "pongs_received")

    def __init__(self) -> None:
        # Made by the first ping: most connections never send one.
        self._waiting: dict[bytes, Ping] | None = None
        self.latency: float | None = None
        self.pings_sent = 0
        self.pongs_received = 0

    def payload_for(self, payload: bytes | bytearray | memoryview) -> bytes:
        """Validate a user's payload; an empty one becomes 4 unused random bytes."""
        if not isinstance(payload, (bytes, bytearray, memoryview)):
            raise TypeError("payload must be bytes-like")
        payload = bytes(payload)
        if len(payload) > 125:
            raise ValueError("a ping payload is at most 125 bytes")
        waiting = self._waiting or {}
        if not payload:
            payload = os.urandom(4)
            while payload in waiting:
                payload = os.urandom(4)
        elif payload in waiting:
            raise ValueError("a ping with this payload is already waiting for its pong")
        return payload

    def track(self, payload: bytes) -> Ping:
        """Count a ping just sent and expect its pong (the keepalive's;
        :meth:`forget` it if it is not waited for)."""
        ping = Ping(trio.current_time())
        waiting = self._waiting
        if waiting is None:
            waiting = self._waiting = {}
        waiting[payload] = ping
        self.pings_sent += 1
        return ping

    def forget(self, payload: bytes) -> None:
        """Stop expecting the pong of ``payload``."""
        if self._waiting is not None:
            self._waiting.pop(payload, None)

    async def wait(self, payload: bytes) -> float | None:
        """Wait for the pong of a ping just sent; ``None`` if the
        connection ended first (see :meth:`release_all`)."""
        ping = self.track(payload)
        try:
            await ping.event.wait()
        finally:
            self.forget(payload)
        return ping.rtt

    def on_pongs(self, pongs: list[bytes]) -> None:
        now = trio.current_time()
        waiting = self._waiting or {}
        for pong in pongs:
            self.pongs_received += 1
            if pong not in waiting:
                continue  # unsolicited (5.5.3)
            for payload in list(waiting):
                ping = waiting.pop(payload)
                ping.rtt = now - ping.sent_at
                ping.event.set()
                if payload == pong:
                    self.latency = ping.rtt
                    break

    def release_all(self) -> None:
        """The connection ended: wake every waiter without a round trip."""
        for ping in (self._waiting or {}).values():
            ping.event.set()
