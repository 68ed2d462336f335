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
import os
import signal
import socket
import ssl
import sys
from collections.abc import Callable
from typing import Any, BinaryIO

import trio

from ._cli.bench import _bench
from ._cli.common import (
    EXIT_ERROR,
    EXIT_INTERRUPTED,
    EXIT_OK,
    NORMAL_CLOSE_CODES,
    CliError,
    _add_client_options,
    _client_options,
    _delay,
    _describe,
    _err,
    _open,
    _port,
    _positive_int,
)
from ._cli.demo import _demo, _echo
from ._cli.workers import supervise
from ._endpoints.listen import serve, serve_unix
from ._endpoints.proxy import parse_proxy
from ._endpoints.url import check_protocols, parse_url
from ._errors import WebSocketError, collapse
from ._streams.stream import WebSocketStream

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
