"""Every core (issue 15, item 1): serve(..., reuse_port=True), and the CLI's
``serve --workers N``: both workers answer, signals shut them down with 1001,
a worker that dies stops the others and the command exits non-zero."""

from __future__ import annotations

import contextlib
import errno
import json
import os
import re
import signal
import socket
import subprocess
import sys
from collections.abc import AsyncIterator

import pytest
import trio
import trio.testing

import wsstream
from tests.server_support import (
    Stoppable,
    echo,
    port_of,
    proc_net_available,
    process_ended,
    serving_pid,
    wait_exited,
)

needs_reuse_port = pytest.mark.skipif(
    not hasattr(socket, "SO_REUSEPORT") or sys.platform != "linux",
    reason="the kernel spreads connections between SO_REUSEPORT sockets on Linux",
)

#: Connections tried before concluding that the kernel does not spread them:
#: Linux picks a socket by a hash of the client's port, so the chance that
#: all of them go to one of two sockets is 2**-63.
ATTEMPTS = 64


@needs_reuse_port
async def test_two_servers_share_a_port_and_both_accept(nursery: trio.Nursery) -> None:
    served: list[str] = []

    def handler_of(name: str):  # type: ignore[no-untyped-def]
        async def handler(wss: wsstream.WebSocketStream) -> None:
            served.append(name)
            await echo(wss)

        return handler

    first = await Stoppable(nursery).start(
        wsstream.serve, handler_of("a"), "127.0.0.1", 0, reuse_port=True
    )
    port = port_of(first)
    second = await Stoppable(nursery).start(
        wsstream.serve, handler_of("b"), "127.0.0.1", port, reuse_port=True
    )
    assert port_of(second) == port
    for _ in range(ATTEMPTS):
        async with wsstream.WebSocketStream(f"ws://127.0.0.1:{port}/") as wss:
            readable, writable, *_ = await wss.opened
            await writable.send("which?")
            assert await readable.receive() == "which?"
        if set(served) == {"a", "b"}:
            break
    assert set(served) == {"a", "b"}


async def test_without_reuse_port_the_second_server_cannot_listen(
    nursery: trio.Nursery,
) -> None:
    first = await Stoppable(nursery).start(wsstream.serve, echo, "127.0.0.1", 0)
    with pytest.raises(OSError, match=r"cannot listen on 127\.0\.0\.1:") as caught:
        await wsstream.serve(echo, "127.0.0.1", port_of(first), reuse_port=True)
    assert caught.value.errno == errno.EADDRINUSE


