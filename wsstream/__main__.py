"""wsstream's command line: a demo, an interactive client, an echo server, a benchmark.

  python -m wsstream demo                          what wsstream does, in one second
  python -m wsstream connect ws://127.0.0.1:8765/  send stdin lines, print messages
  python -m wsstream serve 8765                    an echo server on 127.0.0.1:8765
  python -m wsstream serve --workers 2 8765        the same, in 2 processes (SO_REUSEPORT)
  python -m wsstream bench ws://127.0.0.1:8765/    round trips and throughput

Errors are one line on stderr and a non-zero exit status: 2 for a bad command
line (every argument is checked before anything starts), 1 for the rest.
"""

from __future__ import annotations

import argparse
import functools
import json
import math
import os
import signal
import socket
import ssl
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any, BinaryIO, TextIO

import trio

from ._endpoints.http import Headers
from ._endpoints.listen import serve, serve_unix
from ._endpoints.proxy import parse_proxy
from ._endpoints.url import check_protocols, parse_url
from ._errors import HandshakeError, WebSocketError, collapse
from ._streams.stream import WebSocketStream
from ._workers import supervise

# Exit statuses: 0 clean close, 1 the connection failed or ended abnormally,
# 2 bad command line (argparse's own), 130 interrupted.
EXIT_OK = 0
EXIT_ERROR = 1
EXIT_INTERRUPTED = 130

#: Close codes for which ``connect`` exits with status 0: normal closure,
#: going away (a server shutting down), and a Close without a code.
NORMAL_CLOSE_CODES = frozenset({1000, 1001, 1005})


class CliError(Exception):
    """A failure to report as one line on stderr (exit status 1)."""


def _describe(exc: BaseException) -> str:
    """One line saying what went wrong with a connection."""
    if isinstance(exc, HandshakeError) and exc.proxy is not None:
        # It names the proxy (never its credentials) and the status.
        return exc.message
    if isinstance(exc, HandshakeError) and exc.status is not None:
        line = f"handshake rejected: HTTP {exc.status}"
        body = exc.body.decode("utf-8", "replace").strip().splitlines()
        if body:
            line += f": {body[0][:200]}"
        return line
    if isinstance(exc, WebSocketError):
        text = exc.message or type(exc).__name__
        if exc.close_code is not None and exc.close_code != 1006:
            # The message often quotes the reason already: say it once.
            if exc.reason and exc.reason not in text:
                text += f" (close code {exc.close_code}, reason {exc.reason!r})"
            else:
                text += f" (close code {exc.close_code})"
        return text
    return str(exc) or type(exc).__name__


def _err(line: str) -> None:
    print(f"wsstream: {line}", file=sys.stderr, flush=True)


# -- demo -------------------------------------------------------------------


async def _echo(wss: WebSocketStream) -> None:
    readable, writable, *_ = await wss.opened
    try:
        async for message in readable:
            await writable.send(message)
    except WebSocketError:
        # The peer closed (or the connection failed) while we were echoing;
        # nothing to report, and no reason to log a traceback.
        pass


async def _demo() -> None:
    print("wsstream demo: an echo server on 127.0.0.1 and a WebSocketStream client")
    paused = trio.Event()
    resume = trio.Event()

    async def handler(wss: WebSocketStream) -> None:
        readable, writable, *_ = await wss.opened
        async for message in readable:
            if message == "pause":
                paused.set()
                await resume.wait()
                continue
            await writable.send(message)

    async with trio.open_nursery() as nursery:
        listeners = await nursery.start(serve, handler, "127.0.0.1", 0)
        port = listeners[0].socket.getsockname()[1]
        url = f"ws://127.0.0.1:{port}/demo"
        print(f"server listening on {url}")
        async with WebSocketStream(url, write_limit=64 * 1024) as wss:
            readable, writable, extensions, protocol = await wss.opened
            print(f"opened: extensions={extensions!r} protocol={protocol!r}")
            await writable.send("hello, wsstream")
            print(f"text echoed:   {await readable.receive()!r}")
            await writable.send(bytes(range(8)))
            print(f"binary echoed: {await readable.receive()!r}")

            # Backpressure: the server stops reading; our sends soon block.
            await writable.send("pause")
            await paused.wait()
            chunk = os.urandom(65536)  # incompressible, so deflate cannot hide it
            sent = 0
            with trio.move_on_after(1.0) as blocked:
                while True:
                    await writable.send(chunk)
                    sent += 1
            stats = wss.statistics()
            print(
                f"backpressure: the server paused reading; send() blocked after "
                f"{sent} x 64 KiB (blocked={blocked.cancelled_caught}, "
                f"{stats.buffered_out} bytes waiting in our buffer)"
            )
            resume.set()
            for _ in range(sent):
                await readable.receive()
            print(f"resumed: all {sent} messages came back")
            latency = await wss.ping()
            print(f"ping round trip: {latency * 1000:.2f} ms")
            wss.close(1000, "demo done")
            try:
                info = await wss.closed
                print(f"closed cleanly: code={info.close_code} reason={info.reason!r}")
            except WebSocketError as exc:
                print(f"closed abnormally: {exc!r}")
        nursery.cancel_scope.cancel()
    print("demo finished")


