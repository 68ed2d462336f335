"""serve_unix: a WebSocket server on a Unix socket, and its socket file
(issue 14, item 2): created, a stale one removed, anything else refused,
mode, removed on exit; the CLI's ``serve --unix``."""

from __future__ import annotations

import errno
import os
import signal
import socket
import stat
import subprocess
import sys
from pathlib import Path

import pytest
import trio

import wsstream
from tests.server_support import Stoppable, echo, start

pytestmark = pytest.mark.skipif(not hasattr(socket, "AF_UNIX"), reason="no Unix sockets")


async def connect(path: str | Path, url: str = "ws://localhost/chat") -> wsstream.WebSocketStream:
    return wsstream.WebSocketStream(url, stream=await trio.open_unix_socket(str(path)))


async def test_a_client_over_a_unix_socket_is_served(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    path = tmp_path / "ws.sock"
    seen: list[tuple[object, str, str]] = []

    async def handler(wss: wsstream.WebSocketStream) -> None:
        seen.append((wss.remote_address, wss.request.path, wss.url))
        await echo(wss)

    listeners = await start(nursery, wsstream.serve_unix, handler, path)
    assert len(listeners) == 1 and isinstance(listeners[0], trio.SocketListener)
    assert stat.S_ISSOCK(os.lstat(path).st_mode)
    async with await connect(path, "ws://app.example/chat?room=1") as wss:
        readable, writable, *_ = await wss.opened
        await writable.send("hello")
        assert await readable.receive() == "hello"
    # An unnamed client socket: the address the system gives is "" on Linux.
    address = seen[0][0]
    assert address in ("", None) or isinstance(address, (str, bytes))
    if sys.platform == "linux":
        assert address == ""
    assert seen[0][1:] == ("/chat?room=1", "ws://app.example/chat?room=1")


async def test_cancelling_closes_with_1001_and_removes_the_file(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    path = tmp_path / "ws.sock"
    server = Stoppable(nursery)
    await server.start(wsstream.serve_unix, echo, str(path))
    async with await connect(path) as wss:
        await wss.opened
        server.scope.cancel()
        assert (await wss.closed).close_code == 1001
    await server.done.wait()
    assert not path.exists()


async def test_a_stale_socket_file_is_removed(nursery: trio.Nursery, tmp_path: Path) -> None:
    path = tmp_path / "ws.sock"
    # A server that died without removing its socket: bound, never unlinked.
    dead = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    dead.bind(str(path))
    dead.close()
    assert stat.S_ISSOCK(os.lstat(path).st_mode)
    await start(nursery, wsstream.serve_unix, echo, path)
    async with await connect(path) as wss:
        readable, writable, *_ = await wss.opened
        await writable.send(b"\x00\x01")
        assert await readable.receive() == b"\x00\x01"


async def test_a_socket_a_server_listens_on_is_not_taken(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    path = tmp_path / "ws.sock"
    await start(nursery, wsstream.serve_unix, echo, path)
    inode = os.lstat(path).st_ino
    with pytest.raises(OSError, match="address already in use") as caught:
        await start(nursery, wsstream.serve_unix, echo, path)
    assert caught.value.errno == errno.EADDRINUSE
    assert str(path) in str(caught.value)
    # The first server's file and service are untouched.
    assert os.lstat(path).st_ino == inode
    async with await connect(path) as wss:
        await wss.opened


@pytest.mark.parametrize("kind", ["file", "directory", "symlink"])
async def test_what_is_not_a_socket_is_never_removed(
    nursery: trio.Nursery, tmp_path: Path, kind: str
) -> None:
    path = tmp_path / "ws.sock"
    if kind == "file":
        path.write_text("precious")
    elif kind == "directory":
        path.mkdir()
    else:
        # A link to a stale socket: the link is not a socket, and stays.
        target = tmp_path / "target.sock"
        dead = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        dead.bind(str(target))
        dead.close()
        path.symlink_to(target)
    with pytest.raises(FileExistsError, match="not a socket") as caught:
        await start(nursery, wsstream.serve_unix, echo, path)
    assert caught.value.errno == errno.EEXIST
    if kind == "file":
        assert path.read_text() == "precious"
    elif kind == "directory":
        assert path.is_dir()
    else:
        assert path.is_symlink()


@pytest.mark.parametrize("mode", [0o600, 0o660, 0o666])
async def test_mode_sets_the_permissions_of_the_socket_file(
    nursery: trio.Nursery, tmp_path: Path, mode: int
) -> None:
    path = tmp_path / "ws.sock"
    await start(nursery, wsstream.serve_unix, echo, path, mode=mode)
    assert stat.S_IMODE(os.lstat(path).st_mode) == mode
    async with await connect(path) as wss:
        await wss.opened


async def test_a_file_that_took_the_place_of_ours_is_not_removed(tmp_path: Path) -> None:
    path = tmp_path / "ws.sock"
    async with trio.open_nursery() as nursery:
        await start(nursery, wsstream.serve_unix, echo, path)
        path.unlink()
        path.write_text("someone else's")
        nursery.cancel_scope.cancel()
    assert path.read_text() == "someone else's"


async def test_the_file_is_removed_when_the_server_fails(tmp_path: Path) -> None:
    path = tmp_path / "ws.sock"

    class Boom(Exception):
        pass

    async def fail_later(task_status: trio.TaskStatus[None]) -> None:
        task_status.started()
        raise Boom

    with pytest.RaisesGroup(Boom, flatten_subgroups=True):
        async with trio.open_nursery() as nursery:
            await start(nursery, wsstream.serve_unix, echo, path)
            await nursery.start(fail_later)
    assert not path.exists()


@pytest.mark.skipif(sys.platform != "linux", reason="abstract sockets are Linux's")
async def test_an_abstract_socket_has_no_file(nursery: trio.Nursery) -> None:
    name = f"\0wsstream-test-{os.getpid()}-{os.urandom(4).hex()}"
    await start(nursery, wsstream.serve_unix, echo, name)
    async with await connect(name) as wss:
        await wss.opened
    with pytest.raises(ValueError, match="abstract"):
        await start(nursery, wsstream.serve_unix, echo, name, mode=0o600)


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"path": 3}, TypeError),
        ({"path": ""}, ValueError),
        ({"path": "a\0b"}, ValueError),
        ({"mode": "0o600"}, TypeError),
        ({"mode": True}, TypeError),
        ({"mode": 0o10000}, ValueError),
        ({"backlog": -1}, ValueError),
        ({"max_connections": 0}, ValueError),
        ({"ping_interval": "1"}, TypeError),
        ({"no_such_option": 1}, TypeError),
    ],
)
async def test_bad_arguments_raise_before_anything_is_created(
    tmp_path: Path, kwargs: dict[str, object], error: type[Exception]
) -> None:
    arguments: dict[str, object] = {"path": tmp_path / "ws.sock", **kwargs}
    path = arguments.pop("path")
    with pytest.raises(error):
        await wsstream.serve_unix(echo, path, **arguments)  # type: ignore[arg-type]
    assert os.listdir(tmp_path) == []


