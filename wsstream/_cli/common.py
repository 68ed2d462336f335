"""What the command line's commands share: errors, exit statuses, argument
types and the client's options."""

from __future__ import annotations

import argparse
import math
import sys
from typing import Any

from .._endpoints.http import Headers
from .._errors import HandshakeError, WebSocketError
from .._streams.stream import WebSocketStream

__all__ = [
    "EXIT_ERROR",
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "NORMAL_CLOSE_CODES",
    "CliError",
]

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


