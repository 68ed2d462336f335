"""A hand-scripted WebSocket peer over any trio stream, for protocol corners.

It builds and parses frames itself (RFC 6455 5.2), so a test can send exactly
the bytes it wants (bad UTF-8, a Close in the middle of a message, a flood of
pings) and see exactly what wsstream wrote back.
"""

from __future__ import annotations

import base64
import hashlib
import os
import struct
from collections.abc import Sequence

import trio

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
CONT, TEXT, BINARY, CLOSE, PING, PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA


def accept_key(key: str) -> str:
    return base64.b64encode(hashlib.sha1(key.encode() + GUID).digest()).decode()


def new_key() -> str:
    return base64.b64encode(os.urandom(16)).decode()


def client_request(key: str, path: str = "/", extra: Sequence[str] = ()) -> bytes:
    lines = [
        f"GET {path} HTTP/1.1",
        "Host: test",
        "Upgrade: websocket",
        "Connection: Upgrade",
        f"Sec-WebSocket-Key: {key}",
        "Sec-WebSocket-Version: 13",
        *extra,
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def build_frame(
    opcode: int, payload: bytes = b"", *, fin: bool = True, mask: bool = False, rsv1: bool = False
) -> bytes:
    head = (0x80 if fin else 0) | (0x40 if rsv1 else 0) | opcode
    n = len(payload)
    mask_bit = 0x80 if mask else 0
    if n < 126:
        header = struct.pack("!BB", head, mask_bit | n)
    elif n < 65536:
        header = struct.pack("!BBH", head, mask_bit | 126, n)
    else:
        header = struct.pack("!BBQ", head, mask_bit | 127, n)
    if mask:
        key = os.urandom(4)
        masked = bytes(b ^ key[i % 4] for i, b in enumerate(payload))
        return header + key + masked
    return header + payload


def close_payload(code: int | None, reason: str = "") -> bytes:
    return b"" if code is None else struct.pack("!H", code) + reason.encode()


class Peer:
    """One end of a stream, speaking WebSocket by hand."""

    def __init__(self, stream: trio.abc.Stream, *, is_client: bool) -> None:
        self.stream = stream
        self.is_client = is_client
        self.buffer = bytearray()
        self.eof = False

    async def _fill(self) -> bool:
        data = await self.stream.receive_some(65536)
        if not data:
            self.eof = True
            return False
        self.buffer += data
        return True

    async def read_exact(self, n: int) -> bytes:
        while len(self.buffer) < n:
            if not await self._fill():
                raise EOFError(f"wanted {n} bytes, got {len(self.buffer)}")
        data = bytes(self.buffer[:n])
        del self.buffer[:n]
        return data

    async def read_http(self) -> tuple[str, dict[str, str]]:
        while b"\r\n\r\n" not in self.buffer:
            if not await self._fill():
                raise EOFError("no complete HTTP head")
        head, _, rest = bytes(self.buffer).partition(b"\r\n\r\n")
        self.buffer = bytearray(rest)
        first, *lines = head.decode("latin-1").split("\r\n")
        headers = {}
        for line in lines:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        return first, headers

    # -- server role ------------------------------------------------------

    async def accept(self, *, protocol: str | None = None, extra: bytes = b"") -> dict[str, str]:
        """Read the client's request and answer 101; returns its headers."""
        _, headers = await self.read_http()
        lines = [
            "HTTP/1.1 101 Switching Protocols",
            "Upgrade: websocket",
            "Connection: Upgrade",
            f"Sec-WebSocket-Accept: {accept_key(headers['sec-websocket-key'])}",
        ]
        if protocol is not None:
            lines.append(f"Sec-WebSocket-Protocol: {protocol}")
        await self.stream.send_all(("\r\n".join(lines) + "\r\n\r\n").encode() + extra)
        return headers

    # -- client role ------------------------------------------------------

    async def handshake(self, path: str = "/", headers: dict[str, str] | None = None) -> str:
        """Send an opening request and read the response; returns the status line."""
        key = new_key()
        extra = [f"{k}: {v}" for k, v in (headers or {}).items()]
        await self.stream.send_all(client_request(key, path, extra))
        status, response = await self.read_http()
        if status.startswith("HTTP/1.1 101"):
            assert response["sec-websocket-accept"] == accept_key(key)
        return status

    # -- frames -----------------------------------------------------------

    async def send(
        self, opcode: int, payload: bytes = b"", *, fin: bool = True, rsv1: bool = False
    ) -> None:
        await self.stream.send_all(
            build_frame(opcode, payload, fin=fin, mask=self.is_client, rsv1=rsv1)
        )

    async def send_close(self, code: int | None = 1000, reason: str = "") -> None:
        await self.send(CLOSE, close_payload(code, reason))

    async def receive_frame(self) -> tuple[int, bytes, bool]:
        """(opcode, unmasked payload, fin) of the next frame."""
        b0, b1 = await self.read_exact(2)
        n = b1 & 0x7F
        if n == 126:
            (n,) = struct.unpack("!H", await self.read_exact(2))
        elif n == 127:
            (n,) = struct.unpack("!Q", await self.read_exact(8))
        masked = bool(b1 & 0x80)
        assert masked == (not self.is_client), "masking is wrong for this side"
        key = await self.read_exact(4) if masked else b""
        payload = await self.read_exact(n)
        if masked:
            payload = bytes(b ^ key[i % 4] for i, b in enumerate(payload))
        return b0 & 0x0F, payload, bool(b0 & 0x80)

    async def expect_close(self) -> tuple[int | None, str]:
        """Skip data and control frames until a Close; returns its code and reason."""
        while True:
            opcode, payload, _ = await self.receive_frame()
            if opcode == CLOSE:
                if not payload:
                    return None, ""
                (code,) = struct.unpack("!H", payload[:2])
                return code, payload[2:].decode()

    async def expect_eof(self) -> None:
        while not self.eof:
            self.buffer.clear()
            await self._fill()