# -- options shared by connect and bench -------------------------------------


def _client_options(args: argparse.Namespace) -> dict[str, Any]:
    options: dict[str, Any] = {
        "protocols": args.subprotocol,
        "headers": args.header,
        "compression": None if args.no_compression else "deflate",
        "open_timeout": args.open_timeout,
    }
    if args.ssl_context is not None:
        options["ssl_context"] = args.ssl_context
    return options


def _header(text: str) -> tuple[str, str]:
    name, sep, value = text.partition(":")
    if not sep or not name.strip():
        raise argparse.ArgumentTypeError(f"expected NAME:VALUE, got {text!r}")
    field = (name.strip(), value.strip())
    try:
        Headers([field])  # the library's own rules: a token name, no CR/LF/NUL
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return field


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be positive, not {value}")
    return value


def _seconds(text: str, *, zero: bool) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value < 0 or (value == 0 and not zero):
        wanted = "zero or more" if zero else "more than zero"
        raise argparse.ArgumentTypeError(f"expected {wanted} seconds, got {text!r}")
    return value


def _timeout(text: str) -> float:
    return _seconds(text, zero=False)


def _delay(text: str) -> float:
    return _seconds(text, zero=True)


def _port(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = -1
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"expected a port number 0-65535, got {text!r}")
    return value


def _add_client_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("url", help="ws:// or wss:// URL (http:// and https:// work too)")
    parser.add_argument("-H", "--header", action="append", type=_header, default=[],
                        metavar="NAME:VALUE", help="extra request header (repeatable)")
    parser.add_argument("-s", "--subprotocol", action="append", default=[], metavar="NAME",
                        help="subprotocol to offer (repeatable, in order of preference)")
    parser.add_argument("--no-compression", action="store_true",
                        help="do not offer permessage-deflate")
    parser.add_argument("--cafile", metavar="PEM",
                        help="trust this CA certificate for wss:// (e.g. a test CA)")
    parser.add_argument("-k", "--insecure", action="store_true",
                        help="wss:// without verifying the server's certificate")
    parser.add_argument("--open-timeout", type=_timeout, default=10.0, metavar="SECONDS",
                        help="time allowed for TCP, TLS and the handshake (default: 10)")


async def _open(wss: WebSocketStream) -> Any:
    try:
        return await wss.opened
    except WebSocketError as exc:
        # The error says what failed ("could not connect: HOST:PORT: connection
        # refused", "handshake rejected: HTTP 404"); the URL says where.
        raise CliError(f"{wss.url}: {_describe(exc)}") from None


# -- connect ----------------------------------------------------------------


