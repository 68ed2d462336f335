"""Test a server handler without sockets: an in-memory client/server pair.

As :mod:`trio.testing` is to trio, this module is to wsstream: import it
explicitly (``import wsstream.testing``); ``import wsstream`` does not load
it, and its names are not in ``wsstream.__all__``.

Theory of operation. A :class:`Pair` is one ``async with`` that owns a
nursery; in it, :func:`~wsstream.serve_stream` serves the user's handler on
one end of :func:`trio.testing.memory_stream_pair`, and the client
:class:`~wsstream.WebSocketStream`, entered inside that nursery, speaks on the
other end. Memory streams move bytes only when tasks run, so everything
happens in trio's scheduler: no socket, no thread, and time passes only
through trio's clock (under ``MockClock`` with autojump, as fast as the
scheduler goes).

The handler is wrapped so that the pair learns two things serve_stream
keeps to itself: the server's WebSocketStream (``Pair.server``) and whether
the handler failed, judged by the same rule with which serve_stream decides
to log and close with 1011 (``_server.handler_failed``), so that the pair
re-raises exactly the failures that a server would log.

On leaving the block the body's exception is kept apart from the nursery,
which is left cleanly (the handler cancelled first), and raised afterwards:
raised inside the nursery it would come out in an ExceptionGroup, and
collapsing that group would rewrite its ``__context__``. Errors of the
pair's own tasks go through ``collapse``, as WebSocketStream's do.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import AsyncIterator, Mapping
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from types import TracebackType
from typing import Any, Unpack

import trio
import trio.testing

from ._endpoints.server import Handler, handler_failed, serve_stream
from ._errors import InvalidStateError, collapse
from ._options import ClientOptions, Options
from ._streams.promise import Promise
from ._streams.stream import WebSocketStream

__all__ = ["Pair", "open_pair"]

#: What the handler sees as the peer's address unless the test chooses one:
#: the shape of a TCP peer's address, so that code unpacking it runs.
DEFAULT_REMOTE_ADDRESS = ("127.0.0.1", 50000)

_SERVE_STREAM = inspect.signature(serve_stream)
#: The name of serve_stream's ``**options`` (the connection options).
_CONNECTION_OPTIONS = next(
    name for name, p in _SERVE_STREAM.parameters.items() if p.kind is p.VAR_KEYWORD
)


class _PeerName:
    """Stands for a socket: wsstream reads a peer's address as
    ``stream.socket.getpeername()``, as trio's SocketStream offers it."""

    __slots__ = ("_address",)

    def __init__(self, address: object) -> None:
        self._address = address

    def getpeername(self) -> object:
        return self._address


class _AddressedStream(trio.abc.HalfCloseableStream):
    """The server's end of the memory stream pair, whose peer has the
    address the test chose."""

    def __init__(self, stream: trio.abc.HalfCloseableStream, address: object) -> None:
        self._stream = stream
        self.socket = _PeerName(address)

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        await self._stream.send_all(data)

    async def wait_send_all_might_not_block(self) -> None:
        await self._stream.wait_send_all_might_not_block()

    async def receive_some(self, max_bytes: int | None = None) -> bytes | bytearray:
        return await self._stream.receive_some(max_bytes)

    async def send_eof(self) -> None:
        await self._stream.send_eof()

    async def aclose(self) -> None:
        await self._stream.aclose()


