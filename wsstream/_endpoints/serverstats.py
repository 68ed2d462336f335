"""Server-wide counters: :class:`ServerStatistics`, created by the caller."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .._engine.connection import Connection

__all__ = ["ServerStatistics"]


class ServerStatistics:
    """Live counters of every connection that one or more servers served.

    Create one and pass it to :func:`serve`, :func:`serve_listeners`,
    :func:`serve_unix` or :func:`serve_stream` as ``statistics=``; read its
    attributes at any time, while the server runs and after::

        stats = wsstream.ServerStatistics()
        nursery.start_soon(functools.partial(
            wsstream.serve, handler, "0.0.0.0", 8765, statistics=stats
        ))
        ...
        print(stats.connections_open, stats.messages_received)

    Several servers may share one (a TCP and a Unix socket server of one
    application, say): it then counts for all of them. Every attribute is
    an ``int`` that only grows, except ``connections_open``:

    * ``connections_open``: connections accepted and not yet finished,
      those whose opening handshake is still in progress included (what
      ``max_connections`` compares with, for one server);
    * ``connections_accepted``: every connection accepted, refused ones
      included;
    * ``connections_refused``: connections answered 503 because the
      server was at ``max_connections`` (they never reach the handshake);
    * ``handshakes_failed``: connections that were served but never
      reached the handler: answered with an HTTP error (the request checks,
      ``origins``, ``process_request``, ``process_response``, a hook that
      raised), timed out (``open_timeout``), or dropped by the client
      during the handshake;
    * ``messages_received``, ``messages_sent``, ``bytes_received``,
      ``bytes_sent``: the sums of :meth:`WebSocketStream.statistics`'s
      counters over every connection served, open or finished (bytes of
      WebSocket frames on the wire, after the opening handshake, which is
      not counted).

    Reading a message or byte counter walks the open connections (about
    30 µs per thousand); the connection counters cost nothing to read.
    Serving with statistics costs nothing per message: each connection's
    own counters are added when it finishes. Not thread-safe:
    read it from the trio thread that serves.
    """

    __slots__ = (
        "_bytes_received", "_bytes_sent", "_live", "_messages_received", "_messages_sent",
        "connections_accepted", "connections_refused", "handshakes_failed",
    )

    def __init__(self) -> None:
        self.connections_accepted = 0
        self.connections_refused = 0
        self.handshakes_failed = 0
        # Open connections, whose counters are added in on read; finished
        # ones are folded into the totals below.
        self._live: set[Connection] = set()
        self._messages_received = 0
        self._messages_sent = 0
        self._bytes_received = 0
        self._bytes_sent = 0

    @property
    def connections_open(self) -> int:
        """Accepted and not yet finished, handshakes in progress included."""
        return len(self._live)

    # The open connections' counters are read from the connection itself,
    # the very values its statistics() reports, without building one
    # Statistics per connection (which costs a hundred times as much).

    @property
    def messages_received(self) -> int:
        """Messages received, over every connection served."""
        return self._messages_received + sum(c.messages_received for c in self._live)

    @property
    def messages_sent(self) -> int:
        """Messages sent (queued by the handlers), over every connection served."""
        return self._messages_sent + sum(c.messages_sent for c in self._live)

    @property
    def bytes_received(self) -> int:
        """WebSocket bytes received after the handshake, over every connection."""
        return self._bytes_received + sum(c.bytes_received for c in self._live)

    @property
    def bytes_sent(self) -> int:
        """WebSocket bytes written after the handshake, over every connection."""
        return self._bytes_sent + sum(c.bytes_written for c in self._live)

    # -- the server's side (wsstream._endpoints.server) --------------------

    def _opened(self, conn: Connection) -> None:
        self.connections_accepted += 1
        self._live.add(conn)

    def _finished(self, conn: Connection) -> None:
        self._live.discard(conn)
        stats = conn.statistics()
        self._messages_received += stats.messages_received
        self._messages_sent += stats.messages_sent
        self._bytes_received += stats.bytes_received
        self._bytes_sent += stats.bytes_sent

    def _refused(self) -> None:
        self.connections_accepted += 1
        self.connections_refused += 1

    def __repr__(self) -> str:
        return (
            f"ServerStatistics(connections_open={self.connections_open}, "
            f"connections_accepted={self.connections_accepted}, "
            f"connections_refused={self.connections_refused}, "
            f"handshakes_failed={self.handshakes_failed}, "
            f"messages_received={self.messages_received}, messages_sent={self.messages_sent}, "
            f"bytes_received={self.bytes_received}, bytes_sent={self.bytes_sent})"
        )