async def _connect(args: argparse.Namespace, stdin: BinaryIO | None = None) -> int:
    """Send stdin's lines, print each message; on EOF close with 1000."""
    # Bytes, decoded here: a line that is not UTF-8 is sent with U+FFFD in
    # place of the bad bytes, as text always is, instead of failing.
    source = sys.stdin.buffer if stdin is None else stdin
    out = sys.stdout
    options = _client_options(args)
    if args.proxy is not None:
        options["proxy"] = None if args.proxy == "none" else args.proxy
    if args.proxy_ssl_context is not None:
        options["proxy_ssl_context"] = args.proxy_ssl_context
    if args.unix is not None:
        options["unix_socket_path"] = args.unix
    async with WebSocketStream(args.url, **options) as wss:
        readable, writable, extensions, protocol = await _open(wss)
        details = "".join(
            f", {name} {value!r}"
            for name, value in (("subprotocol", protocol), ("extensions", extensions))
            if value
        )
        print(f"connected to {wss.url}{details}; Ctrl-D closes", file=sys.stderr, flush=True)

        async def pump_stdin() -> None:
            while True:
                line = await trio.to_thread.run_sync(source.readline, abandon_on_cancel=True)
                if not line:
                    # EOF: the clean close that the user asked for, once the
                    # replies to the last lines had time to arrive (a peer
                    # that receives our Close stops sending at once).
                    await trio.sleep(args.linger)
                    wss.close(1000)
                    return
                raw = line.removesuffix(b"\n").removesuffix(b"\r")
                message = raw if args.binary else raw.decode("utf-8", "replace")
                try:
                    await writable.send(message)
                except (trio.BrokenResourceError, trio.ClosedResourceError):
                    return  # the connection ended; the reader reports how

        async with trio.open_nursery() as nursery:
            nursery.start_soon(pump_stdin)
            try:
                async for message in readable:
                    if isinstance(message, str):
                        out.write(message + "\n")
                        out.flush()
                    else:
                        out.flush()
                        out.buffer.write(message + b"\n")
                        out.buffer.flush()
            except WebSocketError:
                pass  # the same error comes from `closed`, below
            nursery.cancel_scope.cancel()
        try:
            info = await wss.closed
        except WebSocketError as exc:
            raise CliError(f"connection closed abnormally: {_describe(exc)}") from None
    reason = f", reason {info.reason!r}" if info.reason else ""
    print(f"closed: code {info.close_code}{reason}", file=sys.stderr, flush=True)
    return EXIT_OK if info.close_code in NORMAL_CLOSE_CODES else EXIT_ERROR


# -- serve --------------------------------------------------------------------


def _url_of(sockname: Any, secure: bool) -> str:
    host, port = sockname[0], sockname[1]
    if ":" in host:
        host = f"[{host}]"
    return f"{'wss' if secure else 'ws'}://{host}:{port}/"


async def _serve_echo(
    host: str, port: int, options: dict[str, Any] | None = None, *,
    unix: str | None = None, worker: bool = False,
) -> int:
    """The echo server, until SIGINT or SIGTERM (or, for a worker, until its
    supervisor is gone): then every connection is closed with 1001. Returns
    the exit status: 130 after SIGINT, as for Ctrl-C anywhere, 0 otherwise."""
    options = dict(options or {})
    secure = options.get("ssl_context") is not None
    stop = trio.Event()
    status = EXIT_OK

    async def watch_signals(task_status: trio.TaskStatus[None]) -> None:
        nonlocal status
        # Signals become a graceful shutdown instead of KeyboardInterrupt
        # (or death, for SIGTERM). The receiver is closed at the first, so
        # a second signal acts as it would have without it: it stops the
        # process at once.
        with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
            task_status.started()
            async for signum in signals:
                status = EXIT_INTERRUPTED if signum == signal.SIGINT else EXIT_OK
                stop.set()
                return

    async def watch_supervisor() -> None:
        # A worker's stdin is a pipe from its supervisor, which never
        # writes: its end means the supervisor is gone (even by SIGKILL).
        stdin = trio.lowlevel.FdStream(os.dup(0))
        async with stdin:
            while await stdin.receive_some():
                pass
        stop.set()

    async with trio.open_nursery() as nursery:
        await nursery.start(watch_signals)
        if worker:
            nursery.start_soon(watch_supervisor)
        if unix is not None:
            listeners = await nursery.start(functools.partial(serve_unix, _echo, unix, **options))
            print(f"echo server listening on {unix}", flush=True)
        else:
            listeners = await nursery.start(functools.partial(serve, _echo, host, port, **options))
            suffix = f" (worker {os.getpid()})" if worker else ""
            for listener in listeners:
                sock = getattr(listener, "socket", None) or listener.transport_listener.socket
                url = _url_of(sock.getsockname(), secure)
                # One write for the whole line: the workers share the pipe, and
                # print() writes the end of line apart, so lines could mix.
                print(f"echo server listening on {url}{suffix}\n", end="", flush=True)
        await stop.wait()
        nursery.cancel_scope.cancel()
    return status


# -- bench --------------------------------------------------------------------


