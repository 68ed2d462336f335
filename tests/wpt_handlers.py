"""Server roles of the web-platform-tests' WebSocketStream suite, for pytest.

The WPT folder ``websockets/stream/tentative/`` runs its cases against a set
of pywebsocket handlers (``websockets/handlers/*_wsh.py``). This module plays
each of those roles on 127.0.0.1, over ``ws://`` or ``wss://`` (the ``?wss``
variant, with a trustme certificate):

* roles a wsstream server can play are wsstream handlers plus ``serve``
  options (:func:`echo`, :func:`protocol_array`, :func:`not_found`,
  :class:`HandshakeGate`, :func:`remote_close`, :class:`SendBackpressure`,
  :class:`ReceiveBackpressure`, :func:`echo_exit`);
* roles that need to misbehave, or to act between the engine's steps, are
  *scripted peers* (:class:`RawPeer`): a trio TCP server that speaks WebSocket
  through the ``websockets`` package's Sans-I/O ``ServerProtocol`` (used here,
  in the tests, only), so the test decides when each byte goes out:
  :func:`delayed_passive_close`, :func:`passive_close_abort`,
  :func:`abrupt_close`, :func:`stalling_echo_exit`.

Why /delayed-passive-close is a scripted peer: a wsstream server echoes the
client's Close inside its engine, in the reader task, as soon as the Close
frame is read; a handler that stops reading does not delay it (the reader
keeps reading until ``read_limit`` worth of messages wait, and a bare Close
carries no message). Holding the echo back therefore needs a peer that
controls its output: the scripted peer reads the Close, sets
``close_seen``, and writes the echo only once the test sets ``release``.
This replaces the WPT's 1 s sleep with an event.

Scripted peers' sockets get a small receive buffer (``SMALL_RCVBUF``) so
that "the peer stops reading" stalls the client after a bounded number of
bytes instead of whatever the kernel's autotuning would absorb.
"""

from __future__ import annotations

import contextlib
import socket
import ssl
from collections.abc import Awaitable, Callable, Sequence
from typing import Any
from urllib.parse import parse_qs, urlsplit

import attrs
import trio
from websockets.frames import Frame, Opcode
from websockets.http11 import Request as WsRequest
from websockets.server import ServerProtocol

import wsstream

MiB = 2**20

#: SO_RCVBUF of scripted peers' sockets (the kernel doubles it).
SMALL_RCVBUF = 64 * 1024

Handler = Callable[[wsstream.WebSocketStream], Awaitable[None]]


# ---------------------------------------------------------------------------
# wsstream handlers


async def echo(wss: wsstream.WebSocketStream) -> None:
    """/echo: echoes text and binary messages; stops after echoing "Goodbye".

    Serve it with ``ECHO_OPTIONS`` so that the subprotocol "echo" is chosen
    when offered. The close code and reason are echoed by the engine itself
    (a wsstream server answers the peer's Close with the same code and
    reason; an empty Close with an empty one).
    """
    readable, writable, *_ = await wss.opened
    async for message in readable:
        await writable.send(message)
        if message == "Goodbye":
            return


ECHO_OPTIONS: dict[str, Any] = {"subprotocols": ["echo"]}


def _first_offered(request: wsstream.Request, offered: Sequence[str]) -> str | None:
    return offered[0] if offered else None


async def protocol_array(wss: wsstream.WebSocketStream) -> None:
    """/protocol_array: picks the first offered protocol and sends it as text."""
    _, writable, _, protocol = await wss.opened
    await writable.send(protocol)
    await wss.closed


PROTOCOL_ARRAY_OPTIONS: dict[str, Any] = {"select_subprotocol": _first_offered}


def not_found(request: wsstream.Request) -> wsstream.Response:
    """/404: a ``process_request`` hook failing every handshake with 404."""
    return wsstream.Response(404, body=b"no such handler")


@attrs.define
class HandshakeGate:
    """/handshake_sleep_2: a ``process_request`` hook that holds the handshake
    until ``release`` is set, instead of sleeping 2 s; ``request_seen`` tells
    the test that the client's request has arrived."""

    request_seen: trio.Event = attrs.field(factory=trio.Event)
    release: trio.Event = attrs.field(factory=trio.Event)
    requests: int = 0

    async def __call__(self, request: wsstream.Request) -> None:
        self.requests += 1
        self.request_seen.set()
        await self.release.wait()


def remote_close(close_sent: trio.Event | None = None) -> Handler:
    """/remote-close?code=&reason=: the server closes first.

    No ``code`` sends a Close without a body. ``close_sent`` (if given) is set
    once the server's Close is committed (queued in its engine), so that a
    test can act after it deterministically. ``abrupt=1`` needs a scripted
    peer: see :func:`abrupt_close`.
    """

    async def handler(wss: wsstream.WebSocketStream) -> None:
        await wss.opened
        assert wss.request is not None
        query = parse_qs(urlsplit(wss.request.path).query)
        assert "abrupt" not in query, "use abrupt_close() for abrupt=1"
        code = int(query["code"][0]) if "code" in query else None
        reason = query.get("reason", [""])[0]
        if code is None:
            wss.close()
        else:
            wss.close(code, reason)
        if close_sent is not None:
            close_sent.set()
        with contextlib.suppress(wsstream.WebSocketError):
            await wss.closed

    return handler