class Pair:
    """A client and the handler it talks to, over memory streams.

    Made by :func:`open_pair`; use it as ``async with``, which gives
    :attr:`client`. Can be entered only once (:class:`RuntimeError`).
    """

    def __init__(
        self,
        handler: Handler,
        client: WebSocketStream,
        server_stream: trio.abc.HalfCloseableStream,
        handler_timeout: float | None,
        server_options: dict[str, Any],
    ) -> None:
        self._handler = handler
        self._client = client
        self._server_stream = server_stream
        self._handler_timeout = math.inf if handler_timeout is None else handler_timeout
        self._server_options = server_options
        self._server: Promise[WebSocketStream] = Promise()
        #: What the handler raised, if serve_stream judged it a failure.
        self._failure: Exception | None = None
        self._lifetime: AbstractAsyncContextManager[WebSocketStream] | None = None

    @property
    def client(self) -> WebSocketStream:
        """The client's :class:`~wsstream.WebSocketStream` (the one the
        ``async with`` gives). Available at once; it connects when the block
        is entered."""
        return self._client

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
        if self._lifetime is None:
            never: Promise[WebSocketStream] = Promise()
            never.reject(InvalidStateError("the pair was never entered (async with)"))
            return never
        return self._server

    async def __aenter__(self) -> WebSocketStream:
        if self._lifetime is not None:
            raise RuntimeError("a Pair can be entered only once")
        self._lifetime = self._run()
        return await self._lifetime.__aenter__()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool:
        assert self._lifetime is not None
        return bool(await self._lifetime.__aexit__(exc_type, exc, tb))

    @asynccontextmanager
    async def _run(self) -> AsyncIterator[WebSocketStream]:
        client = self._client
        server_scope = trio.CancelScope()
        server_done = trio.Event()
        body_error: Exception | None = None
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(
                    self._serve, server_scope, server_done, name="wsstream.testing server"
                )
                try:
                    async with client:
                        yield client
                except Exception as exc:
                    # The test has failed: the handler has nothing left to
                    # tell it. Kept for after the nursery (module docstring).
                    body_error = exc
                    server_scope.cancel()
                except BaseException:
                    server_scope.cancel()  # a KeyboardInterrupt, say
                    raise
                else:
                    with trio.move_on_after(self._handler_timeout):
                        await server_done.wait()
                    if not server_done.is_set():
                        server_scope.cancel()
                        raise trio.TooSlowError(
                            f"the handler did not return within {self._handler_timeout} s"
                            " of the connection's end (open_pair's handler_timeout)"
                        )
        except BaseExceptionGroup as group:
            raise collapse(group) from None
        failure = self._failure
        if body_error is not None:
            if failure is not None:
                body_error.add_note(
                    f"wsstream.testing: the handler raised {failure!r} too"
                    " (its traceback is in the wsstream.server log)"
                )
            raise body_error
        if failure is not None:
            failure.add_note("wsstream.testing: raised by the handler, raised again by open_pair")
            raise failure

    async def _serve(self, scope: trio.CancelScope, done: trio.Event) -> None:
        try:
            with scope:
                await serve_stream(self._run_handler, self._server_stream, **self._server_options)
                if not self._server.settled:
                    # The handshake failed and the handler never ran: the
                    # client's ``opened`` says how.
                    opened = self._client.opened
                    await opened.settled_event()
                    error = opened.exception()
                    if error is not None:
                        self._server.reject(error)
        finally:
            self._server.reject(InvalidStateError("the pair ended before the handler ran"))
            done.set()

    async def _run_handler(self, wss: WebSocketStream) -> None:
        self._server.resolve(wss)
        try:
            await self._handler(wss)
        except Exception as exc:
            # Judged now, as serve_stream judges it when this raise reaches it.
            if handler_failed(wss._conn, exc):
                self._failure = exc
            raise


def open_pair(
    handler: Handler,
    path: str = "/",
    *,
    remote_address: object = DEFAULT_REMOTE_ADDRESS,
    handler_timeout: float | None = 10.0,
    server_options: Mapping[str, Any] | None = None,
    **client_options: Unpack[ClientOptions],
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
    if not callable(handler):
        raise TypeError("handler must be an async function taking a WebSocketStream")
    if not isinstance(path, str):
        raise TypeError("path must be a str")
    if not path.startswith("/"):
        raise ValueError(f"path must start with '/', not {path!r}")
    if handler_timeout is not None:
        if not isinstance(handler_timeout, (int, float)) or isinstance(handler_timeout, bool):
            raise TypeError("handler_timeout must be a number or None")
        if not handler_timeout > 0:
            raise ValueError(f"handler_timeout must be positive, not {handler_timeout}")
    if "stream" in client_options:
        raise TypeError("open_pair makes the client's stream: stream= cannot be given")
    options = dict(server_options or {})
    # Unknown names now, rather than from inside the block; bind() also
    # refuses "handler" and "stream", which are ours.
    bound = _SERVE_STREAM.bind(handler, None, **options)
    Options(**bound.arguments.get(_CONNECTION_OPTIONS, {}))
    server_stream, client_stream = trio.testing.memory_stream_pair()
    given: ClientOptions = {**client_options, "stream": client_stream}
    client = WebSocketStream(f"ws://localhost{path}", **given)
    return Pair(
        handler, client, _AddressedStream(server_stream, remote_address), handler_timeout, options
    )