class Progress:
    """A progress line on stderr: redrawn in place on a terminal, a few plain
    lines otherwise (so that logs stay readable)."""

    def __init__(self, stream: TextIO, label: str, total: int, unit: str) -> None:
        self.stream = stream
        self.label = label
        self.total = total
        self.unit = unit
        self.tty = stream.isatty()
        self.start = time.perf_counter()
        self.last_draw = 0.0
        self.next_quarter = 0.25
        if not self.tty:
            self._line(f"{label}: {total} {unit}...")

    def _line(self, text: str) -> None:
        self.stream.write(text + "\n")
        self.stream.flush()

    def update(self, done: int, extra: str = "") -> None:
        fraction = done / self.total if self.total else 1.0
        now = time.perf_counter()
        if self.tty:
            if now - self.last_draw < 0.1 and done < self.total:
                return
            self.last_draw = now
            width = 30
            filled = int(width * fraction)
            bar = "#" * filled + "-" * (width - filled)
            self.stream.write(
                f"\r{self.label:<12} [{bar}] {fraction * 100:5.1f}% "
                f"{done}/{self.total} {self.unit} {extra}\x1b[K"
            )
            self.stream.flush()
        elif fraction >= self.next_quarter and done < self.total:
            while fraction >= self.next_quarter:
                self.next_quarter += 0.25
            self._line(f"{self.label}: {fraction * 100:.0f}% {extra}".rstrip())

    def finish(self, summary: str) -> None:
        elapsed = time.perf_counter() - self.start
        if self.tty:
            self.stream.write("\r\x1b[K")
        self._line(f"{self.label}: done in {elapsed:.2f} s; {summary}")


def _percentile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))
    return ordered[index]


async def _bench(args: argparse.Namespace) -> int:
    """Round trips one message at a time, then a stream of messages both ways."""
    err = sys.stderr
    options = _client_options(args)
    # A benchmark must not fail on the size it chose: allow echoes of it.
    options["max_message_size"] = max(2**20, args.size * 2)
    # Random bytes are incompressible: deflate cannot flatter the numbers.
    payload: str | bytes = "x" * args.size if args.text else os.urandom(args.size)
    results: dict[str, Any] = {"url": args.url, "size": args.size}
    async with WebSocketStream(args.url, **options) as wss:
        readable, writable, extensions, _ = await _open(wss)
        results["extensions"] = extensions

        async def expect_echo() -> None:
            try:
                reply = await readable.receive()
            except trio.EndOfChannel:
                raise CliError("the server closed the connection: is it an echo server?") from None
            if len(reply) != len(payload) or type(reply) is not type(payload):
                raise CliError("the reply is not an echo of the message: is it an echo server?")

        try:
            # 1. Round trips: one message out, wait for its echo, again.
            progress = Progress(err, "round trips", args.round_trips, "messages")
            rtts: list[float] = []
            for i in range(args.round_trips):
                t0 = time.perf_counter()
                await writable.send(payload)
                await expect_echo()
                rtts.append(time.perf_counter() - t0)
                progress.update(i + 1)
            median = statistics.median(rtts)
            results["round_trip_ms"] = {
                "min": min(rtts) * 1e3, "median": median * 1e3,
                "p99": _percentile(rtts, 0.99) * 1e3, "max": max(rtts) * 1e3,
            }
            progress.finish(f"median {median * 1e3:.3f} ms")

            # 2. Throughput: the writer never waits for echoes (only for
            # backpressure); the reader counts them.
            progress = Progress(err, "throughput", args.count, "messages")
            start = time.perf_counter()
            received = 0

            async def writer() -> None:
                for _ in range(args.count):
                    await writable.send(payload)

            async with trio.open_nursery() as nursery:
                nursery.start_soon(writer)
                while received < args.count:
                    await expect_echo()
                    received += 1
                    elapsed = time.perf_counter() - start
                    rate = received * args.size / elapsed / 2**20 if elapsed else 0.0
                    progress.update(received, f"{rate:.1f} MiB/s")
            elapsed = time.perf_counter() - start
            results["throughput"] = {
                "messages": args.count,
                "seconds": elapsed,
                "messages_per_s": args.count / elapsed,
                "mib_per_s_each_way": args.count * args.size / elapsed / 2**20,
            }
            progress.finish(f"{args.count / elapsed:,.0f} messages/s")
            results["ping_ms"] = await wss.ping() * 1e3
        except WebSocketError as exc:
            raise CliError(f"connection failed during the benchmark: {_describe(exc)}") from None
        wss.close(1000)
    _print_bench(results, args.json)
    return EXIT_OK


