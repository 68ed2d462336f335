"""One process of the scale-out chat: a wsstream server joined to the others
through a Redis pub/sub channel.

    python examples/scaleout/server.py --port 9001 --redis-port 6390 --name n1
    python examples/scaleout/server.py --port 9000 --reuse-port ... (one per core)

Every process subscribes to one Redis channel and publishes there what its own
clients send; what arrives on the channel is broadcast to the process's own
clients. So clients connected to different processes, behind a load balancer
or on different hosts, see each other's messages, and no process knows the
others exist. ``examples/scaleout/run.py`` starts Redis, haproxy and several
of these; docs/scaling.md explains the design.

What a client sees, all JSON text messages:

* ``{"type": "hello", "node": "n1", "name": ..., "address": ...}`` first;
* ``{"type": "message", "from": NAME, "node": NODE, "text": TEXT}`` for every
  chat message published after its hello, its own included;
* ``{"type": "error", "text": ...}`` when its message could not be published.

Backpressure, end to end:

* From Redis to clients nothing ever waits: the relay task hands each message
  to ``wsstream.broadcast``, which queues it on every member at once or finds
  the member slow (over ``write_limit``) and closes it with 1013 (try again
  later: a reconnecting client comes back) or, with ``--policy skip``, skips
  it for that message. A slow client therefore never slows the subscription
  nor the other clients, and a process holds at most ``write_limit`` plus one
  message per client.
* From a client to Redis: each client's messages are published one at a time
  (which keeps them in order) and the handler reads the next only when Redis
  acknowledged the last, so a slow broker slows the senders through TCP, with
  no queue in between.
* If this process cannot keep up with the channel, Redis cuts its subscription
  (``client-output-buffer-limit pubsub``); coredis resubscribes, and what was
  published meanwhile is lost for this process's clients.

Redis restarts are survived: coredis reconnects the subscription (exponential
backoff, resubscribing) and the next publish opens a new connection. Pub/sub
keeps no history, so messages published while a process is not subscribed
are lost for its clients, and messages a client sends while Redis is down get
an ``error`` reply; docs/scaling.md says when to use Redis Streams instead.

``GET /healthz`` answers 200 while the process serves and 503 once it is
shutting down (the balancer's health check); ``GET /stats`` gives the
process's counters as JSON. SIGTERM or SIGINT: stop accepting, close every
connection with 1001 (going away), exit.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import logging
import signal
import sys
from typing import Literal
from urllib.parse import parse_qs, urlsplit

import coredis
import coredis.exceptions
import coredis.retry
import trio

import wsstream

#: How long a client's message may wait for Redis before the client is told
#: it was not sent. Past it the broker is taken as down: holding the message
#: longer would only hold the client's other messages behind it.
PUBLISH_TIMEOUT = 2.0

#: How the subscription comes back after Redis restarts or the connection
#: drops: forever, 0.1 s after the first failure, doubling (jittered) up to
#: 2 s. coredis's default ceiling is 16 s and its count of attempts never
#: restarts in the life of a subscription, so after a few Redis restarts
#: every reconnection would wait up to 16 s (messages lost meanwhile); and
#: its default gives up after 2 unacknowledged SUBSCRIBEs in all.
RESUBSCRIBE = coredis.retry.ExponentialBackoffRetryPolicy(
    (coredis.exceptions.ConnectionError, TimeoutError),
    retries=None, base_delay=0.1, max_delay=2.0, jitter=True,
)


class Node:
    """The state of one process: its clients and its counters."""

    def __init__(self, name: str, redis: coredis.Redis[str], channel: str,
                 policy: Literal["skip", "close"]) -> None:
        self.name = name
        self.redis = redis
        self.channel = channel
        self.policy: Literal["skip", "close"] = policy
        self.members: dict[wsstream.WebSocketStream, str] = {}
        self.draining = False
        self.joined = 0
        self.published = 0
        self.publish_failures = 0
        self.relayed = 0  # messages received from the channel
        self.delivered = 0  # messages queued on a client
        self.slow = 0  # a member found over write_limit by a broadcast

    def stats(self) -> dict[str, object]:
        return {"node": self.name, "members": len(self.members), "joined": self.joined,
                "published": self.published, "publish_failures": self.publish_failures,
                "relayed": self.relayed, "delivered": self.delivered, "slow": self.slow}

    def process_request(self, request: wsstream.Request) -> wsstream.Response | None:
        """Answer the balancer's health check and /stats; upgrade the rest."""
        path = urlsplit(request.path).path
        if path == "/healthz":
            # 503 once shutting down: a check that comes while the
            # connections are being closed must not count this process up.
            status = 503 if self.draining else 200
            return wsstream.Response(status, {"Content-Type": "text/plain"},
                                     b"draining\n" if self.draining else b"ok\n")
        if path == "/stats":
            body = json.dumps(self.stats()).encode()
            return wsstream.Response(200, {"Content-Type": "application/json"}, body)
        return None

    async def relay(self, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Broadcast what arrives on the channel to this process's clients.

        Started (``task_status.started()``) once Redis confirmed the
        subscription, so the process listens only when nothing published
        from then on can be missed.
        """
        async with self.redis.pubsub(channels=[self.channel], ignore_subscribe_messages=True,
                                     retry_policy=RESUBSCRIBE) as pubsub:
            task_status.started()
            # Not ``async for message in pubsub``: coredis ends that iteration
            # when it finds the subscription down, which happens for a moment
            # while it reconnects after a Redis restart, and the process
            # would go on serving, deaf. get_message() waits on coredis's
            # own queue, which outlives reconnections.
            while True:  # until cancelled; each turn waits for a message
                message = await pubsub.get_message()
                if message is None or message["type"] != "message":
                    continue  # a (re)subscription's acknowledgement
                data = message["data"]
                if not isinstance(data, str):
                    continue  # not from a node (decode_responses gives str)
                self.relayed += 1
                # The payload is already the JSON the clients get: one str,
                # framed once for every member (compression is off). Never
                # waits on any member, so coredis's buffer of received
                # messages (unbounded) stays empty.
                result = wsstream.broadcast(self.members, data, policy=self.policy,
                                            close_code=1013, reason="too slow")
                self.delivered += result.sent
                self.slow += len(result.slow)
                if self.policy == "close":
                    for wss in result.slow:
                        # Closing: its handler ends soon; no more broadcasts.
                        self.members.pop(wss, None)

    async def handler(self, wss: wsstream.WebSocketStream) -> None:
        readable, writable, *_ = await wss.opened
        assert wss.request is not None
        name = parse_qs(urlsplit(wss.request.path).query).get("name", ["anonymous"])[0]
        # Behind the balancer the socket's peer is the balancer: the client's
        # own address is the last one haproxy added (trust it only from a
        # balancer you run; a client can send the header too).
        forwarded = wss.request.headers.get("X-Forwarded-For")
        peer = wss.request.remote_address
        if forwarded:
            address = forwarded.rsplit(",", 1)[-1].strip()
        elif isinstance(peer, tuple):
            address = str(peer[0])  # (host, port): no balancer in between
        else:
            address = str(peer)
        hello = {"type": "hello", "node": self.name, "name": name, "address": address}
        # The hello is queued and the client becomes a member with no
        # checkpoint in between: every message it gets after the hello is
        # one published after it joined, and it misses none of those.
        writable.send_nowait(json.dumps(hello))
        self.members[wss] = name
        self.joined += 1
        try:
            async for message in readable:
                if isinstance(message, str):
                    await self.publish(name, message, writable)
        except wsstream.WebSocketError:
            pass  # the client vanished, or was closed for being too slow
        finally:
            self.members.pop(wss, None)

    async def publish(self, name: str, text: str, writable: wsstream.Writable) -> None:
        """Publish one client's message; tell the client if Redis is down."""
        payload = json.dumps({"type": "message", "from": name, "node": self.name, "text": text})
        try:
            with trio.fail_after(PUBLISH_TIMEOUT):
                await self.redis.publish(self.channel, payload)
        except (coredis.exceptions.ConnectionError, trio.TooSlowError):
            self.publish_failures += 1
            error = {"type": "error", "text": "the broker is unreachable: message not sent"}
            # Too slow or gone: then it will not see this one either.
            with contextlib.suppress(trio.WouldBlock, trio.ClosedResourceError,
                                     trio.BrokenResourceError):
                writable.send_nowait(json.dumps(error))
        else:
            self.published += 1


async def run_node(args: argparse.Namespace) -> None:
    # Opened before anything starts: a SIGTERM that arrives while Redis is
    # being dialled still means a graceful exit, not a traceback.
    with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
        async with coredis.Redis(host=args.redis_host, port=args.redis_port,
                                 decode_responses=True) as redis:
            node = Node(args.name, redis, args.channel, args.policy)
            async with trio.open_nursery() as nursery:
                await nursery.start(node.relay)
                serve = functools.partial(
                    wsstream.serve, node.handler, args.host, args.port,
                    process_request=node.process_request,
                    # Broadcast builds one frame per message for every
                    # uncompressed connection; permessage-deflate would
                    # compress it once per client and cost ~43 KiB more per
                    # connection (zlib's state; docs/scaling.md).
                    compression=None,
                    # How far a client may fall behind before it is slow.
                    write_limit=args.write_limit,
                    # Several processes on one port, no balancer: the kernel
                    # spreads the connections (run.py --reuse-port).
                    reuse_port=args.reuse_port,
                )
                listeners: list[trio.SocketListener] = await nursery.start(serve)
                port = listeners[0].socket.getsockname()[1]
                print(f"node {args.name} listening on ws://{args.host}:{port}/", flush=True)
                async for _ in signals:
                    break
                # Cancelling serve stops accepting and closes every
                # connection with 1001; reconnecting clients come back
                # through the balancer to another process.
                node.draining = True
                nursery.cancel_scope.cancel()
        print(f"node {args.name} stopped: {json.dumps(node.stats())}", flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--name", default="node", help="this process's name, told to clients")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8765, help="0 picks a free port")
    parser.add_argument("--reuse-port", action="store_true",
                        help="share the port with other processes (SO_REUSEPORT)")
    parser.add_argument("--redis-host", default="127.0.0.1")
    parser.add_argument("--redis-port", type=int, default=6379)
    parser.add_argument("--channel", default="wsstream-chat")
    parser.add_argument("--policy", choices=["close", "skip"], default="close",
                        help="a client over --write-limit: close it with 1013 (default) "
                             "or skip it for that message")
    parser.add_argument("--write-limit", type=int, default=256 * 1024,
                        help="bytes waiting for a client before it is slow (default: 262144)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format=f"{args.name}: %(name)s: %(message)s")
    trio.run(run_node, args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