@attrs.define
class SendBackpressure:
    """/send-backpressure: an empty binary message, then ``count`` binary
    messages of 1 MiB, then a text message with the seconds spent sending.

    ``sent`` counts the 1 MiB sends that returned; ``done`` is set when every
    send returned. Serve with ``compression=None`` (the WPT handler turns
    permessage-deflate off).
    """

    count: int = 16
    sent: int = 0
    started: trio.Event = attrs.field(factory=trio.Event)
    done: trio.Event = attrs.field(factory=trio.Event)

    async def __call__(self, wss: wsstream.WebSocketStream) -> None:
        _, writable, *_ = await wss.opened
        start = trio.current_time()
        self.started.set()
        await writable.send(b"")
        payload = bytes(MiB)
        for _ in range(self.count):
            await writable.send(payload)
            self.sent += 1
        await writable.send(f"{trio.current_time() - start:.3f}")
        self.done.set()
        await wss.closed


@attrs.define
class ReceiveBackpressure:
    """/receive-backpressure: does not read until ``release`` is set, then
    reads everything; ``received`` counts messages, ``bytes`` their size.

    Serve with ``read_limit=1`` so that the engine stops reading the socket
    as soon as one message waits, and ``max_message_size=None``.
    """

    release: trio.Event = attrs.field(factory=trio.Event)
    received: int = 0
    bytes: int = 0

    async def __call__(self, wss: wsstream.WebSocketStream) -> None:
        readable, *_ = await wss.opened
        await self.release.wait()
        async for message in readable:
            self.received += 1
            self.bytes += len(message)


async def echo_exit(wss: wsstream.WebSocketStream) -> None:
    """/echo_exit: reads messages; returns (the server closes, 1000) on "Goodbye"."""
    readable, *_ = await wss.opened
    async for message in readable:
        if message == "Goodbye":
            return


# ---------------------------------------------------------------------------
# Scripted peers: hand-driven server side over trio TCP (and TLS)


class RawPeer:
    """One accepted connection driven by hand through ``ServerProtocol``."""

    def __init__(self, stream: trio.abc.Stream) -> None:
        self.stream = stream
        self.protocol = ServerProtocol(max_size=None)
        self.request: WsRequest | None = None
        self._frames: list[Frame] = []
        self.eof = False

    async def handshake(self) -> WsRequest:
        """Read the request, accept it (no extension, no subprotocol), reply."""
        while True:
            data = await self.stream.receive_some(65536)
            if not data:
                raise trio.BrokenResourceError("EOF during the handshake")
            self.protocol.receive_data(data)
            for event in self.protocol.events_received():
                assert isinstance(event, WsRequest)
                self.request = event
            if self.request is not None:
                break
        response = self.protocol.accept(self.request)
        self.protocol.send_response(response)
        await self.flush()
        return self.request

    async def next_frame(self) -> Frame | None:
        """The next frame from the client; ``None`` at the end of the stream.

        Replies the protocol queues (pongs, the Close echo) are *not* written:
        call :meth:`flush` for that, or :meth:`discard_output`.
        """
        while not self._frames:
            if self.eof:
                return None
            try:
                data = await self.stream.receive_some(65536)
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                data = b""
            if data:
                self.protocol.receive_data(data)
            else:
                self.protocol.receive_eof()
                self.eof = True
            self._frames.extend(
                e for e in self.protocol.events_received() if isinstance(e, Frame)
            )
        return self._frames.pop(0)

    async def flush(self) -> None:
        """Write whatever the protocol queued; its end-of-stream closes ours."""
        for chunk in self.protocol.data_to_send():
            if chunk:
                await self.stream.send_all(chunk)
            elif isinstance(self.stream, trio.abc.HalfCloseableStream):
                await self.stream.send_eof()
            else:
                await self.stream.aclose()
                return

    def discard_output(self) -> None:
        self.protocol.data_to_send()

    async def drop(self) -> None:
        """Close the TCP connection at once, without a Close frame (nor TLS
        close_notify)."""
        await trio.aclose_forcefully(self.stream)

    async def read_to_end(self) -> None:
        """Read until the client's EOF, answering as the protocol does."""
        while await self.next_frame() is not None:
            await self.flush()
        await self.flush()


Script = Callable[[RawPeer], Awaitable[None]]


@attrs.define
class RawServer:
    """A scripted peer's listener: ``url`` to dial, ``accepted`` connections."""

    url: str = ""
    accepted: int = 0


def delayed_passive_close(close_seen: trio.Event, release: trio.Event) -> Script:
    """/delayed-passive-close: on the client's Close, set ``close_seen``, wait
    for ``release`` (the WPT sleeps 1 s), then echo the code and reason."""

    async def script(peer: RawPeer) -> None:
        await peer.handshake()
        while (frame := await peer.next_frame()) is not None:
            if frame.opcode is Opcode.CLOSE:
                close_seen.set()
                await release.wait()
                await peer.flush()
                await peer.read_to_end()
                return
            await peer.flush()

    return script