def _print_bench(results: dict[str, Any], as_json: bool) -> None:
    if as_json:
        print(json.dumps(results, indent=2))
        return
    rtt = results["round_trip_ms"]
    tp = results["throughput"]
    print(f"wsstream bench {results['url']}: {results['size']}-byte messages, "
          f"extensions {results['extensions'] or 'none'!r}")
    print(f"  round trip (ms): min {rtt['min']:.3f}  median {rtt['median']:.3f}  "
          f"p99 {rtt['p99']:.3f}  max {rtt['max']:.3f}")
    print(f"  throughput: {tp['messages_per_s']:,.0f} messages/s, "
          f"{tp['mib_per_s_each_way']:.2f} MiB/s each way "
          f"({tp['messages']} messages in {tp['seconds']:.2f} s)")
    print(f"  ping (control frame) round trip: {results['ping_ms']:.3f} ms")


# -- main -----------------------------------------------------------------------


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="wsstream", description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    sub.add_parser("demo", help="run a local echo server and client and show what happens",
                   description="Run an echo server on 127.0.0.1 and a client against it: "
                   "text, binary, backpressure, ping and close.")

    connect = sub.add_parser(
        "connect", help="interactive client: send stdin lines, print messages",
        description="Connect to URL; every line read on stdin is sent as a message (text, "
        "or binary with --binary); every message received is printed on stdout, one per "
        "line (binary messages as raw bytes). End of stdin (Ctrl-D) closes with 1000 "
        "after --linger seconds; the close code is printed on stderr. Exit status 0 "
        "when the connection closed with 1000, 1001 or 1005, else 1 (another close code, "
        "a failed or dropped connection).",
    )
    _add_client_options(connect)
    connect.set_defaults(command_parser=connect)
    connect.add_argument("-b", "--binary", action="store_true",
                         help="send each line as a binary message (its bytes, without newline)")
    connect.add_argument("--linger", type=_delay, default=0.5, metavar="SECONDS",
                         help="after end of stdin, keep printing messages this long "
                         "before closing (default: 0.5)")
    connect.add_argument("--proxy", metavar="URL",
                         help="connect through this proxy: http://, https://, socks5://, "
                         "socks5h://, socks4:// or socks4a://, with user:password@ for "
                         "credentials; 'none': directly (default: from the environment, "
                         "https_proxy, http_proxy, all_proxy and no_proxy, as curl reads them)")
    connect.add_argument("--proxy-cafile", metavar="PEM",
                         help="trust this CA certificate for an https:// proxy")
    connect.add_argument("--unix", metavar="PATH",
                         help="connect to the Unix socket PATH instead of the URL's host "
                         "(the URL still gives Host, the path, and TLS for wss://)")

    serve_parser = sub.add_parser(
        "serve", help="run an echo server",
        usage="%(prog)s [options] [HOST] PORT\n       %(prog)s [options] --unix PATH",
        description="Serve WebSocket on HOST:PORT (or on the Unix socket PATH) until "
        "interrupted, echoing every message back. Ctrl-C (SIGINT) or SIGTERM closes every "
        "connection with 1001; exit status 130 after SIGINT, 0 after SIGTERM. PORT 0 "
        "picks a free port; the listening URL is printed. --workers N runs N processes on "
        "the same port (SO_REUSEPORT; signals are forwarded to all; a worker that dies "
        "stops the others and the command exits 1). --unix serves in one process.",
    )
    serve_parser.set_defaults(command_parser=serve_parser)
    serve_parser.add_argument("--echo", action="store_true",
                              help="echo every message back (what serve does; optional)")
    serve_parser.add_argument("host", nargs="?", default=None,
                              help="address to bind (default: 127.0.0.1)")
    serve_parser.add_argument("port", nargs="?", type=_port,
                              help="port to listen on (0: any free port)")
    serve_parser.add_argument("--unix", metavar="PATH",
                              help="listen on this Unix socket instead of HOST:PORT (a stale "
                              "socket file is removed first; one process: not with --workers)")
    serve_parser.add_argument("--workers", type=_positive_int, default=1, metavar="N",
                              help="run N worker processes on the same port with SO_REUSEPORT "
                              "(default: 1); SIGINT/SIGTERM are forwarded to all; a worker "
                              "that dies is reported, the others are stopped, exit status 1; "
                              "nothing is restarted")
    serve_parser.add_argument("--reuse-port", action="store_true",
                              help="set SO_REUSEPORT, so that other processes may listen on "
                              "the same port (what each worker does)")
    serve_parser.add_argument("--max-connections", type=_positive_int, default=None,
                              metavar="N", help="answer 503 beyond N connections at once "
                              "(per process; default: no limit)")
    # A worker of `serve --workers`: reuse_port, and its stdin is a pipe from
    # the supervisor, whose end stops it. Not for users.
    serve_parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    serve_parser.add_argument("--no-compression", action="store_true",
                              help="refuse permessage-deflate")
    serve_parser.add_argument("--max-message-size", type=_positive_int, default=2**20,
                              metavar="BYTES", help="largest message accepted (default: 1 MiB)")
    serve_parser.add_argument("--certfile", metavar="PEM",
                              help="serve wss:// with this certificate chain")
    serve_parser.add_argument("--keyfile", metavar="PEM",
                              help="private key for --certfile (if not in the same file)")

    bench = sub.add_parser(
        "bench", help="measure round trips and throughput against an echo server",
        description="Against any echo server: first ROUND_TRIPS messages one at a time "
        "(send, wait for the echo), then COUNT messages streamed both ways at once. "
        "Progress goes to stderr, results to stdout.",
    )
    _add_client_options(bench)
    bench.set_defaults(command_parser=bench)
    bench.add_argument("--size", type=_positive_int, default=1024, metavar="BYTES",
                       help="message size (default: 1024)")
    bench.add_argument("--count", type=_positive_int, default=10_000,
                       help="messages for the throughput phase (default: 10000)")
    bench.add_argument("--round-trips", type=_positive_int, default=1000, metavar="N",
                       help="messages for the round-trip phase (default: 1000)")
    bench.add_argument("--text", action="store_true",
                       help="text messages ('x' * size, compressible) instead of random bytes")
    bench.add_argument("--json", action="store_true", help="print the results as JSON")
    return parser


