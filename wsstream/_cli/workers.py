"""``python -m wsstream serve --workers N``: N server processes on one port.

Theory of operation
-------------------
The command becomes a supervisor that serves nothing itself. It starts N
copies of the server (``serve --worker``), each listening on the same port
with ``SO_REUSEPORT``, so that the kernel spreads connections between them.
Then it waits for two kinds of events, and only those:

* a signal (SIGINT, SIGTERM): forwarded to every worker, which closes its
  connections with 1001 and exits; the supervisor exits once all have,
  with the status one process would have had (130 after SIGINT, 0 after
  SIGTERM), or 1 if one of them did not stop as asked;
* a worker that exits when nobody asked it to (a crash, a kill, a failure
  to listen): reported, the others get SIGTERM, and the supervisor exits
  with 1 once they have stopped. Nothing is restarted: a service manager
  that restarts the whole is clearer than a supervisor that hides crashes.

Every wait for workers to stop is bounded (:data:`STOP_TIMEOUT`); a worker
still running then is killed and reported.

Workers run in sessions of their own, so that a terminal's Ctrl-C reaches
the supervisor alone and each worker gets exactly one signal, from it. Each
worker's stdin is a pipe from the supervisor, which never writes to it: when
the supervisor dies, however it dies, the pipe's end tells each worker to
shut down gracefully, so that none outlives it.

Port 0 means one free port for all: the supervisor binds a socket with
``SO_REUSEPORT`` to the address to learn a free port, and keeps it bound
(never listening, so it takes no connections) while the workers bind the
same port.

Messages go through ``report``, a function of the command line's: the
library never prints.
"""

from __future__ import annotations

import math
import signal
import socket
import subprocess
from collections.abc import Callable

import trio

from .._endpoints.neterrors import with_address

__all__ = ["STOP_TIMEOUT", "supervise"]

#: How long workers get to stop after a signal or after one of them died:
#: the server's close_timeout (10 s) for the 1001 closes, and 5 s for the
#: process to start and end.
STOP_TIMEOUT = 15.0

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_INTERRUPTED = 130


def supervise(
    command_for: Callable[[int], list[str]],
    workers: int,
    host: str,
    port: int,
    report: Callable[[str], None],
) -> int:
    """Run ``workers`` processes ``command_for(port)`` until a signal or a
    death; returns the exit status. Raises :class:`OSError` if port 0
    cannot be given a free port."""
    reservation = None
    if port == 0:
        reservation, port = _reserve_port(host)
    try:
        status: int = trio.run(_supervise, command_for(port), workers, report)
        return status
    finally:
        if reservation is not None:
            reservation.close()


def _reserve_port(host: str) -> tuple[socket.socket, int]:
    """A socket bound (with SO_REUSEPORT, not listening) to a free port of
    ``host``, and that port."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host, 0, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
        sock = socket.socket(family, kind, proto)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            sock.bind(address)
        except BaseException:
            sock.close()
            raise
    except OSError as exc:
        raise with_address(exc, host, 0, "cannot listen on")  # noqa: B904 (its cause is set)
    return sock, sock.getsockname()[1]


def _ended(code: int | None) -> str:
    if code is None:
        return "is still running"
    if code < 0:
        try:
            return f"was killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"was killed by signal {-code}"
    return f"exited with status {code}"


async def _supervise(command: list[str], workers: int, report: Callable[[str], None]) -> int:
    events_in, events = trio.open_memory_channel[tuple[int, trio.Process | None]](math.inf)
    procs: list[trio.Process] = []
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        # Signals that come while the workers start wait in the receiver.
        for _ in range(workers):
            procs.append(await trio.lowlevel.open_process(
                command, stdin=subprocess.PIPE, start_new_session=True
            ))

        async def wait_for(proc: trio.Process) -> None:
            await proc.wait()
            events_in.send_nowait((0, proc))

        async def receive_signals() -> None:
            async for signum in signals:
                events_in.send_nowait((signum, None))

        async with trio.open_nursery() as nursery:
            for proc in procs:
                nursery.start_soon(wait_for, proc)
            nursery.start_soon(receive_signals)
            status = await _watch(procs, events, report)
            nursery.cancel_scope.cancel()
    return status


async def _watch(
    procs: list[trio.Process],
    events: trio.MemoryReceiveChannel[tuple[int, trio.Process | None]],
    report: Callable[[str], None],
) -> int:
    """React to signals and exits until every worker has ended."""
    number = {proc: i for i, proc in enumerate(procs, 1)}
    running = set(procs)
    stopping = trio.CancelScope()  # its deadline is set when stopping starts
    status: int | None = None  # None until the stop was asked for
    expected: tuple[int, ...] = ()

    def stop(signum: int) -> None:
        for proc in running:
            # A worker may have ended since its exit was queued: harmless.
            proc.send_signal(signum)
        if stopping.deadline == math.inf:
            stopping.deadline = trio.current_time() + STOP_TIMEOUT

    with stopping:
        while running:
            signum, ended = await events.receive()
            if ended is None:
                # A signal: forwarded to all (again, for a second one).
                if status is None:
                    status = EXIT_INTERRUPTED if signum == signal.SIGINT else EXIT_OK
                    expected = (status,)
                stop(signum)
                continue
            running.discard(ended)
            code = ended.returncode
            if status is None:
                report(
                    f"worker {number[ended]} (pid {ended.pid}) {_ended(code)}; "
                    + ("stopping the others" if running else "no worker left")
                )
                status, expected = EXIT_ERROR, (EXIT_OK,)
                stop(signal.SIGTERM)
            elif code not in expected:
                report(f"worker {number[ended]} (pid {ended.pid}) {_ended(code)} while stopping")
                status = EXIT_ERROR
    if running:
        for proc in sorted(running, key=number.__getitem__):
            report(
                f"worker {number[proc]} (pid {proc.pid}) did not stop within "
                f"{STOP_TIMEOUT:g} s: killing it"
            )
            proc.kill()
        with trio.CancelScope(shield=True):
            for proc in running:
                await proc.wait()
        status = EXIT_ERROR
    assert status is not None
    return status
