"""The supervisor of ``serve --workers`` in this process, with stand-in
workers: signals forwarded, a death reported and the others stopped, a
worker that does not stop killed (issue 15, item 1)."""

from __future__ import annotations

import os
import re
import signal
import socket
import sys
from pathlib import Path

import pytest
import trio

import wsstream
from tests.server_support import Stoppable, echo, port_of
from wsstream._cli import workers as _workers

pytestmark = pytest.mark.skipif(
    not hasattr(socket, "SO_REUSEPORT") or not hasattr(os, "mkfifo"), reason="POSIX only"
)

#: A stand-in worker: exits 0 on SIGTERM and 130 on SIGINT, like the real
#: one, says it is ready (its handlers installed) on the FIFO, then waits.
WORKER = """
import os, signal, sys
signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
signal.signal(signal.SIGINT, lambda *_: sys.exit(130))
if sys.argv[2] == "ignore-term":
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
if sys.argv[2] == "fail":
    sys.exit(3)
with open(sys.argv[1], "w") as fifo:
    fifo.write(f"{os.getpid()}\\n")
sys.stdin.read()
"""


class Supervisor:
    def __init__(self, tmp_path: Path) -> None:
        self.fifo = str(tmp_path / "ready")
        os.mkfifo(self.fifo)
        self.reports: list[str] = []
        self.status: int | None = None

    def command(self, behaviour: str = "normal") -> list[str]:
        return [sys.executable, "-c", WORKER, self.fifo, behaviour]

    async def run(self, command: list[str], workers: int) -> None:
        self.status = await _workers._supervise(command, workers, self.reports.append)

    async def wait_ready(self, workers: int) -> list[int]:
        """Until ``workers`` stand-ins have said they are ready; their pids."""
        fd = os.open(self.fifo, os.O_RDONLY | os.O_NONBLOCK)
        # Keep a writer of our own, so that a worker closing its end is no EOF.
        keep = os.open(self.fifo, os.O_WRONLY | os.O_NONBLOCK)
        try:
            async with trio.lowlevel.FdStream(fd) as stream:
                text = b""
                with trio.fail_after(30):
                    while text.count(b"\n") < workers:
                        text += await stream.receive_some()
        finally:
            os.close(keep)
        return [int(line) for line in text.split()]


@pytest.mark.parametrize(("signum", "status"), [(signal.SIGTERM, 0), (signal.SIGINT, 130)])
async def test_a_signal_is_forwarded_and_the_status_is_one_process(
    tmp_path: Path, signum: int, status: int
) -> None:
    supervisor = Supervisor(tmp_path)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(supervisor.run, supervisor.command(), 2)
        await supervisor.wait_ready(2)
        os.kill(os.getpid(), signum)  # what the supervisor would receive
    assert supervisor.status == status
    assert supervisor.reports == []


async def test_a_worker_that_dies_stops_the_others_and_fails(tmp_path: Path) -> None:
    supervisor = Supervisor(tmp_path)
    command = supervisor.command()
    # Worker 1 and 2 wait; then one of them is killed from outside.
    async with trio.open_nursery() as nursery:
        nursery.start_soon(supervisor.run, command, 2)
        victim = (await supervisor.wait_ready(2))[0]
        os.kill(victim, signal.SIGKILL)
    assert supervisor.status == 1
    assert len(supervisor.reports) == 1
    assert re.fullmatch(
        rf"worker [12] \(pid {victim}\) was killed by SIGKILL; stopping the others",
        supervisor.reports[0],
    )


async def test_a_worker_that_fails_at_once_is_reported(tmp_path: Path) -> None:
    supervisor = Supervisor(tmp_path)
    with trio.fail_after(30):
        await supervisor.run(supervisor.command("fail"), 1)
    assert supervisor.status == 1
    assert len(supervisor.reports) == 1
    assert re.fullmatch(
        r"worker 1 \(pid \d+\) exited with status 3; no worker left", supervisor.reports[0]
    )


async def test_a_worker_that_does_not_stop_is_killed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_workers, "STOP_TIMEOUT", 0.5)
    supervisor = Supervisor(tmp_path)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(supervisor.run, supervisor.command("ignore-term"), 1)
        await supervisor.wait_ready(1)
        os.kill(os.getpid(), signal.SIGTERM)
    assert supervisor.status == 1
    assert len(supervisor.reports) == 1
    assert "did not stop within 0.5 s: killing it" in supervisor.reports[0]


def test_ended_says_how_a_process_ended() -> None:
    assert _workers._ended(None) == "is still running"
    assert _workers._ended(0) == "exited with status 0"
    assert _workers._ended(2) == "exited with status 2"
    assert _workers._ended(-signal.SIGKILL) == "was killed by SIGKILL"


async def test_port_0_is_one_free_port_the_workers_can_share(nursery: trio.Nursery) -> None:
    reservation, port = _workers._reserve_port("127.0.0.1")
    try:
        assert port > 0
        listeners = await Stoppable(nursery).start(
            wsstream.serve, echo, "127.0.0.1", port, reuse_port=True
        )
        assert port_of(listeners) == port
        async with wsstream.WebSocketStream(f"ws://127.0.0.1:{port}/") as wss:
            await wss.opened  # the reservation never takes a connection
    finally:
        reservation.close()