def _check(args: argparse.Namespace) -> None:
    """What the parser's types cannot check alone; exits with status 2 (via
    ``parser.error``, with the command's usage) before anything starts. Loads
    the TLS files, so that a bad path is a bad argument, named as such."""
    command = args.command
    parser: argparse.ArgumentParser | None = getattr(args, "command_parser", None)
    if parser is None:  # demo: no arguments
        return
    if command in ("connect", "bench"):
        try:
            parse_url(args.url)
            check_protocols(args.subprotocol, "--subprotocol")
        except (TypeError, ValueError) as exc:
            parser.error(str(exc))
        args.ssl_context = None
        if args.cafile or args.insecure:
            try:
                context = ssl.create_default_context(cafile=args.cafile)
            except (OSError, ssl.SSLError) as exc:
                parser.error(f"argument --cafile: cannot load {args.cafile!r}: {_reason(exc)}")
            if args.insecure:
                context.check_hostname = False
                context.verify_mode = ssl.CERT_NONE
            args.ssl_context = context
    if command == "connect":
        _check_route(args, parser)
    elif command == "serve":
        args.ssl_context = None
        if args.unix is not None:
            if args.host is not None or args.port is not None:
                parser.error("argument --unix: serves on PATH: give no HOST or PORT")
            if args.workers != 1:
                parser.error("argument --workers: --unix serves in one process")
            if args.reuse_port:
                parser.error("argument --reuse-port: not for a Unix socket")
            if not args.unix:
                parser.error("argument --unix: expected a path")
            if args.certfile:
                # TLS over a Unix socket is serve_listeners with a
                # trio.SSLListener; the command line does not offer it.
                parser.error("argument --certfile: for TCP, not with --unix")
        else:
            if args.port is None:
                if args.host is None:
                    parser.error("the following arguments are required: port")
                # One positional is the port: `serve 8765`.
                try:
                    args.port = _port(args.host)
                except argparse.ArgumentTypeError as exc:
                    parser.error(f"argument port: {exc}")
                args.host = None
            if args.host is None:
                args.host = "127.0.0.1"
        if (args.workers > 1 or args.reuse_port) and not hasattr(socket, "SO_REUSEPORT"):
            option = "--workers" if args.workers > 1 else "--reuse-port"
            parser.error(f"argument {option}: this system has no SO_REUSEPORT")
        if args.keyfile and not args.certfile:
            parser.error("argument --keyfile: needs --certfile")
        if args.certfile:
            context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            try:
                context.load_cert_chain(args.certfile, args.keyfile)
            except (OSError, ssl.SSLError) as exc:
                files = repr(args.certfile)
                if args.keyfile:
                    files += f" (key {args.keyfile!r})"
                parser.error(f"argument --certfile: cannot load {files}: {_reason(exc)}")
            args.ssl_context = context


