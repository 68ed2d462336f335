"""Large payloads on a plain socket are read straight into the buffer that
holds them (Core.input_buffer), not through the read buffer and a copy."""

from __future__ import annotations

import os

import pytest

import wsstream
from tests.conftest import Server, echo_handler
from wsstream._protocol.receiver import Receiver

pytestmark = pytest.mark.skipif(os.name != "posix", reason="the direct path is POSIX only")


async def test_a_large_message_is_read_into_its_own_buffer_on_both_sides(
    server: Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    through_copy = [0]
    original = Receiver.receive_data

    def counting(self: Receiver, data: bytes | bytearray | memoryview) -> None:
        through_copy[0] += len(data)
        original(self, data)

    monkeypatch.setattr(Receiver, "receive_data", counting)
    payload = os.urandom(4 << 20)
    url = await server.start(echo_handler, compression=None, max_message_size=8 << 20)
    async with wsstream.WebSocketStream(
        url, compression=None, max_message_size=8 << 20
    ) as wss:
        readable, writable, *_ = await wss.opened
        for _ in range(3):
            await writable.send(payload)
            assert await readable.receive() == payload
        wss.close()
    # 24 MiB crossed the two readers (3 x 4 MiB each way); what went through
    # the read buffer is the headers and the first read of each payload.
    assert through_copy[0] < 6 << 20
