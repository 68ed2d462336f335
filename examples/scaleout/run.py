"""The scale-out chat, whole: Redis, wsstream processes and haproxy on 127.0.0.1.

    python examples/scaleout/run.py [demo] [--nodes N] [--reuse-port]  # show it, stop
    python examples/scaleout/run.py serve [--nodes N] [--reuse-port]   # until Ctrl-C

``demo`` (the default) starts a private ``redis-server``, ``N`` (default 2)
processes of ``examples/scaleout/server.py`` each on a port of its own, and
``haproxy`` in front of them, every one on a free port of 127.0.0.1 with a
config written at run time into a temporary directory (from
``haproxy.cfg.in`` and ``redis.conf.in`` next to this file). Then four
reconnecting clients join through haproxy and chat across the processes;
one process gets SIGTERM and its clients reconnect to another; Redis is
restarted and the chat goes on. ``serve`` starts the same and prints the URL
to join, e.g. with ``python -m wsstream connect "ws://127.0.0.1:PORT/?name=me"``.

``--reuse-port``: no haproxy; the processes listen on one port with
SO_REUSEPORT (``serve(..., reuse_port=True)``) and the kernel spreads the
connections between them: every core of one machine, no balancer.

Needs ``redis-server`` and ``haproxy`` (Debian: ``apt-get install
redis-server haproxy``) and coredis (``pip install -e ".[scaleout]"``).
docs/scaling.md describes the design; tests/interop/test_scaleout.py runs it with 50
clients.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import io
import json
import os
import shutil
import signal
import socket
import string
import subprocess
import sys
import tempfile
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import BinaryIO

import trio

import wsstream

HERE = Path(__file__).resolve().parent
HOST = "127.0.0.1"
#: Bound on every wait for a process to start or stop.
START_TIMEOUT = 15.0
STOP_TIMEOUT = 10.0
#: The Redis channel the nodes share.
CHANNEL = "wsstream-chat"


def free_port() -> int:
    """A port of 127.0.0.1 free right now (the kernel's pick)."""
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


def program(name: str) -> str | None:
    """Where ``name`` is: on PATH, or in /usr/sbin (Debian puts haproxy
    there, which is not on every user's PATH)."""
    return shutil.which(name) or shutil.which(name, path="/usr/sbin")


def missing_programs(haproxy: bool = True) -> list[str]:
    """What this example needs and does not find."""
    needed = ("redis-server", "haproxy") if haproxy else ("redis-server",)
    missing = [name for name in needed if program(name) is None]
    try:
        import coredis  # noqa: F401
    except ImportError:
        missing.append('coredis (pip install -e ".[scaleout]")')
    return missing


def render(template: str, destination: Path, **fields: object) -> Path:
    text = string.Template((HERE / template).read_text()).substitute(fields)
    destination.write_text(text)
    return destination


def open_log(path: Path) -> BinaryIO:
    """A log file for a child process (which gets its own descriptor)."""
    return open(path, "ab")


async def wait_for_port(port: int, process: trio.Process, what: str) -> None:
    """Return once something accepts TCP connections on ``port``.

    A process started elsewhere gives no event to wait on, so this dials it
    every 50 ms, a bounded number of times, and stops early if it exited.
    """
    for _ in range(int(START_TIMEOUT / 0.05)):
        if process.returncode is not None:
            raise RuntimeError(f"{what} exited with status {process.returncode}")
        try:
            stream = await trio.open_tcp_stream(HOST, port)
        except OSError:
            await trio.sleep(0.05)
        else:
            await stream.aclose()
            return
    raise RuntimeError(f"{what} did not listen on {HOST}:{port} within {START_TIMEOUT} s")


async def stop_process(process: trio.Process, sig: int = signal.SIGTERM) -> None:
    """Send ``sig``, wait at most STOP_TIMEOUT, then kill."""
    if process.returncode is None:
        process.send_signal(sig)
    with trio.move_on_after(STOP_TIMEOUT):
        await process.wait()
    if process.returncode is None:
        process.kill()
        await process.wait()


class Node:
    """One running ``server.py`` process."""

    def __init__(self, name: str, process: trio.Process, port: int) -> None:
        self.name = name
        self.process = process
        self.port = port
        self._buffer = b""

    async def readline(self) -> str:
        """The next line of the process's standard output ("" at its end)."""
        assert self.process.stdout is not None
        with trio.fail_after(START_TIMEOUT):
            while b"\n" not in self._buffer:  # bounded by the deadline
                chunk = await self.process.stdout.receive_some()
                if not chunk:
                    line, self._buffer = self._buffer, b""
                    return line.decode()
                self._buffer += chunk
        line, _, self._buffer = self._buffer.partition(b"\n")
        return line.decode()

    async def http_get(self, path: str) -> str:
        """GET ``path`` from this process directly (not through haproxy): the body."""
        request = f"GET {path} HTTP/1.1\r\nHost: {HOST}\r\nConnection: close\r\n\r\n"
        data = b""
        with trio.fail_after(START_TIMEOUT):
            async with await trio.open_tcp_stream(HOST, self.port) as stream:
                await stream.send_all(request.encode())
                while chunk := await stream.receive_some():  # bounded by the deadline
                    data += chunk
        head, _, body = data.partition(b"\r\n\r\n")
        if not head.startswith(b"HTTP/1.1 200 "):
            raise RuntimeError(f"GET {path} from {self.name}: {head.splitlines()[:1]}")
        return body.decode()

    async def stop(self) -> dict[str, object]:
        """SIGTERM (its clients get 1001); the counters it printed on the way out."""
        await stop_process(self.process)
        stats: dict[str, object] = {}
        for _ in range(10):  # a handful of lines at most: a bounded read
            line = await self.readline()
            if not line:
                break
            if line.startswith(f"node {self.name} stopped: "):
                stats = json.loads(line.partition(": ")[2])
        return stats


class Stack:
    """Redis, the wsstream nodes and haproxy, as started by :func:`open_stack`."""

    def __init__(self, workdir: Path, reuse_port: bool) -> None:
        self.workdir = workdir
        self.reuse_port = reuse_port
        self.redis_port = free_port()
        self.redis: trio.Process | None = None
        self.nodes: dict[str, Node] = {}
        self.haproxy: trio.Process | None = None
        self.port = 0  # where clients connect: haproxy's, or the shared one
        self.stats_socket = workdir / "haproxy.sock"

    @property
    def url(self) -> str:
        return f"ws://{HOST}:{self.port}/"

    async def start_redis(self) -> None:
        config = render("redis.conf.in", self.workdir / "redis.conf",
                        host=HOST, port=self.redis_port, dir=self.workdir)
        with open_log(self.workdir / "redis.log") as log:
            self.redis = await trio.lowlevel.open_process(
                [program("redis-server") or "redis-server", str(config)],
                stdout=log, stderr=log)
        await wait_for_port(self.redis_port, self.redis, "redis-server")

    async def stop_redis(self) -> None:
        if self.redis is not None:
            await stop_process(self.redis)
            self.redis = None

    async def start_node(self, name: str, port: int, *extra: str) -> Node:
        argv = [sys.executable, str(HERE / "server.py"), "--name", name, "--host", HOST,
                "--port", str(port), "--redis-port", str(self.redis_port),
                "--channel", CHANNEL, *extra]
        if self.reuse_port:
            argv.append("--reuse-port")
        process = await trio.lowlevel.open_process(
            argv, stdout=subprocess.PIPE, env={**os.environ, "PYTHONUNBUFFERED": "1"})
        node = Node(name, process, port)
        self.nodes[name] = node
        line = await node.readline()
        if not line.startswith(f"node {name} listening on "):
            await stop_process(process)
            raise RuntimeError(f"node {name} did not start: {line!r}")
        return node

    async def start_haproxy(self) -> None:
        self.port = free_port()
        servers = "\n".join(f"    server {node.name} {HOST}:{node.port}"
                            for node in self.nodes.values())
        config = render("haproxy.cfg.in", self.workdir / "haproxy.cfg", host=HOST,
                        port=self.port, stats_socket=self.stats_socket, servers=servers)
        # -db: stay in the foreground, so that this runner owns the process;
        # its log (a line when a node goes down or up) goes to haproxy.log.
        with open_log(self.workdir / "haproxy.log") as log:
            self.haproxy = await trio.lowlevel.open_process(
                [program("haproxy") or "haproxy", "-db", "-f", str(config)],
                stdout=log, stderr=log)
        await wait_for_port(self.port, self.haproxy, "haproxy")
        await self.wait_backends(lambda states: all(s == "UP" for s in states.values()))

    async def backend_states(self) -> dict[str, str]:
        """Each node's state as haproxy's health checks see it ("UP", "DOWN", ...)."""
        sock = trio.socket.socket(trio.socket.AF_UNIX)
        with sock:
            await sock.connect(str(self.stats_socket))
            await sock.send(b"show stat\n")
            data = b""
            for _ in range(1000):  # haproxy closes after its answer
                chunk = await sock.recv(65536)
                if not chunk:
                    break
                data += chunk
        rows = csv.DictReader(io.StringIO(data.decode().lstrip("# ")))
        return {row["svname"]: row["status"].split()[0] for row in rows
                if row["pxname"] == "nodes" and row["svname"] not in ("BACKEND", "FRONTEND")}

    async def wait_backends(self, predicate: Callable[[dict[str, str]], bool]) -> dict[str, str]:
        """Poll haproxy's view of the nodes (it gives no event) until ``predicate``."""
        for _ in range(int(START_TIMEOUT / 0.1)):
            states = await self.backend_states()
            if predicate(states):
                return states
            await trio.sleep(0.1)
        raise RuntimeError(f"haproxy's backends stayed {states}")

    async def subscribers(self) -> int:
        """How many nodes are subscribed to the channel right now (PUBSUB
        NUMSUB); 0 while Redis is unreachable."""
        import coredis
        import coredis.exceptions

        try:
            async with coredis.Redis(host=HOST, port=self.redis_port,
                                     decode_responses=True) as redis:
                return (await redis.pubsub_numsub(CHANNEL)).get(CHANNEL, 0)
        except coredis.exceptions.ConnectionError:
            return 0

    async def wait_subscribers(self, count: int) -> None:
        """Poll Redis (it gives no event) until ``count`` nodes are subscribed."""
        for _ in range(int(30 / 0.1)):  # the nodes retry every 2 s at most
            if await self.subscribers() >= count:
                return
            await trio.sleep(0.1)
        raise RuntimeError(f"fewer than {count} nodes subscribed again within 30 s")

    async def aclose(self) -> None:
        with trio.CancelScope(shield=True):
            if self.haproxy is not None:
                await stop_process(self.haproxy)
            for node in self.nodes.values():
                await stop_process(node.process)
            await self.stop_redis()


@contextlib.asynccontextmanager
async def open_stack(nodes: int = 2, node_options: tuple[str, ...] = (), *,
                     reuse_port: bool = False) -> AsyncIterator[Stack]:
    """Start Redis, ``nodes`` wsstream processes and haproxy in front of them;
    with ``reuse_port``, no haproxy: the processes share one port.

    Everything is stopped on the way out, whatever happened.
    """
    with tempfile.TemporaryDirectory(prefix="wsstream-scaleout-") as tmp:
        stack = Stack(Path(tmp), reuse_port)
        try:
            await stack.start_redis()
            shared = free_port()
            for i in range(1, nodes + 1):
                port = shared if reuse_port else free_port()
                await stack.start_node(f"n{i}", port, *node_options)
            if reuse_port:
                stack.port = shared
            else:
                await stack.start_haproxy()
            yield stack
        finally:
            await stack.aclose()


class ChatClient:
    """A chat member that stays connected (``connect_forever``) and keeps a
    record: the node of each connection, each message, each close code that
    made it reconnect."""

    def __init__(self, url: str, name: str, *, initial_delay: float = 1.0) -> None:
        self.name = name
        self.url = f"{url}?name={name}"
        self.initial_delay = initial_delay
        self.nodes: list[str] = []  # the node of each connection, in order
        self.addresses: list[str] = []  # the address each node saw
        self.closes: list[int | None] = []  # why each connection that was retried ended
        self.messages: list[tuple[str, str]] = []  # (sender, text), in order of arrival
        self.errors: list[str] = []
        self.writable: wsstream.Writable | None = None
        self._waiting: tuple[Callable[[], bool], trio.Event] | None = None

    async def run(self) -> None:
        """Connect and reconnect until cancelled."""
        await wsstream.connect_forever(self.url, self._handler, on_reconnect=self._reconnecting,
                                       initial_delay=self.initial_delay, compression=None)

    def _reconnecting(self, info: wsstream.ReconnectInfo) -> None:
        self.closes.append(info.cause.close_code)
        self._check()

    async def _handler(self, wss: wsstream.WebSocketStream) -> None:
        readable, writable, *_ = await wss.opened
        hello = json.loads(await readable.receive())
        self.nodes.append(hello["node"])
        self.addresses.append(hello["address"])
        self.writable = writable
        self._check()
        try:
            async for raw in readable:
                message = json.loads(raw)
                if message["type"] == "message":
                    self.messages.append((message["from"], message["text"]))
                elif message["type"] == "error":
                    self.errors.append(message["text"])
                self._check()
        finally:
            self.writable = None

    async def send(self, text: str) -> None:
        if self.writable is None:
            raise RuntimeError(f"{self.name} is not connected")
        await self.writable.send(text)

    def _check(self) -> None:
        if self._waiting is not None and self._waiting[0]():
            self._waiting[1].set()
            self._waiting = None

    async def wait_until(self, predicate: Callable[[], bool]) -> None:
        """Return once ``predicate()`` holds; it is checked on each hello,
        message and reconnection (the caller bounds the wait)."""
        if predicate():
            return
        event = trio.Event()
        self._waiting = (predicate, event)
        await event.wait()

    async def wait_connections(self, count: int) -> None:
        """Return once connection number ``count`` has said hello."""
        await self.wait_until(lambda: len(self.nodes) >= count)

    async def wait_messages(self, count: int) -> None:
        """Return once ``count`` chat messages have arrived in all."""
        await self.wait_until(lambda: len(self.messages) >= count)


# -- the demo -----------------------------------------------------------------


async def demo(nodes: int, reuse_port: bool) -> None:
    names = ["alice", "bob", "carol", "dave"]
    via = "the shared port" if reuse_port else "haproxy"
    async with open_stack(nodes, reuse_port=reuse_port) as stack, \
            trio.open_nursery() as nursery:
        if reuse_port:
            print(f"redis-server on {HOST}:{stack.redis_port}; nodes "
                  + ", ".join(stack.nodes) + f" all on {stack.url} (SO_REUSEPORT)")
        else:
            print(f"redis-server on {HOST}:{stack.redis_port}; nodes "
                  + ", ".join(f"{n.name} on {n.port}" for n in stack.nodes.values())
                  + f"; haproxy on {stack.url}")
        clients = [ChatClient(stack.url, name) for name in names]
        for client in clients:
            nursery.start_soon(client.run)
        with trio.fail_after(START_TIMEOUT):
            for client in clients:
                await client.wait_connections(1)
        for client in clients:
            print(f"{client.name} joined through {via}: connected to {client.nodes[-1]}")

        async def chat_round(label: str) -> None:
            expected = len(clients) + len(clients[0].messages)
            for client in clients:
                await client.send(f"{label} from {client.name}")
            with trio.fail_after(START_TIMEOUT):
                for client in clients:
                    await client.wait_messages(expected)
            got = clients[0].messages[-len(clients):]
            print(f"{label}: every client got all {len(clients)} messages; "
                  f"{clients[0].name} saw {', '.join(text for _, text in got)}")

        await chat_round("hello")

        # The node with the most clients (the kernel's spreading may leave
        # one with none): its clients move.
        victim = max(stack.nodes.values(),
                     key=lambda node: sum(c.nodes[-1] == node.name for c in clients))
        moved = [c for c in clients if c.nodes[-1] == victim.name]
        print(f"SIGTERM to {victim.name}, which serves {', '.join(c.name for c in moved)}")
        stats = await victim.stop()
        print(f"{victim.name} stopped after relaying {stats['relayed']} messages to its clients "
              f"({stats['delivered']} deliveries)")
        with trio.fail_after(START_TIMEOUT):
            for client in moved:
                await client.wait_connections(2)
        if not reuse_port:
            states = await stack.wait_backends(lambda states: states[victim.name] != "UP")
            print("haproxy's health checks: "
                  + ", ".join(f"{k} {v}" for k, v in states.items()))
        for client in moved:
            print(f"{client.name}: closed with {client.closes[-1]}, reconnected to "
                  f"{client.nodes[-1]}")
        await chat_round("after the failover")

        print("restarting redis-server")
        await stack.stop_redis()
        await stack.start_redis()
        await stack.wait_subscribers(len(stack.nodes) - 1)
        print("the remaining nodes are subscribed again")
        await chat_round("after the restart")
        nursery.cancel_scope.cancel()


async def serve(nodes: int, reuse_port: bool) -> None:
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async with open_stack(nodes, reuse_port=reuse_port) as stack:
            how = "sharing the port (SO_REUSEPORT)" if reuse_port else "behind haproxy"
            print(f"chat on {stack.url}?name=YOU ({nodes} wsstream processes {how}); "
                  "Ctrl-C stops everything", flush=True)
            async for _ in signals:
                break


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("mode", nargs="?", choices=["demo", "serve"], default="demo")
    parser.add_argument("--nodes", type=int, default=2, help="wsstream processes (default 2)")
    parser.add_argument("--reuse-port", action="store_true",
                        help="no haproxy: the processes share one port (SO_REUSEPORT)")
    args = parser.parse_args()
    missing = missing_programs(haproxy=not args.reuse_port)
    if missing:
        print(f"this example needs {', '.join(missing)}", file=sys.stderr)
        return 2
    if args.nodes < 1 or (args.mode == "demo" and args.nodes < 2):
        parser.error("--nodes: at least 1, and at least 2 for the demo")
    try:
        if args.mode == "demo":
            trio.run(demo, args.nodes, args.reuse_port)
        else:
            trio.run(serve, args.nodes, args.reuse_port)
    except KeyboardInterrupt:
        # A second Ctrl-C while stopping: the children, in the terminal's
        # process group, got it too and stop on their own.
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
