"""A chat room: every message is broadcast to every member, and a slow member
never stalls the others.

    python examples/chat.py [demo] [--policy drop|disconnect]
    python examples/chat.py serve [--policy drop|disconnect] [HOST] [PORT]

Each member has a bounded outbox (``--queue`` messages) drained by a task of
its own into its writable, so ``send()``'s backpressure slows that task only.
The broadcast never waits: it puts the message in each outbox with
``send_nowait``. When a member's outbox is full, the policy decides:

* ``drop``: the message is dropped for that member only, who is told later
  how many it missed;
* ``disconnect``: the member is closed with 1008 (policy violation), reason
  "too slow".

``demo`` (the default) runs the server and three clients on 127.0.0.1: alice
and bob chat fast, snail reads one message every 20 ms, and prints what
happened to each. ``serve`` runs the server alone; join with, e.g.,
``python -m wsstream connect "ws://127.0.0.1:8765/?name=me"``.
"""

from __future__ import annotations

import argparse
import functools
import math
import socket
import sys
import time
from urllib.parse import parse_qs, urlsplit

import trio

import wsstream


class Member:
    def __init__(self, name: str, wss: wsstream.WebSocketStream, queue: int) -> None:
        self.name = name
        self.wss = wss
        self.outbox, self.inbox = trio.open_memory_channel[str](queue)
        self.dropped = 0  # messages dropped for this member so far
        self.kicked = False


class ChatRoom:
    def __init__(self, policy: str, queue: int) -> None:
        self.policy = policy
        self.queue = queue
        self.members: dict[str, Member] = {}
        self.log: list[str] = []  # what the server did about slow members
        self.dropped: dict[str, int] = {}  # messages dropped, by member name

    def broadcast(self, text: str) -> None:
        """Offer ``text`` to every member without ever waiting."""
        for member in list(self.members.values()):
            try:
                member.outbox.send_nowait(text)
            except trio.WouldBlock:
                self.too_slow(member)
            except trio.BrokenResourceError:
                pass  # its sender task is gone; the handler is cleaning up

    def too_slow(self, member: Member) -> None:
        if self.policy == "drop":
            if member.dropped == 0:
                self.log.append(f"{member.name}'s outbox is full: dropping messages for it")
            member.dropped += 1
            self.dropped[member.name] = member.dropped
        elif not member.kicked:
            member.kicked = True
            self.log.append(f"{member.name}'s outbox is full: disconnecting it (1008)")
            del self.members[member.name]
            member.wss.close(1008, "too slow")  # the server may send 1008

    async def handler(self, wss: wsstream.WebSocketStream) -> None:
        readable, writable, *_ = await wss.opened
        assert wss.request is not None
        query = parse_qs(urlsplit(wss.request.path).query)
        name = query.get("name", ["anonymous"])[0]
        if name in self.members:
            wss.close(4000, "name taken")
            return
        member = self.members[name] = Member(name, wss, self.queue)

        async def deliver() -> None:
            told = 0
            async for text in member.inbox:
                if member.dropped > told:  # tell the member what it missed
                    await writable.send(f"[server] you missed {member.dropped - told} messages")
                    told = member.dropped
                await writable.send(text)  # backpressure: waits for this member only

        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(deliver)
                self.broadcast(f"[server] {name} joined")
                async for message in readable:
                    self.broadcast(f"{name}: {message}")
                nursery.cancel_scope.cancel()
        except* (wsstream.WebSocketError, trio.ClosedResourceError):
            pass  # the member left abruptly, or was disconnected for being slow
        finally:
            if self.members.get(name) is member:
                del self.members[name]
                self.broadcast(f"[server] {name} left")


async def serve_room(room: ChatRoom, host: str, port: int,
                     task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED) -> None:
    # A small write_limit, so that a member that stops reading fills its
    # outbox soon (the kernel's socket buffers come on top of it).
    serve = functools.partial(wsstream.serve, room.handler, host, port,
                              compression=None, write_limit=16 * 1024)
    async with trio.open_nursery() as nursery:
        listeners = await nursery.start(serve)
        task_status.started(listeners[0].socket.getsockname()[1])


# -- the demo -----------------------------------------------------------------


