"""What a message is on the way out: the browser's rules for ``send()``.

The browser's ``WritableStream`` of a WebSocketStream takes a string (a text
message, converted to a USVString first: lone surrogates become U+FFFD) or
any ``BufferSource`` (a binary message made of a copy of its bytes). In
Python, ``str`` is the string and any object with the buffer protocol is the
buffer source; anything else is a :class:`TypeError`.

:func:`encode_message` is the one place that turns what the user passed to
``send()`` into a payload, for the streams and for the classic interface.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

__all__ = ["Buffer", "SendableMessage", "encode_message", "usv_encode"]

if TYPE_CHECKING:
    # collections.abc.Buffer from Python 3.12 on; typing_extensions has it for
    # the type checker only (it is not a runtime dependency).
    from typing_extensions import Buffer
elif sys.version_info >= (3, 12):
    from collections.abc import Buffer
else:
    # Python 3.11 has no ABC for the buffer protocol; only type checkers and
    # the docs read this name, so the common buffers stand in for it.
    Buffer = bytes | bytearray | memoryview

#: What ``send()`` accepts: a ``str`` (text) or any object with the buffer
#: protocol (binary).
SendableMessage = str | Buffer


def usv_encode(text: str) -> bytes:
    """``text`` in UTF-8, each lone surrogate replaced by U+FFFD.

    This is the browser's USVString conversion followed by UTF-8 encoding.
    A surrogate pair written as two code points (``"\\ud83d\\ude00"``)
    becomes the character it stands for, as in a JavaScript string.
    """
    try:
        return text.encode()
    except UnicodeEncodeError:
        # UTF-16 with surrogatepass joins the pairs; decoding it back with
        # "replace" turns each surrogate left alone into U+FFFD. (The "replace"
        # error handler of the UTF-8 encoder would give "?" instead.)
        fixed = text.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")
        return fixed.encode()


def encode_message(message: object) -> tuple[bool, bytes]:
    """The payload of ``message`` for ``send()``: ``(is_text, payload)``.

    A ``str`` gives ``(True, its UTF-8 bytes)``, lone surrogates replaced by
    U+FFFD. Any object with the buffer protocol gives ``(False, its bytes)``,
    exactly what ``memoryview(message).tobytes()`` gives (C order, so a
    non-contiguous view works too, whatever its format); ``bytes`` itself is
    returned as it is, anything else is copied, so the caller may reuse a
    mutable buffer as soon as this returns. Raises :class:`TypeError` for
    anything else.
    """
    # The common cases first, by exact type: no isinstance walk, no copy.
    if type(message) is str:
        try:
            return True, message.encode()
        except UnicodeEncodeError:
            return True, usv_encode(message)
    if type(message) is bytes:
        return False, message
    if isinstance(message, str):  # a subclass of str
        return True, usv_encode(message)
    try:
        view = memoryview(message)  # type: ignore[arg-type]
    except TypeError:
        raise TypeError(
            "a message must be a str (text) or an object with the buffer protocol "
            "such as bytes, bytearray or memoryview (binary), "
            f"not {type(message).__name__}"
        ) from None
    with view:
        return False, view.tobytes()