def passive_close_abort(close_seen: trio.Event | None = None) -> Script:
    """/passive-close-abort: on the client's Close, drop TCP without a reply."""

    async def script(peer: RawPeer) -> None:
        await peer.handshake()
        while (frame := await peer.next_frame()) is not None:
            if frame.opcode is Opcode.CLOSE:
                peer.discard_output()
                if close_seen is not None:
                    close_seen.set()
                await peer.drop()
                return
            await peer.flush()

    return script


def abrupt_close() -> Script:
    """/remote-close?abrupt=1: send a Ping, then drop TCP without a Close."""

    async def script(peer: RawPeer) -> None:
        await peer.handshake()
        peer.protocol.send_ping(b"abrupt")
        await peer.flush()
        await peer.drop()

    return script


def stalling_echo_exit(goodbye_seen: trio.Event, drain: trio.Event) -> Script:
    """/echo_exit, made deterministic for W1/W2.

    Reads messages; on "Goodbye" sends Close(1000) and stops reading (so what
    the client queued after "Goodbye" stays unwritten) until ``drain`` is
    set; then reads to the end. A wsstream /echo_exit (:func:`echo_exit`)
    keeps reading in its engine after the handler returned, so whether the
    client's big write is complete at close time would be a race.
    """

    async def script(peer: RawPeer) -> None:
        await peer.handshake()
        while (frame := await peer.next_frame()) is not None:
            if frame.opcode is Opcode.TEXT and frame.data == b"Goodbye":
                goodbye_seen.set()
                peer.protocol.send_close(1000, "")
                await peer.flush()
                await drain.wait()
                await peer.read_to_end()
                return
            await peer.flush()

    return script


def stalling_remote_close(
    code: int, reason: str, gate: trio.Event, drain: trio.Event
) -> Script:
    """/remote-close?code=&reason= for R5, made deterministic.

    Waits for ``gate``, sends Close(code, reason), and reads nothing more
    until ``drain`` is set (then reads to the end). With its small receive
    buffer, what the client queued before ``gate`` is still unwritten when
    the Close arrives. (A wsstream server cannot play this: its engine reads
    a whole message into the core whatever ``read_limit`` says, so a big
    message is always fully written before its Close can go out.)
    """

    async def script(peer: RawPeer) -> None:
        await peer.handshake()
        await gate.wait()
        peer.protocol.send_close(code, reason)
        await peer.flush()
        await drain.wait()
        await peer.read_to_end()

    return script


def silent_peer() -> Script:
    """Completes the handshake, then neither reads nor writes (a peer that
    went quiet); with its small receive buffer the client's writes stall."""

    async def script(peer: RawPeer) -> None:
        await peer.handshake()
        await trio.sleep_forever()

    return script


# ---------------------------------------------------------------------------
# The servers


@attrs.define
class TlsContexts:
    server: ssl.SSLContext
    client: ssl.SSLContext


class WptServer:
    """Starts WPT roles on 127.0.0.1, over ``ws`` or ``wss``."""

    def __init__(self, nursery: trio.Nursery, tls: TlsContexts | None) -> None:
        self._nursery = nursery
        self._tls = tls

    @property
    def scheme(self) -> str:
        return "wss" if self._tls else "ws"

    @property
    def client_options(self) -> dict[str, Any]:
        """Keyword arguments a client needs to reach these servers."""
        return {"ssl_context": self._tls.client} if self._tls else {}

    def client(self, url: str, **kwargs: Any) -> wsstream.WebSocketStream:
        return wsstream.WebSocketStream(url, **self.client_options, **kwargs)

    async def serve(self, handler: Handler, **options: Any) -> str:
        """``wsstream.serve`` with this handler; returns the base URL."""
        if self._tls:
            options["ssl_context"] = self._tls.server
        listeners = await self._nursery.start(
            lambda task_status: wsstream.serve(
                handler, "127.0.0.1", 0, task_status=task_status, **options
            )
        )
        port = _port(listeners[0])
        return f"{self.scheme}://127.0.0.1:{port}"

    async def raw(self, script: Script) -> RawServer:
        """A scripted peer running ``script`` for each accepted connection."""
        listeners: list[Any] = await trio.open_tcp_listeners(0, host="127.0.0.1")
        for listener in listeners:
            listener.socket.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, SMALL_RCVBUF)
        if self._tls:
            listeners = [trio.SSLListener(lst, self._tls.server) for lst in listeners]
        server = RawServer(url=f"{self.scheme}://127.0.0.1:{_port(listeners[0])}")

        async def handle(stream: trio.abc.Stream) -> None:
            server.accepted += 1
            peer = RawPeer(stream)
            try:
                await script(peer)
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                pass  # the client went away: part of several scenarios
            finally:
                await trio.aclose_forcefully(stream)

        await self._nursery.start(trio.serve_listeners, handle, listeners)
        return server


def _port(listener: Any) -> int:
    while not isinstance(listener, trio.SocketListener):
        listener = listener.transport_listener
    port: int = listener.socket.getsockname()[1]
    return port