async def fast_client(url: str, name: str, count: int, senders: int,
                      report: dict[str, str]) -> None:
    """Send ``count`` messages, read until every sender's last one arrived."""
    async with wsstream.WebSocketStream(f"{url}?name={name}", compression=None) as wss:
        readable, writable, *_ = await wss.opened
        start = time.perf_counter()
        received = missed = 0
        finished: set[str] = set()

        async def send_all() -> None:
            for i in range(count):
                await writable.send(f"message {i} " + "x" * 1000)
                await trio.sleep(0.002)  # a brisk chat, not a flood
            await writable.send("done")

        async with trio.open_nursery() as nursery:
            nursery.start_soon(send_all)
            while len(finished) < senders:
                # A fast member should get everything; if it did not keep up
                # either, it is told so, and stops after a quiet second.
                with trio.move_on_after(1.0):
                    text = await readable.receive()
                    sender, _, body = text.partition(": ")
                    if body == "done":
                        finished.add(sender)
                    elif body.startswith("message "):
                        received += 1
                    elif text.startswith("[server] you missed"):
                        missed += int(text.split()[3])
                    continue
                break
        elapsed = time.perf_counter() - start
        report[name] = (f"received {received}/{count * senders} chat messages in "
                        f"{elapsed:.2f} s" + (f" ({missed} dropped)" if missed else ""))


async def slow_client(url: str, fast_done: trio.Event, report: dict[str, str],
                      task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
    """Read one message every 20 ms while the others chat, then drain."""
    # A small socket receive buffer (through ``stream=``, a connected socket
    # of our own) and a small read_limit: the server feels our slowness soon.
    target = urlsplit(url)
    sock = trio.socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    await sock.connect((target.hostname, target.port))
    stream = trio.SocketStream(sock)
    async with wsstream.WebSocketStream(f"{url}?name=snail", stream=stream,
                                        read_limit=4096, compression=None) as wss:
        readable, *_ = await wss.opened
        assert await readable.receive() == "[server] snail joined"
        task_status.started()
        received = 0
        notices: list[str] = []
        try:
            while True:
                # Slow while the others chat; then drain at full speed and
                # stop once nothing came for half a second.
                with trio.move_on_after(math.inf if not fast_done.is_set() else 0.5) as idle:
                    text = await readable.receive()
                if idle.cancelled_caught:
                    break
                if text.startswith("[server] you missed"):
                    notices.append(text)
                elif ": message " in text:
                    received += 1
                if not fast_done.is_set():
                    await trio.sleep(0.02)
        except trio.EndOfChannel:
            pass
        except wsstream.WebSocketError as exc:
            report["snail"] = f"the connection failed: {exc!r}"
            return
        try:
            info = await wss.closed if not idle.cancelled_caught else None
        except wsstream.WebSocketError as exc:
            report["snail"] = f"the connection failed: {exc!r}"
            return
        if info is not None:
            report["snail"] = (f"received {received} chat messages, then the server "
                               f"closed it: code {info.close_code}, reason {info.reason!r}")
        else:
            told = sum(int(n.split()[3]) for n in notices)
            report["snail"] = (f"received {received} chat messages; {len(notices)} notices "
                               f"told it that it missed {told}")


async def demo(policy: str, count: int, queue: int) -> None:
    room = ChatRoom(policy, queue)
    print(f"chat demo (policy {policy!r}, outbox {queue} messages): alice and bob send "
          f"{count} messages of 1 KiB each, one every 2 ms; snail reads one message every 20 ms")
    report: dict[str, str] = {}
    async with trio.open_nursery() as nursery:
        port = await nursery.start(serve_room, room, "127.0.0.1", 0)
        url = f"ws://127.0.0.1:{port}/"
        fast_done = trio.Event()
        async with trio.open_nursery() as clients:
            await clients.start(slow_client, url, fast_done, report)  # snail joins first
            async with trio.open_nursery() as fast:
                for name in ("alice", "bob"):
                    fast.start_soon(fast_client, url, name, count, 2, report)
            fast_done.set()
        nursery.cancel_scope.cancel()
    for line in room.log:
        print(f"server: {line}")
    for name, dropped in room.dropped.items():
        print(f"server: dropped {dropped} messages for {name} in all")
    for name in ("alice", "bob", "snail"):
        print(f"{name}: {report[name]}")


async def serve_forever(room: ChatRoom, host: str, port: int) -> None:
    async with trio.open_nursery() as nursery:
        port = await nursery.start(serve_room, room, host, port)
        print(f"chat server on ws://{host}:{port}/?name=YOU", flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("mode", nargs="?", choices=["demo", "serve"], default="demo")
    parser.add_argument("host", nargs="?", default="127.0.0.1")
    parser.add_argument("port", nargs="?", type=int, default=8765)
    parser.add_argument("--policy", choices=["drop", "disconnect"], default="drop",
                        help="what to do with a member whose outbox is full (default: drop)")
    parser.add_argument("--queue", type=int, default=64, help="outbox size, in messages")
    parser.add_argument("--count", type=int, default=500,
                        help="demo: messages each fast client sends")
    args = parser.parse_args()
    try:
        if args.mode == "demo":
            trio.run(demo, args.policy, args.count, args.queue)
        else:
            trio.run(serve_forever, ChatRoom(args.policy, args.queue), args.host, args.port)
    except* KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
