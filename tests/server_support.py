"""Helpers for the server tests: raw HTTP over a socket, servers started in a
nursery, and which process holds the server's end of a TCP connection."""

from __future__ import annotations

import functools
import os
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import trio

import wsstream

Handler = Callable[[wsstream.WebSocketStream], Awaitable[None]]

UPGRADE_REQUEST = (
    b"GET /chat HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
)


async def read_head(stream: trio.abc.Stream) -> bytes:
    """Read until the end of an HTTP head (or EOF); bounded by 10 s."""
    response = b""
    with trio.fail_after(10):
        while b"\r\n\r\n" not in response:
            chunk = await stream.receive_some(65536)
            if not chunk:
                break
            response += chunk
    return response


async def read_all(stream: trio.abc.Stream) -> bytes:
    """Everything until EOF; bounded by 10 s."""
    data = b""
    with trio.fail_after(10):
        while chunk := await stream.receive_some(65536):
            data += chunk
    return data


def head_headers(head: bytes) -> dict[str, list[str]]:
    """The header fields of an HTTP head, by lower-case name."""
    fields: dict[str, list[str]] = {}
    for line in head.split(b"\r\n\r\n")[0].split(b"\r\n")[1:]:
        name, _, value = line.decode("latin-1").partition(":")
        fields.setdefault(name.strip().lower(), []).append(value.strip())
    return fields


async def start(
    nursery: trio.Nursery, serve: Callable[..., Awaitable[Any]], *args: Any, **kwargs: Any
) -> Any:
    """``nursery.start(serve, *args, **kwargs)``."""
    return await nursery.start(functools.partial(serve, *args, **kwargs))


def port_of(listeners: list[trio.SocketListener]) -> int:
    port: int = listeners[0].socket.getsockname()[1]
    return port


async def echo(wss: wsstream.WebSocketStream) -> None:
    readable, writable, *_ = await wss.opened
    async for message in readable:
        await writable.send(message)


# -- which process serves a connection (Linux /proc) ---------------------------


def proc_net_available() -> bool:
    return Path("/proc/net/tcp").exists()


def _socket_inodes(pid: int) -> set[int]:
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(int(target[8:-1]))
    return inodes


def _tcp_by_inode() -> dict[int, tuple[int, int]]:
    """Every IPv4/IPv6 TCP socket of this network namespace by inode:
    (local port, remote port)."""
    found = {}
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        if not Path(table).exists():
            continue
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            local, remote, inode = fields[1], fields[2], int(fields[9])
            found[inode] = (int(local.rsplit(":", 1)[1], 16), int(remote.rsplit(":", 1)[1], 16))
    return found


def serving_pid(client_port: int, pids: list[int]) -> int | None:
    """Which of ``pids`` holds the server's end of the connection whose
    client side has the local port ``client_port``."""
    sockets = _tcp_by_inode()
    for pid in pids:
        for inode in _socket_inodes(pid):
            if sockets.get(inode, (0, 0))[1] == client_port:
                return pid
    return None


async def wait_exited(pid: int) -> None:
    """Wait until ``pid``, which need not be our child, has exited (Linux's
    pidfd becomes readable then)."""
    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        return
    try:
        await trio.lowlevel.wait_readable(fd)
    finally:
        os.close(fd)


def process_ended(pid: int) -> bool:
    """Whether ``pid`` has exited (gone, or a zombie nobody reaped)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return True
    return "\nState:\tZ" in status


class Stoppable:
    """A server run in its own cancel scope, so that a test can stop it
    (cancel it) and then watch, outside that scope, what clients see."""

    def __init__(self, nursery: trio.Nursery) -> None:
        self._nursery = nursery
        self.scope = trio.CancelScope()
        self.done = trio.Event()

    async def start(self, serve: Callable[..., Awaitable[Any]], *args: Any, **kwargs: Any) -> Any:
        async def run(task_status: trio.TaskStatus[Any]) -> None:
            try:
                with self.scope:
                    await serve(*args, task_status=task_status, **kwargs)
            finally:
                self.done.set()

        return await self._nursery.start(run)

    async def stop(self) -> None:
        """Cancel the server and wait until it has ended."""
        self.scope.cancel()
        await self.done.wait()