async def test_where_the_system_has_no_so_reuseport_it_is_an_oserror(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delattr(socket, "SO_REUSEPORT", raising=False)
    with pytest.raises(OSError, match="SO_REUSEPORT") as caught:
        await wsstream.serve(echo, "127.0.0.1", 0, reuse_port=True)
    assert caught.value.errno == errno.ENOPROTOOPT


async def test_reuse_port_must_be_a_bool() -> None:
    with pytest.raises(TypeError, match="reuse_port"):
        await wsstream.serve(echo, "127.0.0.1", 0, reuse_port="yes")  # type: ignore[arg-type]


# -- serve --workers --------------------------------------------------------------


class Workers:
    """``python -m wsstream serve --workers N`` in a child process."""

    def __init__(self, process: trio.Process, pids: list[int], port: int) -> None:
        self.process = process
        self.pids = pids
        self.port = port
        self.url = f"ws://127.0.0.1:{port}/"

    async def stderr(self) -> str:
        assert self.process.stderr is not None
        data = b""
        with trio.move_on_after(20):
            while chunk := await self.process.stderr.receive_some(4096):
                data += chunk
        return data.decode()


@pytest.fixture
async def workers() -> AsyncIterator[Workers]:
    process = await trio.lowlevel.open_process(
        [sys.executable, "-m", "wsstream", "serve", "--workers", "2", "--no-compression",
         "127.0.0.1", "0"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )
    try:
        assert process.stdout is not None
        text = ""
        with trio.fail_after(30):
            while text.count("\n") < 2:
                chunk = await process.stdout.receive_some(4096)
                assert chunk, "the command exited before its workers listened"
                text += chunk.decode()
        lines = text.splitlines()
        prefix = "echo server listening on ws://127.0.0.1:"
        assert all(line.startswith(prefix) for line in lines), text
        ports = {int(line.split(":")[2].split("/")[0]) for line in lines}
        pids = [int(line.rsplit("(worker ", 1)[1].rstrip(")")) for line in lines]
        assert len(ports) == 1 and len(set(pids)) == 2
        yield Workers(process, pids, ports.pop())
    finally:
        # Whatever the test did: no process outlives it.
        with trio.CancelScope(shield=True):
            process.kill()
            await process.wait()
            for pid in _live(text):
                os.kill(pid, signal.SIGKILL)


def _live(text: str) -> list[int]:
    pids = [int(line.rsplit("(worker ", 1)[1].rstrip(")"))
            for line in text.splitlines() if "(worker " in line]
    return [pid for pid in pids if not process_ended(pid)]


async def clients_on_both(
    stack: list[wsstream.WebSocketStream], nursery: trio.Nursery, workers: Workers
) -> dict[int, list[wsstream.WebSocketStream]]:
    """Open clients until each worker serves at least one; by worker pid."""
    by_worker: dict[int, list[wsstream.WebSocketStream]] = {}
    for _ in range(ATTEMPTS):
        wss = wsstream.WebSocketStream(workers.url, close_timeout=20)
        await nursery.start(_hold, wss)
        stack.append(wss)
        readable, writable, *_ = await wss.opened
        await writable.send("echo?")
        assert await readable.receive() == "echo?"
        stream = wss._conn.stream
        assert isinstance(stream, trio.SocketStream)
        pid = serving_pid(stream.socket.getsockname()[1], workers.pids)
        assert pid is not None
        by_worker.setdefault(pid, []).append(wss)
        if len(by_worker) == 2:
            break
    assert set(by_worker) == set(workers.pids)
    return by_worker


async def _hold(wss: wsstream.WebSocketStream, task_status: trio.TaskStatus[None]) -> None:
    """Keep ``wss`` open (its ``async with``) until the server closes it."""
    async with wss:
        task_status.started()
        with contextlib.suppress(wsstream.WebSocketError):
            await wss.closed


needs_proc = pytest.mark.skipif(
    not proc_net_available(), reason="needs /proc to tell which worker serves a connection"
)


@needs_reuse_port
@needs_proc
@pytest.mark.parametrize(("signum", "status"), [(signal.SIGTERM, 0), (signal.SIGINT, 130)])
async def test_both_workers_answer_and_a_signal_closes_every_client_with_1001(
    nursery: trio.Nursery, workers: Workers, signum: int, status: int
) -> None:
    clients: list[wsstream.WebSocketStream] = []
    await clients_on_both(clients, nursery, workers)
    workers.process.send_signal(signum)
    for wss in clients:
        with trio.fail_after(30):
            assert (await wss.closed).close_code == 1001
    with trio.fail_after(30):
        assert await workers.process.wait() == status
    assert await workers.stderr() == ""
    with trio.fail_after(30):
        for pid in workers.pids:
            await wait_exited(pid)


@needs_reuse_port
@needs_proc
async def test_a_killed_worker_stops_the_others_and_the_command_fails(
    nursery: trio.Nursery, workers: Workers
) -> None:
    clients: list[wsstream.WebSocketStream] = []
    by_worker = await clients_on_both(clients, nursery, workers)
    victim, survivor = workers.pids
    os.kill(victim, signal.SIGKILL)
    with trio.fail_after(30):
        for wss in by_worker[survivor]:
            assert (await wss.closed).close_code == 1001
        for wss in by_worker[victim]:
            with pytest.raises(wsstream.WebSocketError) as caught:
                await wss.closed
            assert caught.value.close_code == 1006
        assert await workers.process.wait() == 1
    # Workers are numbered in the order they were started, which need not
    # be the order in which they printed their lines.
    assert re.search(
        rf"^wsstream: worker [12] \(pid {victim}\) was killed by SIGKILL; stopping the others$",
        await workers.stderr(), re.MULTILINE,
    )
    with trio.fail_after(30):
        for pid in workers.pids:
            await wait_exited(pid)


@needs_reuse_port
async def test_workers_leave_when_the_command_is_killed(workers: Workers) -> None:
    # SIGKILL gives the supervisor no chance: the workers see their stdin
    # pipe end, and shut down by themselves.
    workers.process.kill()
    await workers.process.wait()
    with trio.fail_after(30):
        for pid in workers.pids:
            await wait_exited(pid)


@pytest.mark.parametrize(
    ("args", "shown"),
    [
        (("--workers", "0", "0"), "argument --workers"),
        (("--workers", "x", "0"), "argument --workers"),
    ],
)
async def test_bad_worker_counts_are_usage_errors(args: tuple[str, ...], shown: str) -> None:
    result = await trio.run_process(
        [sys.executable, "-m", "wsstream", "serve", *args],
        capture_stdout=True, capture_stderr=True, check=False,
    )
    assert result.returncode == 2
    assert shown in result.stderr.decode()


@needs_reuse_port
async def test_a_worker_that_cannot_listen_makes_the_command_fail(
    nursery: trio.Nursery,
) -> None:
    # The port is taken by a server without SO_REUSEPORT: no worker can bind.
    taken = await Stoppable(nursery).start(wsstream.serve, echo, "127.0.0.1", 0)
    with trio.fail_after(60):
        result = await trio.run_process(
            [sys.executable, "-m", "wsstream", "serve", "--workers", "2", "127.0.0.1",
             str(port_of(taken))],
            capture_stdout=True, capture_stderr=True, check=False,
        )
    assert result.returncode == 1
    err = result.stderr.decode()
    assert "address already in use" in err
    assert "exited with status 1" in err


@needs_reuse_port
@needs_proc
@pytest.mark.slow
async def test_the_workers_benchmark_runs() -> None:
    # Correctness only: every measurement completed; no timing is asserted.
    with trio.fail_after(300):
        result = await trio.run_process(
            [sys.executable, "-m", "benchmarks.workers", "--quick", "--json"],
            capture_stdout=True, capture_stderr=True, check=False,
        )
    assert result.returncode == 0, result.stderr.decode()
    summary = json.loads(result.stdout)["summary"]
    assert set(summary) == {"echo-1", "echo-2", "connect-1", "connect-2"}
    assert all(row["per_second"] > 0 for row in summary.values())
    assert len(summary["echo-2"]["worker_core_share"]) == 2
