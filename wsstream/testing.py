"""Test a server handler without sockets: an in-memory client/server pair.

As :mod:`trio.testing` is to trio, this module is to wsstream: import it
explicitly (``import wsstream.testing``); ``import wsstream`` does not load
it, and its names are not in ``wsstream.__all__``.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import TracebackType
from typing import Any

from ._promise import Promise
from ._server import Handler
from ._stream import WebSocketStream

__all__ = ["Pair", "open_pair"]

#: What the handler sees as the peer's address unless the test chooses one:
#: the shape of a TCP peer's address, so that code unpacking it runs.
DEFAULT_REMOTE_ADDRESS = ("127.0.0.1", 50000)


class Pair:
    """A client and the handler it talks to, over memory streams.

    Made by :func:`open_pair`; use it as ``async with``, which gives
    :attr:`client`. Can be entered only once.
    """

    @property
    def client(self) -> WebSocketStream:
        """The client's :class:`~wsstream.WebSocketStream` (the one the
        ``async with`` gives). Available at once; it connects when the block
        is entered."""
        raise NotImplementedError

    @property
    def server(self) -> Promise[WebSocketStream]:
        """Awaitable: the server's :class:`~wsstream.WebSocketStream`, the
        very object the handler was given, once the handler has been called.

        For assertions on the server's side (``request``, ``statistics()``,
        ``closed``). When the handshake failed and the handler never ran, it
        raises what the client's ``opened`` raised (a
        :class:`~wsstream.HandshakeError`, say); it raises
        :class:`~wsstream.InvalidStateError` when awaited before the pair was
        entered or after it ended without the handler having run. Cancelling
        the await only stops waiting.
        """
        raise NotImplementedError

    async def __aenter__(self) -> WebSocketStream:
        raise NotImplementedError

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool:
        raise NotImplementedError


def open_pair(
    handler: Handler,
    path: str = "/",
    *,
    remote_address: object = DEFAULT_REMOTE_ADDRESS,
    handler_timeout: float | None = 10.0,
    server_options: Mapping[str, Any] | None = None,
    **client_options: Any,
) -> Pair:
    """Connect a client to ``handler`` over memory streams: no port, no real time.

    ::

        async with wsstream.testing.open_pair(handler, "/chat?room=1") as wss:
            readable, writable, *_ = await wss.opened
            await writable.send("hello")
            assert await readable.receive() == "hello"

    The test plays the client: the block gets a client
    :class:`~wsstream.WebSocketStream` whose stream is one end of
    :func:`trio.testing.memory_stream_pair`; ``handler`` is served on the
    other end by :func:`~wsstream.serve_stream`, in a nursery that the block
    owns, exactly once and with the same rules as under
    :func:`~wsstream.serve` (already open; return closes 1000, raise closes
    1011 and logs). Nothing waits on real time or on a thread, so the pair
    runs under :class:`trio.testing.MockClock` (pytest-trio's
    ``autojump_clock``), where timeouts and keepalive take virtual time.

    ``path`` is the request target, query included; the client's URL is
    ``ws://localhost`` followed by it. ``remote_address`` is what the handler
    sees as ``wss.remote_address`` and ``wss.request.remote_address`` (the
    client's own ``remote_address`` is ``None``: its stream has no socket).
    ``server_options`` are keyword arguments of :func:`~wsstream.serve_stream`
    (``subprotocols``, ``process_request``, ``origins``, ... and the
    connection options); ``client_options`` those of
    :class:`~wsstream.WebSocketStream` (``protocols``, ``headers``, ``signal``,
    ... and the connection options), ``stream`` excepted. Each side's
    connection options default as in production: set the ones the test
    depends on on both sides.

    Construction does no I/O and checks what it can at once:
    :class:`TypeError` or :class:`ValueError` for a bad client option, a
    ``path`` not starting with ``/``, an unknown name in ``server_options``
    or a bad value of a connection option in it. The values of the server's
    handshake options are checked by :func:`~wsstream.serve_stream` when
    the block is entered, and their error is raised by the block.

    Leaving the block:

    * The client is closed as :class:`~wsstream.WebSocketStream`'s own block
      closes it: 1000 after the body finished, 1011 when it raised, bounded
      by the client's ``close_timeout``; unread messages are discarded.
    * After the body finished, the block waits for the handler to return,
      at most ``handler_timeout`` seconds of trio's clock (virtual under
      ``MockClock``) from the client's end; a handler still running then is
      cancelled and :class:`trio.TooSlowError` is raised (``None``: wait
      without a bound).
    * A handler that failed, that is raised what :func:`~wsstream.serve`
      would log and answer with 1011, has its exception raised again by the
      block, so the test fails with the handler's own traceback instead of
      passing over a log line. A handler that ended because the connection
      ended (a ``send()`` or ``receive()`` raising
      :class:`~wsstream.WebSocketError` or :class:`trio.ClosedResourceError`
      after the close) did not fail, and nothing is raised.
    * When the body raised, the handler is cancelled once the client is
      closed, and the body's exception propagates unchanged; if the handler
      had failed too, a note on that exception names the handler's.
    * When the block is left because of a cancellation, the client closes
      forcefully (1001, see :class:`~wsstream.WebSocketStream`), the
      handler is cancelled, and the cancellation propagates.

    The block never raises an :class:`ExceptionGroup` of its own tasks: the
    one exception that matters comes out. The handler's failures are also
    logged on the ``wsstream.server`` logger, as under
    :func:`~wsstream.serve`.

    Memory streams never make a writer wait for its peer (their buffer has
    no bound): ``read_limit`` still bounds what the reading side keeps, but
    the excess waits in the memory stream instead of slowing the writer.
    """
    raise NotImplementedError
