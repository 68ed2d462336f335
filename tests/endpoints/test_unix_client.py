"""The client over a Unix socket (``unix_socket_path=``): the URL still gives
Host, the path and the scheme (TLS over the socket for wss://). The server
side is ``serve_stream`` over each accepted Unix stream."""

from __future__ import annotations

import os
import socket
import ssl
from collections.abc import Callable
from pathlib import Path

import pytest
import trio
import trustme

import wsstream
from tests.conftest import Handler
from tests.tools.test_cli import cli

pytestmark = pytest.mark.skipif(not hasattr(socket, "AF_UNIX"), reason="no Unix sockets")


async def serve_unix_socket(
    path: Path,
    handler: Handler,
    wrap: Callable[[trio.SocketStream], trio.abc.Stream] | None = None,
    *,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
    **options: object,
) -> None:
    """Accept on a Unix socket at ``path``; ``serve_stream`` for each."""
    sock = trio.socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    await sock.bind(str(path))
    sock.listen()
    listener = trio.SocketListener(sock)

    async def one(stream: trio.SocketStream) -> None:
        given: trio.abc.Stream = stream if wrap is None else wrap(stream)
        await wsstream.serve_stream(handler, given, secure=wrap is not None, **options)  # type: ignore[arg-type]

    await trio.serve_listeners(one, [listener], task_status=task_status)


@pytest.fixture
def socket_path(tmp_path: Path) -> Path:
    # Unix socket paths are short (108 bytes): pytest's tmp_path may be long.
    path = tmp_path / "ws.sock"
    if len(os.fsencode(path)) > 100:
        pytest.skip("the temporary directory's path is too long for a Unix socket")
    return path


async def report_request(wss: wsstream.WebSocketStream) -> None:
    readable, writable, *_ = await wss.opened
    assert wss.request is not None
    await writable.send(f"{wss.request.path} {wss.request.headers['Host']} {wss.url}")
    async for message in readable:
        await writable.send(message)


async def test_ws_over_a_unix_socket_with_the_urls_host_and_path(
    nursery: trio.Nursery, socket_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    await nursery.start(serve_unix_socket, socket_path, report_request)
    # The environment's proxy is not used for a Unix socket (proxy=True).
    monkeypatch.setenv("http_proxy", "http://127.0.0.1:9")
    async with wsstream.WebSocketStream(
        "ws://app.internal/feed?since=5", unix_socket_path=socket_path
    ) as wss:
        readable, writable, *_ = await wss.opened
        assert await readable.receive() == "/feed?since=5 app.internal ws://app.internal/feed?since=5"
        assert wss.remote_address == str(socket_path)
        await writable.send(b"\x01" * 100_000)
        assert await readable.receive() == b"\x01" * 100_000
        wss.close(1000)
        assert (await wss.closed).close_code == 1000


async def test_wss_is_tls_over_the_unix_socket_checked_against_the_urls_host(
    nursery: trio.Nursery, socket_path: Path
) -> None:
    ca = trustme.CA()
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("app.internal").configure_cert(server_context)
    client_context = ssl.create_default_context()
    ca.configure_trust(client_context)

    def tls(stream: trio.SocketStream) -> trio.abc.Stream:
        return trio.SSLStream(stream, server_context, server_side=True)

    await nursery.start(serve_unix_socket, socket_path, report_request, tls)
    async with wsstream.WebSocketStream(
        "wss://app.internal:8443/secure", unix_socket_path=str(socket_path),
        ssl_context=client_context,
    ) as wss:
        readable, *_ = await wss.opened
        assert await readable.receive() == (
            "/secure app.internal:8443 wss://app.internal:8443/secure"
        )
    # Another name than the certificate's fails TLS, naming host and port.
    async with wsstream.WebSocketStream(
        "wss://other.internal/", unix_socket_path=socket_path, ssl_context=client_context
    ) as wss:
        with pytest.raises(wsstream.HandshakeError) as info:
            await wss.opened
    assert "TLS with other.internal:443 failed" in info.value.message
    assert info.value.proxy is None


async def test_a_missing_socket_names_its_path(tmp_path: Path) -> None:
    path = tmp_path / "missing.sock"
    async with wsstream.WebSocketStream("ws://app/", unix_socket_path=path) as wss:
        with pytest.raises(wsstream.HandshakeError) as info:
            await wss.opened
    assert info.value.message == (
        f"could not connect: unix socket {path}: no such file or directory"
    )
    assert isinstance(info.value.__cause__, FileNotFoundError)
    assert info.value.__cause__.errno is not None


async def test_a_socket_nobody_listens_on_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "stale.sock"
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(str(path))
    stale.close()  # the file stays, nobody listens
    async with wsstream.WebSocketStream("ws://app/", unix_socket_path=path) as wss:
        with pytest.raises(wsstream.HandshakeError) as info:
            await wss.opened
    assert isinstance(info.value.__cause__, ConnectionRefusedError)
    assert f"unix socket {path}: connection refused" in info.value.message


async def test_the_classic_websocket_over_a_unix_socket(
    nursery: trio.Nursery, socket_path: Path
) -> None:
    await nursery.start(serve_unix_socket, socket_path, report_request)
    async with wsstream.WebSocket("ws://app/x", unix_socket_path=socket_path) as ws:
        async for event in ws.events():
            if isinstance(event, wsstream.MessageEvent):
                assert event.data == "/x app ws://app/x"
                ws.close()
            elif isinstance(event, wsstream.CloseEvent):
                break


async def test_connect_forever_over_a_unix_socket(
    nursery: trio.Nursery, socket_path: Path
) -> None:
    await nursery.start(serve_unix_socket, socket_path, report_request)
    seen: list[object] = []

    async def handler(wss: wsstream.WebSocketStream) -> None:
        readable, *_ = await wss.opened
        seen.append(await readable.receive())

    close = await wsstream.connect_forever(
        "ws://app/forever", handler, unix_socket_path=socket_path
    )
    assert seen == ["/forever app ws://app/forever"]
    assert close.close_code == 1000


async def test_cancelling_while_connecting_to_a_unix_socket(
    nursery: trio.Nursery, socket_path: Path
) -> None:
    # A listener that never accepts: connect() completes (the backlog), the
    # handshake waits; the block's cancellation ends it at once.
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.bind(str(socket_path))
    sock.listen(1)
    try:
        with trio.move_on_after(0.2) as scope:
            async with wsstream.WebSocketStream("ws://app/", unix_socket_path=socket_path) as wss:
                await wss.opened
        assert scope.cancelled_caught
    finally:
        sock.close()




async def test_cli_connect_over_a_unix_socket(nursery: trio.Nursery, socket_path: Path) -> None:
    await nursery.start(serve_unix_socket, socket_path, report_request)
    result = await cli("connect", "--unix", str(socket_path), "ws://app.internal/cli",
                       stdin=b"over unix\n")
    assert result.returncode == 0, result.stderr.decode()
    assert result.stdout.decode().splitlines() == [
        "/cli app.internal ws://app.internal/cli", "over unix",
    ]
