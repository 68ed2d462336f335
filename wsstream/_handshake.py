"""The opening handshake over a trio stream, both sides (RFC 6455 4).

The core builds and checks the HTTP messages; these functions move them.
Both raise :class:`~wsstream._core.HandshakeFailure` for a bad or missing
answer and let the stream's own errors (:class:`trio.BrokenResourceError`,
:class:`OSError`) through; the caller maps them to the user's errors and
bounds the whole exchange with ``open_timeout``.
"""

from __future__ import annotations

from collections.abc import Sequence

import trio

from ._core import Core, HandshakeFailure
from ._errors import HandshakeError
from ._options import ServerHooks

__all__ = ["client_handshake", "server_handshake"]

#: Bytes asked of the stream per read during the handshake.
RECEIVE_SIZE = 65536


async def client_handshake(stream: trio.abc.Stream, core: Core) -> None:
    """Send the request the core prepared and read the server's response.

    Returns once the connection is open; frames that arrived right behind the
    response are already parsed into ``core``.
    """
    await stream.send_all(b"".join(core.data_to_send()))
    while True:
        data = await stream.receive_some(RECEIVE_SIZE)
        if data:
            core.protocol.receive_data(data)
        else:
            core.protocol.receive_eof()
        if core.handshake_event():
            return
        if not data:
            raise HandshakeFailure("the server closed the connection during the handshake")


async def server_handshake(
    stream: trio.abc.Stream, core: Core, hooks: ServerHooks
) -> tuple[HandshakeError | None, bytes]:
    """Read the client's request and answer it.

    Returns ``(None, rest)`` once the connection is open, where ``rest`` is
    what the client sent after its request (frames it should not have sent
    before our 101, kept for after it), or ``(error, b"")`` when the request
    was answered with an HTTP error (by ``process_request``, the origin
    check, or the core's validation). Raises :class:`HandshakeFailure` when
    no valid request came (the core's 400, 414 or 431 answer, if any, is
    written first).
    """
    tail = b""  # the last bytes seen, to find a request end split over reads
    rest = b""
    while True:
        data = await stream.receive_some(RECEIVE_SIZE)
        if data:
            # Feed the core the request only: it would act on frames behind
            # it (answer a ping, record a Close) before we sent the 101.
            probe = tail + data
            end = probe.find(b"\r\n\r\n")
            if end >= 0:
                cut = end + 4 - len(tail)
                data, rest = data[:cut], bytes(data[cut:])
            tail = probe[-3:]
            core.protocol.receive_data(data)
        else:
            core.protocol.receive_eof()
        try:
            done = core.handshake_event()
        except HandshakeFailure:
            # The core's 414 or 431; for anything else it only closes, so
            # answer 400 ourselves: the client learns why.
            reply = b"".join(core.data_to_send())
            await stream.send_all(reply or core.bad_request_reply())
            raise
        if done:
            break
        if not data:
            raise HandshakeFailure("the client closed the connection during the handshake")
        if rest:  # a complete head the core did not take as a request
            raise HandshakeFailure("invalid handshake request")
    request = core.request
    assert request is not None
    response = await hooks.process_request(request)
    if response is not None:
        core.reject(response)
        await _write_reply(stream, core)
        return HandshakeError(
            f"the handshake was rejected with HTTP {response.status}",
            status=response.status, headers=response.headers, body=response.body,
        ), b""

    def select(offered: Sequence[str]) -> str | None:
        return hooks.select_subprotocol(request, offered)

    accepted = core.accept(select, hooks.response_headers)
    await _write_reply(stream, core)
    if not accepted:
        return HandshakeError(f"invalid handshake request: {core.protocol.handshake_exc}"), b""
    return None, rest


async def _write_reply(stream: trio.abc.Stream, core: Core) -> None:
    data = b"".join(core.data_to_send())
    if data:
        await stream.send_all(data)
