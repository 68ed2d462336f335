"""The browser's classic ``WebSocket`` interface, as a thin layer over WebSocketStream.

Theory of operation
-------------------
A :class:`WebSocket` owns one :class:`~wsstream.WebSocketStream` (the engine)
and one task of its own, the *pump*, both started by ``async with``. There is
no second engine: everything on the wire goes through the stream's readable
and writable.

The pump awaits ``opened``, then reads the readable and turns each message
into a :class:`MessageEvent`; when the readable ends it awaits ``closed`` and
produces the :class:`CloseEvent` (after an :class:`ErrorEvent` if the close
was unclean). Each event goes to exactly one consumer: the matching
``on_*`` callback if one is set when the event is dispatched, else the
:meth:`WebSocket.events` iterator. Callbacks run in the pump, so an async
callback that takes its time slows reading, and TCP slows the peer.

A message event that has no callback waits until ``events()`` takes it (or a
callback is set, or the block is left) before the pump reads the next one.
So when nobody consumes events the pump stops reading the readable, the
engine's buffer fills up to ``read_limit`` and the engine stops reading the
socket: memory stays bounded and the peer is slowed, exactly as for an
unread readable. Open, error and close events are one-shot (at most three per
connection), so they are queued for ``events()`` without waiting.

``send()`` must not block, as in the browser, while the writable's
``send()`` waits for backpressure. So ``send()`` appends to an unbounded,
accounted queue, and the *drain* task (a child of the pump) feeds it into the
writable in order. ``buffered_amount`` is the payload bytes in that queue,
plus the engine's encoded bytes not yet written to the socket, plus what
``send()`` discarded after closing (which, as in the browser, never falls).
``close()`` is queued behind earlier ``send()`` calls: the drain calls the
stream's ``close()`` once the queue is empty, or after ``close_timeout``
seconds if the peer does not take the data (the rest is then discarded).

Nesting: ``async with`` opens our nursery (the pump), then the stream's
(the engine), then a bare cancel scope around the body. A callback that
raises cancels only the body's scope, so the stream still closes with 1011
and the block raises the callback's exception; a cancellation of the body
reaches the stream's forceful close before anything of ours waits.

``ready_state`` is computed from the stream's promises and from whether the
closing handshake started, so it follows the connection, not the events:
it may already be ``CLOSED`` while message events are still waiting to be
consumed, just as a browser's may be ``CLOSING`` while message tasks are
still queued.
"""

from __future__ import annotations

import inspect
from collections import deque
from collections.abc import AsyncIterator, Callable, Sequence
from types import TracebackType
from typing import Any, Generic, TypeVar, Unpack
from urllib.parse import urlsplit

import trio
from trio.lowlevel import ParkingLot, cancel_shielded_checkpoint, checkpoint_if_cancelled

from .._errors import InvalidStateError, WebSocketError, check_close_args, collapse
from .._options import ClientOptions, Options
from .channels import Writable
from .events import (
    CLOSED,
    CLOSING,
    CONNECTING,
    OPEN,
    CloseEvent,
    ErrorEvent,
    MessageEvent,
    OpenEvent,
    ReadyState,
    WebSocketEvent,
)
from .messages import SendableMessage, encode_message
from .stream import WebSocketStream

__all__ = [
    "CLOSED",
    "CLOSING",
    "CONNECTING",
    "OPEN",
    "CloseEvent",
    "ErrorEvent",
    "MessageEvent",
    "OpenEvent",
    "ReadyState",
    "WebSocket",
    "WebSocketEvent",
]


E = TypeVar("E", OpenEvent, MessageEvent, ErrorEvent, CloseEvent)

#: A callback: called with the event; if it returns an awaitable, that is awaited.
Handler = Callable[[E], object]


class _HandlerSlot(Generic[E]):
    """An ``on_*`` attribute: a callback or ``None``; setting it wakes the pump."""

    def __init__(self, name: str) -> None:
        self._name = name

    def __get__(self, instance: WebSocket | None, owner: type | None = None) -> Any:
        if instance is None:
            return self
        return instance._handlers[self._name]

    def __set__(self, instance: WebSocket, value: Handler[E] | None) -> None:
        if value is not None and not callable(value):
            raise TypeError(f"on_{self._name} must be callable or None")
        instance._handlers[self._name] = value
        instance._pump_lot.unpark_all()


