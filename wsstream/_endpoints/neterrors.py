"""Socket errors that say which address they are about.

trio's ``open_tcp_stream`` reports a refused connection as "all attempts to
connect to HOST:PORT failed" (the reason is in the exception's cause), and
a name that does not resolve as "[Errno -2] Name or service not known"
(no name); binding says "[Errno 98] Address already in use" (no address).
:func:`with_address` gives the same error type and ``errno`` with one message
that has both: ``"127.0.0.1:1: connection refused"``, ``"cannot listen on
127.0.0.1:8765: address already in use"``.
"""

from __future__ import annotations

import os
import socket

__all__ = ["at_path", "os_error", "with_address", "with_path"]


def with_address(
    exc: OSError, host: str | bytes | None, port: int, action: str = ""
) -> OSError:
    """``exc`` again, its message ``"[ACTION ]HOST:PORT: reason"``.

    The error has the type and ``errno`` of the system's own error (for
    trio's "all attempts failed", of the first attempt's) and that error's
    cause (trio's group of attempts), else the error itself, as its cause:
    raise it without ``from``. ``host=None``
    (every interface) is written ``*``.
    """
    if isinstance(host, bytes):
        host = host.decode("ascii", "replace")
    if host is None:
        where = f"*:{port}"
    elif ":" in host:
        where = f"[{host}]:{port}"
    else:
        where = f"{host}:{port}"
    original = _first_cause(exc)
    message = f"{action} {where}: {_reason(original)}".lstrip()
    try:
        # The type of the first attempt's error: ConnectionRefusedError,
        # socket.gaierror... so that callers can still tell them apart.
        error = type(original)(message)
    except Exception:  # an OSError subclass with a constructor of its own
        error = OSError(message)
    # Only errno: with strerror set too, str() would become "[Errno N] strerror".
    error.errno = original.errno
    # Its cause is the original's (trio's group of attempts), else the original.
    error.__cause__ = exc.__cause__ or exc
    return error


def at_path(exc: OSError, path: str) -> OSError:
    """``exc`` again, its message ``"unix socket PATH: reason"``; as
    :func:`with_address`, for a Unix socket being dialled."""
    error = with_path(_first_cause(exc), path, "unix socket")
    error.__cause__ = exc.__cause__ or exc
    return error


def _first_cause(exc: OSError) -> OSError:
    """The first attempt's error behind trio's "all attempts ... failed"."""
    cause = exc.__cause__
    while isinstance(cause, BaseExceptionGroup):
        cause = cause.exceptions[0]
    return cause if isinstance(cause, OSError) else exc


def _reason(original: OSError) -> str:
    """What the system said, worded as the end of a sentence."""
    if isinstance(original, socket.gaierror):
        return f"name not resolved ({original.strerror or original})"
    if isinstance(original.errno, int) and original.errno > 0:
        # The system's own words: trio's strerror repeats the address.
        reason = os.strerror(original.errno)
    else:
        reason = original.strerror or str(original)
    if reason[:1].isupper() and reason[1:2].islower():
        reason = reason[0].lower() + reason[1:]
    return reason


def with_path(exc: OSError, path: str, action: str = "") -> OSError:
    """``exc`` again for a Unix socket's ``path``: ``"[ACTION ]PATH: reason"``,
    with the type and ``errno`` of ``exc`` and ``exc`` as its cause (raise it
    without ``from``)."""
    return _error(type(exc), exc.errno, f"{action} {path}: {_reason(exc)}".lstrip(), exc)


def _error(
    kind: type[OSError], number: int | None, message: str, cause: BaseException | None = None
) -> OSError:
    try:
        error = kind(message)
    except Exception:  # an OSError subclass with a constructor of its own
        error = OSError(message)
    # Only errno: with strerror set too, str() would become "[Errno N] strerror".
    error.errno = number
    error.__cause__ = cause
    return error


def os_error(kind: type[OSError], number: int, message: str) -> OSError:
    """A new ``kind`` error with ``errno`` ``number`` and exactly ``message``."""
    return _error(kind, number, message)
