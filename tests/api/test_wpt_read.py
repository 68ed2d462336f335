"""WPT websockets/stream/tentative/read.any.js, translated (RD1).

Uint8Array's Python counterpart is ``bytes``. Runs over ws:// and wss://.
"""

from __future__ import annotations

from tests.wpt_handlers import ECHO_OPTIONS, WptServer, echo


async def test_RD1_read_type_for_binary_messages_is_bytes(wpt: WptServer) -> None:
    url = await wpt.serve(echo, **ECHO_OPTIONS) + "/echo"
    async with wpt.client(url) as wss:
        readable, writable, *_ = await wss.opened
        for sent in (bytes(16), bytearray(16), memoryview(bytes(16))):
            await writable.send(sent)
            value = await readable.receive()
            assert type(value) is bytes
            assert len(value) == 16
            assert value == bytes(16)
        await writable.send("text")
        text = await readable.receive()
        assert type(text) is str
        assert text == "text"
