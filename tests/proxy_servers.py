"""Real proxies for the tests, each on 127.0.0.1 with a configuration written
here: Debian's ``tinyproxy`` (HTTP CONNECT), ``microsocks`` (SOCKS5),
``danted`` from ``dante-server`` (SOCKS4/4a) and ``stunnel4`` (a TLS front,
which makes an ``https://`` proxy of tinyproxy).

A missing program skips the tests that need it, naming the Debian package;
under CI (``$CI`` set to a true value) it fails them instead, since
``.ci/run`` installs all four and CI must not lose these tests quietly.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

#: The credentials the proxies that want them are given: a password the
#: tests then look for in every log line and error message.
USER = "wsuser"
SECRET = "pw-Zq81x"

#: Debian's package for each program.
PACKAGES = {
    "tinyproxy": "tinyproxy",
    "microsocks": "microsocks",
    "danted": "dante-server",
    "stunnel4": "stunnel4",
}

STARTUP_TIMEOUT = 15.0


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def require(program: str) -> str:
    """The program's path; skips (fails under CI) without it."""
    found = shutil.which(program) or shutil.which(program, path="/usr/sbin:/sbin")
    if found is None:
        message = (
            f"{program} is not installed (apt-get install {PACKAGES[program]}; "
            ".ci/run installs it)"
        )
        if in_ci():
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    return found


def free_port() -> int:
    """A port nothing listens on now (the proxies cannot be given port 0)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Running:
    """A proxy process: its port, its log, stopped with its process group."""

    def __init__(self, name: str, command: list[str], port: int, log: Path) -> None:
        self.name = name
        self.port = port
        self.log = log
        with log.open("wb") as out:
            # A session of its own: danted forks children, killed with it.
            self.process = subprocess.Popen(
                command, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self._wait_listening()

    def _wait_listening(self) -> None:
        # An external program says it is ready by accepting connections:
        # there is no event to wait on but the port itself.
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while True:
            if self.process.poll() is not None:
                pytest.fail(f"{self.name} exited ({self.process.returncode}):\n{self.output()}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return
            except OSError:
                if time.monotonic() > deadline:
                    self.stop()
                    pytest.fail(f"{self.name} did not listen on {self.port}:\n{self.output()}")
                time.sleep(0.02)

    def output(self) -> str:
        return self.log.read_text(errors="replace")[-3000:]

    def stop(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(5)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()


@contextlib.contextmanager
def tinyproxy(
    directory: Path, *, auth: bool = False, allow: str = "127.0.0.1"
) -> Iterator[Running]:
    """tinyproxy for CONNECT to any port: its configuration has no
    ``ConnectPort`` line (Debian's default file allows 443 and 563 only)."""
    program = require("tinyproxy")
    port = free_port()
    lines = [
        f"Port {port}", "Listen 127.0.0.1", "Timeout 30", "LogLevel Info", "MaxClients 50",
        f"Allow {allow}", "DisableViaHeader Yes",
    ]
    if auth:
        lines.append(f"BasicAuth {USER} {SECRET}")
    if os.geteuid() == 0:
        # As root, tinyproxy would keep root: drop to nobody, as Debian's does.
        lines += ["User nobody", "Group nogroup"]
    config = directory / f"tinyproxy-{port}.conf"
    config.write_text("\n".join(lines) + "\n")
    running = Running("tinyproxy", [program, "-d", "-c", str(config)], port,
                      directory / f"tinyproxy-{port}.log")
    try:
        yield running
    finally:
        running.stop()


@contextlib.contextmanager
def microsocks(directory: Path, *, auth: bool = False) -> Iterator[Running]:
    program = require("microsocks")
    port = free_port()
    command = [program, "-i", "127.0.0.1", "-p", str(port), "-b", "127.0.0.1"]
    if auth:
        command += ["-u", USER, "-P", SECRET]
    running = Running("microsocks", command, port, directory / f"microsocks-{port}.log")
    try:
        yield running
    finally:
        running.stop()


@contextlib.contextmanager
def danted(directory: Path) -> Iterator[Running]:
    """Dante for SOCKS4 (no password in SOCKS4: no method). Dante 1.4 does
    not implement SOCKS4A's host names (it connects to 0.0.0.1), so a
    ``socks4a://`` URL works with it only for an IP address, which goes as
    plain SOCKS4. Connections only to 127.0.0.0/8."""
    program = require("danted")
    port = free_port()
    lines = [
        "logoutput: stderr",
        f"internal: 127.0.0.1 port = {port}",
        "external: 127.0.0.1",
        "clientmethod: none",
        "socksmethod: none",
    ]
    if os.geteuid() == 0:
        lines += ["user.privileged: root", "user.unprivileged: nobody"]
    lines += [
        "client pass {", "    from: 127.0.0.0/8 to: 0.0.0.0/0", "}",
        "socks pass {", "    from: 127.0.0.0/8 to: 127.0.0.0/8",
        "    command: connect", "    protocol: tcp", "}",
    ]
    config = directory / f"danted-{port}.conf"
    config.write_text("\n".join(lines) + "\n")
    command = [program, "-f", str(config), "-p", str(directory / f"danted-{port}.pid"), "-N", "1"]
    running = Running("danted", command, port, directory / f"danted-{port}.log")
    try:
        yield running
    finally:
        running.stop()


@contextlib.contextmanager
def stunnel(directory: Path, target_port: int, certfile: Path) -> Iterator[Running]:
    """A TLS front on a port of its own, passing the bytes to ``target_port``:
    an ``https://`` proxy of the proxy behind it."""
    program = require("stunnel4")
    port = free_port()
    lines = [
        "foreground = yes", "pid =", "debug = 4",
        "[proxy]", f"accept = 127.0.0.1:{port}", f"connect = 127.0.0.1:{target_port}",
        f"cert = {certfile}",
    ]
    config = directory / f"stunnel-{port}.conf"
    config.write_text("\n".join(lines) + "\n")
    running = Running("stunnel4", [program, str(config)], port, directory / f"stunnel-{port}.log")
    try:
        yield running
    finally:
        running.stop()