_CLOSE_TIMEOUT_DEFAULT: float | None = Options().close_timeout


class WebSocket:
    """A WebSocket connection with the browser's classic, event-based API.

    Use it as ``async with``; entering starts the connection and returns at
    once (``ready_state`` is ``CONNECTING``), events tell what happens::

        async with wsstream.WebSocket("ws://127.0.0.1:8765/", ["chat"]) as ws:
            async for event in ws.events():
                if isinstance(event, wsstream.OpenEvent):
                    ws.send("hello")
                elif isinstance(event, wsstream.MessageEvent):
                    print(event.data)
                    ws.close()

    ``protocols`` may be one str or a sequence of str, as in the browser.
    The keyword options are those of :class:`WebSocketStream` (``stream``,
    ``signal``, ``headers``, ``ssl_context``, ``proxy``,
    ``unix_socket_path``, ``read_limit``, ``close_timeout``, ...),
    validated the same way.

    Events come in the browser's order: :class:`OpenEvent`, then a
    :class:`MessageEvent` per message, then :class:`CloseEvent`; an unclean
    close or a failed handshake gives :class:`ErrorEvent` then
    ``CloseEvent(1006, "", False)``. Each event goes either to the matching
    ``on_open`` / ``on_message`` / ``on_error`` / ``on_close`` callback, if
    one is set when the event is dispatched, or else to :meth:`events`; never
    to both. Message events nobody consumes are not buffered: the connection
    stops reading (see ``read_limit``) until they are.

    Leaving the block normally closes the connection (code 1000, after the
    messages queued by :meth:`send`) and waits for the closing handshake
    (bounded by ``close_timeout``) while callbacks still run; message events
    meant for :meth:`events` are discarded from then on. Leaving with an
    exception closes with 1011 and runs no more callbacks; a cancellation
    closes forcefully. An exception raised by a callback closes the
    connection with 1011, cancels the body and is raised by the block. The
    block never raises the connection's own errors (they are events).
    """

    CONNECTING = ReadyState.CONNECTING
    OPEN = ReadyState.OPEN
    CLOSING = ReadyState.CLOSING
    CLOSED = ReadyState.CLOSED

    on_open = _HandlerSlot[OpenEvent]("open")
    """Callback for :class:`OpenEvent`, or ``None`` (the default)."""
    on_message = _HandlerSlot[MessageEvent]("message")
    """Callback for :class:`MessageEvent`, or ``None`` (the default)."""
    on_error = _HandlerSlot[ErrorEvent]("error")
    """Callback for :class:`ErrorEvent`, or ``None`` (the default)."""
    on_close = _HandlerSlot[CloseEvent]("close")
    """Callback for :class:`CloseEvent`, or ``None`` (the default)."""

    def __init__(
        self, url: str, protocols: str | Sequence[str] = (), **options: Unpack[ClientOptions]
    ) -> None:
        if isinstance(protocols, str):
            protocols = (protocols,)  # the browser accepts one string
        self._wss = WebSocketStream(url, protocols=protocols, **options)
        close_timeout = options.get("close_timeout", _CLOSE_TIMEOUT_DEFAULT)
        self._close_timeout: float | None = close_timeout
        parts = urlsplit(self._wss.url)
        self._origin = f"{parts.scheme}://{parts.netloc}"
        self._binary_type = "bytes"
        self._protocol = ""
        self._extensions = ""
        self._handlers: dict[str, Any] = dict.fromkeys(("open", "message", "error", "close"))

        # The closing handshake started (close() called, or the readable ended).
        self._closing = False
        self._close_request: tuple[int | None, str] | None = None

        # Outgoing: send() -> queue -> drain task -> writable.
        self._queue: deque[tuple[str | bytes, int]] = deque()
        self._queued_bytes = 0
        self._discarded_bytes = 0
        # The message the drain is handing to the writable: its size and the
        # engine's messages_sent before the hand-over, so that buffered_amount
        # counts it once (in our queue until the engine took it).
        self._handing: tuple[int, int] | None = None
        self._drain_lot = ParkingLot()
        self._drain_scope = trio.CancelScope()

        # Incoming: events for events(), and the pump's waits.
        self._events: deque[WebSocketEvent] = deque()
        self._offered: MessageEvent | None = None
        self._events_lot = ParkingLot()
        self._pump_lot = ParkingLot()
        self._iterating = False
        self._exiting = False  # the block was left: messages for events() are dropped
        self._done = False  # no more events will come

        self._entered = False
        self._run_scope = trio.CancelScope()
        self._run_done = trio.Event()
        self._body_scope = trio.CancelScope()
        self._callback_error: BaseException | None = None
        self._nursery_cm: Any = None

    # -- the browser's attributes --------------------------------------------

    @property
    def url(self) -> str:
        """The normalised URL (``http``/``https`` became ``ws``/``wss``)."""
        return self._wss.url

    @property
    def protocol(self) -> str:
        """The subprotocol the server chose; ``""`` until open or when none."""
        return self._protocol

    @property
    def extensions(self) -> str:
        """The negotiated extensions header value; ``""`` until open or when none."""
        return self._extensions

    @property
    def ready_state(self) -> ReadyState:
        """``CONNECTING`` (0), ``OPEN`` (1), ``CLOSING`` (2) or ``CLOSED`` (3).

        ``CLOSING`` from :meth:`close` or from the end of incoming messages
        (the peer's Close) on; ``CLOSED`` once the connection is over.
        """
        wss = self._wss
        if wss.closed.settled:
            return CLOSED
        if self._closing:
            return CLOSING
        if wss.opened.settled:
            return OPEN
        return CONNECTING

    @property
    def buffered_amount(self) -> int:
        """Bytes given to :meth:`send` and not yet written to the socket.

        Payload bytes (UTF-8 for text) while in this object's queue; once the
        engine took a message, its encoded size (frame header included,
        compressed when ``compression`` is on) until written. As in the
        browser, data discarded by :meth:`send` after closing is added and
        never taken off, and data still queued when the connection ended
        stays counted.
        """
        queued = self._queued_bytes
        stats = self._wss.statistics()
        if self._handing is not None and stats.messages_sent > self._handing[1]:
            queued -= self._handing[0]
        return queued + stats.buffered_out + self._discarded_bytes

    @property
    def binary_type(self) -> str:
        """How binary messages are delivered: always ``"bytes"``.

        The browser's ``"blob"`` and ``"arraybuffer"`` have no Python
        counterpart. ``bytes`` is what the engine produces, so any other
        type would only add a copy (``bytearray(event.data)``) or hide one
        (``memoryview(event.data)`` costs nothing and is read-only anyway).
        Setting any other value raises :class:`ValueError` (a non-str,
        :class:`TypeError`) rather than being ignored as in the browser, so
        that a port does not silently change meaning.
        """
        return self._binary_type

    @binary_type.setter
    def binary_type(self, value: str) -> None:
        if not isinstance(value, str):
            raise TypeError(f"binary_type must be a str, not {type(value).__name__}")
        if value != "bytes":
            raise ValueError(f"binary_type can only be 'bytes', not {value!r}")

    # -- the browser's methods -----------------------------------------------

    def send(self, data: SendableMessage) -> None:
        """Queue one message; never blocks (the browser's ``send()``).

        A ``str`` is sent as a text message (lone surrogates become U+FFFD,
        as the browser's USVString conversion does), any object with the
        buffer protocol (``bytes``, ``bytearray``, ``memoryview``,
        ``array.array``...) as a binary message of its bytes (copied at
        once, so a buffer may be reused).
        ``buffered_amount`` grows by its size and falls as it is written.
        Messages go out in order, before a later :meth:`close`.

        Raises :class:`TypeError` for anything else and
        :class:`InvalidStateError` while ``CONNECTING``. Once ``CLOSING`` or
        ``CLOSED``, the data is discarded and ``buffered_amount`` still grows
        by its size, as in the browser; no error is raised.
        """
        text, payload = encode_message(data)
        size = len(payload)
        # The writable takes str for text: the queue keeps the text with its
        # lone surrogates already replaced, so that the size counted is sent.
        message: str | bytes = payload.decode() if text else payload
        state = self.ready_state
        if state == CONNECTING:
            raise InvalidStateError("the WebSocket is still connecting")
        if state != OPEN:
            self._discarded_bytes += size
            return
        self._queue.append((message, size))
        self._queued_bytes += size
        self._drain_lot.unpark_all()

    def close(self, code: int | None = None, reason: str = "") -> None:
        """Start the closing handshake; does not wait (events tell the outcome).

        ``code`` must be 1000 or 3000-4999 and ``reason`` at most 123 UTF-8
        bytes, else :class:`ValueError`; a non-int code (``bool`` included)
        or a non-str reason raises :class:`TypeError`. Validation comes
        first. No code and no reason sends a Close without a body (the peer
        sees 1005); a reason alone sends 1000.

        While ``CONNECTING`` it abandons the connection: an
        :class:`ErrorEvent` and ``CloseEvent(1006, "", False)`` follow. While
        ``OPEN`` the Close frame goes out after the messages already given
        to :meth:`send` (those not taken by the peer within
        ``close_timeout`` are discarded). Does nothing once ``CLOSING`` or
        ``CLOSED``.
        """
        code, reason = check_close_args(code, reason)
        state = self.ready_state
        if state == CONNECTING:
            self._closing = True
            self._wss.close(code, reason)
        elif state == OPEN:
            self._begin_close(code, reason)

    # -- events ----------------------------------------------------------------

    def events(self) -> AsyncIterator[WebSocketEvent]:
        """Iterate over the events that have no callback, in order.

        ``async for event in ws.events()`` yields :class:`OpenEvent`,
        :class:`MessageEvent`, :class:`ErrorEvent` and :class:`CloseEvent`,
        and ends after the :class:`CloseEvent`. Leaving the loop early loses
        nothing: a later ``events()`` continues where it stopped. Only one
        task may wait on it at a time (another raises
        :class:`trio.BusyResourceError`). Cancellation is safe: a cancelled
        wait takes no event. After the block was left it yields the open,
        error and close events not yet taken, then ends.
        """
        return _EventIterator(self)

    async def _next_event(self) -> WebSocketEvent:
        if self._iterating:
            raise trio.BusyResourceError("another task is iterating over events()")
        await checkpoint_if_cancelled()
        self._iterating = True
        try:
            while not self._events:
                if self._done:
                    raise StopAsyncIteration
                await self._events_lot.park()
        finally:
            self._iterating = False
        event = self._events.popleft()
        if event is self._offered:
            self._offered = None
            self._pump_lot.unpark_all()
        await cancel_shielded_checkpoint()
        return event

    # -- async with ------------------------------------------------------------

    async def __aenter__(self) -> WebSocket:
        if self._entered:
            raise RuntimeError("a WebSocket can be entered only once")
        self._entered = True
        # Three levels: our nursery (the pump), the stream's (the engine),
        # and a scope around the body alone, so that a failed callback can
        # cancel the body while the connection still closes cleanly (1011),
        # and leaving the body by cancellation reaches the stream's own
        # forceful close before anything else waits.
        self._nursery_cm = trio.open_nursery()
        nursery = await self._nursery_cm.__aenter__()
        try:
            await self._wss.__aenter__()
        except BaseException as exc:  # pragma: no cover - it fails only if entered twice
            await self._nursery_cm.__aexit__(type(exc), exc, exc.__traceback__)
            raise
        nursery.start_soon(self._run)
        self._body_scope.__enter__()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool:
        error: BaseException | None = exc
        try:
            if self._body_scope.__exit__(exc_type, exc, tb):
                error = None  # cancelled by us: a callback failed
        except BaseException as remaining:  # pragma: no cover - a group holding our Cancelled
            error = remaining
        if self._callback_error is not None:
            error = self._callback_error
        if error is None:
            # The browser has no "end of scope": close as WebSocketStream
            # does, after what send() queued, and let the callbacks see the end.
            self._close_on_exit()
            try:
                await self._run_done.wait()
            except BaseException as cancelled:
                error = cancelled
            if self._callback_error is not None:
                error = self._callback_error
        self._run_scope.cancel()  # no more callbacks
        # The stream: 1000 after a normal exit (a no-op now), 1011 for an
        # exception, forcefully for a cancellation; it never raises the
        # connection's own errors.
        try:
            if error is None:
                await self._wss.__aexit__(None, None, None)
            else:
                await self._wss.__aexit__(type(error), error, error.__traceback__)
        except BaseException as stream_error:  # pragma: no cover - a cancellation
            error = stream_error
        try:
            await self._nursery_cm.__aexit__(None, None, None)
        except BaseException as group:  # pragma: no cover - a bug of ours, or a cancellation
            if error is None or isinstance(error, trio.Cancelled):
                error = collapse(group)
        if error is None:
            return exc is not None
        if error is exc:
            return False
        raise error from None

    def _close_on_exit(self) -> None:
        self._exiting = True
        self._pump_lot.unpark_all()
        state = self.ready_state
        if state == CONNECTING:
            self._closing = True
            self._wss.close(1000, "")
        elif state == OPEN:
            self._begin_close(1000, "")

    # -- the pump and the drain -------------------------------------------------

    def _begin_close(self, code: int | None, reason: str) -> None:
        self._closing = True
        self._close_request = (code, reason)
        if self._close_timeout is not None:
            deadline = trio.current_time() + self._close_timeout
            self._drain_scope.deadline = min(self._drain_scope.deadline, deadline)
        self._drain_lot.unpark_all()

    async def _run(self) -> None:
        try:
            with self._run_scope:
                await self._pump()
        except BaseException as exc:
            error = collapse(exc)
            if isinstance(error, trio.Cancelled):
                raise
            # A callback raised (or, should it ever happen, a bug of ours):
            # the block raises it, after closing the connection with 1011.
            self._callback_error = error
            self._body_scope.cancel()
        finally:
            self._done = True
            self._events_lot.unpark_all()
            self._run_done.set()

    async def _pump(self) -> None:
        wss = self._wss
        try:
            info = await wss.opened
        except WebSocketError as error:
            await self._dispatch(ErrorEvent(error))
            await self._dispatch(CloseEvent(1006, "", False))
            return
        self._protocol = info.protocol
        self._extensions = info.extensions
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._drain, info.writable)
            await self._dispatch(OpenEvent())
            origin = self._origin
            try:
                async for message in info.readable:
                    await self._dispatch(MessageEvent(message, origin))
            except trio.BrokenResourceError:
                pass  # the connection failed: ``closed`` says how
            self._closing = True
            try:
                outcome = await wss.closed
            except WebSocketError as error:
                await self._dispatch(ErrorEvent(error))
                await self._dispatch(CloseEvent(1006, "", False))
            else:
                await self._dispatch(CloseEvent(outcome.close_code, outcome.reason, True))
            nursery.cancel_scope.cancel()

    async def _dispatch(self, event: WebSocketEvent) -> None:
        handler = self._handlers[event.type]
        if handler is not None:
            await _call(handler, event)
            return
        self._events.append(event)
        self._events_lot.unpark_all()
        if not isinstance(event, MessageEvent):
            return
        # Wait until events() takes it: this is what keeps memory bounded.
        self._offered = event
        while self._offered is event:
            if self._exiting or self._handlers["message"] is not None:
                self._events.pop()  # it is the last one: the pump waits on it
                self._offered = None
                handler = self._handlers["message"]
                if handler is not None:
                    await _call(handler, event)
                return
            await self._pump_lot.park()

    async def _drain(self, writable: Writable) -> None:
        queue = self._queue
        with self._drain_scope:
            try:
                while queue or self._close_request is None:
                    if not queue:
                        await self._drain_lot.park()
                        continue
                    message, size = queue[0]
                    self._handing = (size, self._wss.statistics().messages_sent)
                    try:
                        await writable.send(message)
                    finally:
                        self._handing = None
                    queue.popleft()
                    self._queued_bytes -= size
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                return  # the connection ended; what is left stays counted
        # Here close() was called and the queue is empty, or close_timeout
        # ran out with data the peer did not take: that data is discarded.
        self._discarded_bytes += self._queued_bytes
        self._queued_bytes = 0
        queue.clear()
        assert self._close_request is not None
        self._wss.close(*self._close_request)


class _EventIterator(AsyncIterator[WebSocketEvent]):
    __slots__ = ("_ws",)

    def __init__(self, ws: WebSocket) -> None:
        self._ws = ws

    def __aiter__(self) -> _EventIterator:
        return self

    async def __anext__(self) -> WebSocketEvent:
        return await self._ws._next_event()


async def _call(handler: Callable[[Any], object], event: WebSocketEvent) -> None:
    result = handler(event)
    if inspect.isawaitable(result):
        await result
