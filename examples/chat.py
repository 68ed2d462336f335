"""A chat room: every message is broadcast to every member, and a slow member
never stalls the others.

    python examples/chat.py [demo] [--policy drop|disconnect]
    python examples/chat.py serve [--policy drop|disconnect] [HOST] [PORT]

Each message goes to every member with ``wsstream.broadcast``, which queues
it on every connection at once and never waits. A member whose connection
already holds more than ``--write-limit`` bytes waiting to be written is
slow, and the policy decides:

* ``drop`` (broadcast's ``policy="skip"``): the message is dropped for that
  member only, who is told later how many it missed;
* ``disconnect`` (``policy="close"``): the member is closed with 1008
  (policy violation), reason "too slow".

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
from typing import Literal
from urllib.parse import parse_qs, urlsplit

import trio

import wsstream

#: The command line's names for broadcast's slow-member policies.
POLICIES: dict[str, Literal["skip", "close"]] = {"drop": "skip", "disconnect": "close"}


class Member:
    def __init__(self, name: str, writable: wsstream.Writable) -> None:
        self.name = name
        self.writable = writable
        self.missed = 0  # messages dropped for it that it was not told about yet


class ChatRoom:
    def __init__(self, policy: str, write_limit: int) -> None:
        self.policy = policy
        self.write_limit = write_limit
        self.members: dict[wsstream.WebSocketStream, Member] = {}
        self.log: list[str] = []  # what the server did about slow members
        self.dropped: dict[str, int] = {}  # messages dropped, by member name

    def broadcast(self, text: str) -> None:
        """Offer ``text`` to every member without ever waiting."""
        self.tell_missed()
        result = wsstream.broadcast(self.members, text, policy=POLICIES[self.policy],
                                    close_code=1008, reason="too slow")
        for wss in result.slow:
            member = self.members[wss]
            if self.policy == "drop":
                if member.name not in self.dropped:
                    self.log.append(f"{member.name}'s outbox is full: dropping messages for it")
                self.dropped[member.name] = self.dropped.get(member.name, 0) + 1
                member.missed += 1
            else:
                # broadcast closed it (1008, "too slow"): it gets no more
                # messages, and its handler ends with the closing handshake.
                self.log.append(f"{member.name}'s outbox is full: disconnecting it (1008)")
                del self.members[wss]

    def tell_missed(self) -> None:
        """Tell each member that missed messages how many, ahead of the next
        message it gets (so, as soon as it has room again)."""
        for member in self.members.values():
            if member.missed:
                try:
                    member.writable.send_nowait(
                        f"[server] you missed {member.missed} messages")
                except trio.WouldBlock:
                    continue  # still slow: the next message is dropped too
                except (trio.ClosedResourceError, trio.BrokenResourceError):
                    continue  # it is leaving; its handler cleans up
                member.missed = 0

    async def handler(self, wss: wsstream.WebSocketStream) -> None:
        readable, writable, *_ = await wss.opened
        assert wss.request is not None
        query = parse_qs(urlsplit(wss.request.path).query)
        name = query.get("name", ["anonymous"])[0]
        if any(member.name == name for member in self.members.values()):
            wss.close(4000, "name taken")
            return
        self.members[wss] = Member(name, writable)
        try:
            self.broadcast(f"[server] {name} joined")
            async for message in readable:
                self.broadcast(f"{name}: {message}")
        except wsstream.WebSocketError:
            pass  # the member left abruptly, or was disconnected for being slow
        finally:
            if self.members.pop(wss, None) is not None:
                self.broadcast(f"[server] {name} left")


async def serve_room(room: ChatRoom, host: str, port: int,
                     task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED) -> None:
    # The write_limit is how far behind a member may fall before it is slow
    # (the kernel's socket buffers come on top of it); no compression, so
    # that one encoding of each message serves every member.
    serve = functools.partial(wsstream.serve, room.handler, host, port,
                              compression=None, write_limit=room.write_limit)
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


async def demo(policy: str, count: int, write_limit: int) -> None:
    room = ChatRoom(policy, write_limit)
    print(f"chat demo (policy {policy!r}, write_limit {write_limit} bytes): alice and bob send "
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
    parser.add_argument("--policy", choices=list(POLICIES), default="drop",
                        help="what to do with a member whose outbox is full (default: drop)")
    parser.add_argument("--write-limit", type=int, default=16 * 1024,
                        help="bytes waiting for a member before it is slow (default: 16384)")
    parser.add_argument("--count", type=int, default=500,
                        help="demo: messages each fast client sends")
    args = parser.parse_args()
    try:
        if args.mode == "demo":
            trio.run(demo, args.policy, args.count, args.write_limit)
        else:
            trio.run(serve_forever, ChatRoom(args.policy, args.write_limit), args.host, args.port)
    except* KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