async def test_a_path_in_a_missing_directory_names_the_path(tmp_path: Path) -> None:
    path = tmp_path / "missing" / "ws.sock"
    with pytest.raises(FileNotFoundError, match=f"cannot listen on {path}"):
        await wsstream.serve_unix(echo, path)


# -- the command line -------------------------------------------------------------


async def test_cli_serve_unix_echoes_and_removes_its_file_on_sigterm(tmp_path: Path) -> None:
    path = tmp_path / "cli.sock"
    process = await trio.lowlevel.open_process(
        [sys.executable, "-m", "wsstream", "serve", "--unix", str(path)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )
    try:
        assert process.stdout is not None
        with trio.fail_after(20):
            line = await process.stdout.receive_some(4096)
        assert line.decode().startswith(f"echo server listening on {path}"), line
        async with await connect(path) as wss:
            readable, writable, *_ = await wss.opened
            await writable.send("over a Unix socket")
            assert await readable.receive() == "over a Unix socket"
            process.send_signal(signal.SIGTERM)
            assert (await wss.closed).close_code == 1001
        with trio.fail_after(20):
            assert await process.wait() == 0
        assert not path.exists()
    finally:
        process.kill()
        await process.wait()


@pytest.mark.parametrize(
    ("args", "shown"),
    [
        (("--unix", "/tmp/x.sock", "8765"), "argument --unix"),
        (("--unix", "/tmp/x.sock", "--workers", "2"), "argument --workers"),
        (("--unix", "/tmp/x.sock", "--reuse-port"), "argument --reuse-port"),
        (("--unix", "/tmp/x.sock", "--certfile", "c.pem"), "argument --certfile"),
    ],
)
async def test_cli_unix_is_one_process_with_no_port(args: tuple[str, ...], shown: str) -> None:
    result = await trio.run_process(
        [sys.executable, "-m", "wsstream", "serve", *args],
        capture_stdout=True, capture_stderr=True, check=False,
    )
    assert result.returncode == 2
    assert shown in result.stderr.decode()