def _check_route(args: argparse.Namespace, parser: argparse.ArgumentParser) -> None:
    """``connect``'s --proxy, --proxy-cafile and --unix, checked as the library
    checks them; ``args.proxy_ssl_context`` is set from --proxy-cafile."""
    args.proxy_ssl_context = None
    explicit = args.proxy is not None and args.proxy != "none"
    if explicit:
        try:
            proxy = parse_proxy(args.proxy, name="proxy URL")
        except ValueError as exc:  # the message hides the credentials
            parser.error(f"argument --proxy: {exc}")
        if args.proxy_cafile and proxy.scheme != "https":
            parser.error("argument --proxy-cafile: for an https:// proxy only")
    if args.unix is not None:
        if explicit:
            parser.error("argument --unix: not with --proxy URL (a Unix socket is dialled)")
        if not args.unix:
            parser.error("argument --unix: expected a path")
    if args.proxy_cafile:
        try:
            args.proxy_ssl_context = ssl.create_default_context(cafile=args.proxy_cafile)
        except (OSError, ssl.SSLError) as exc:
            parser.error(
                f"argument --proxy-cafile: cannot load {args.proxy_cafile!r}: {_reason(exc)}"
            )


def _reason(exc: OSError) -> str:
    """An error's reason without the errno prefix: "No such file or directory"."""
    if isinstance(exc, ssl.SSLError):
        return exc.reason or str(exc)
    return exc.strerror or str(exc)


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``python -m wsstream`` and the ``wsstream`` script."""
    args = _parser().parse_args(argv)
    _check(args)
    try:
        try:
            return _run(args)
        except BaseExceptionGroup as group:
            raise collapse(group) from None
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    except CliError as exc:
        _err(str(exc))
        return EXIT_ERROR
    except (OSError, ValueError, TypeError) as exc:
        # OSError: a port in use, an address that cannot be bound (the message
        # names it). The arguments were checked: anything else is one line too.
        _err(str(exc))
        return EXIT_ERROR


def _run(args: argparse.Namespace) -> int:
    if args.command == "demo":
        trio.run(_demo)
        return EXIT_OK
    if args.command == "connect":
        return trio.run(_connect, args)
    if args.command == "bench":
        return trio.run(_bench, args)
    if args.workers > 1:
        return supervise(_worker_command(args), args.workers, args.host, args.port, _err)
    options: dict[str, Any] = {
        "compression": None if args.no_compression else "deflate",
        "max_message_size": args.max_message_size,
        "max_connections": args.max_connections,
    }
    if args.unix is None:
        if args.ssl_context is not None:
            options["ssl_context"] = args.ssl_context
        if args.reuse_port or args.worker:
            options["reuse_port"] = True
    status: int = trio.run(
        functools.partial(_serve_echo, unix=args.unix, worker=args.worker),
        args.host, args.port, options,
    )
    return status


def _worker_command(args: argparse.Namespace) -> Callable[[int], list[str]]:
    """The command line of a worker of ``serve --workers``, for a port: this
    server's arguments, with --worker."""

    def command(port: int) -> list[str]:
        line = [sys.executable, "-m", "wsstream", "serve", "--worker",
                "--max-message-size", str(args.max_message_size)]
        if args.no_compression:
            line.append("--no-compression")
        if args.max_connections is not None:
            line += ["--max-connections", str(args.max_connections)]
        if args.certfile:
            line += ["--certfile", args.certfile]
        if args.keyfile:
            line += ["--keyfile", args.keyfile]
        return [*line, "--", args.host, str(port)]

    return command


if __name__ == "__main__":
    sys.exit(main())
