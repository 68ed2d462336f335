"""Messages larger than memory (issue 16): receive_stream() and
send_stream() over the engine, with their limits, holding, cancellation and
the rules against interleaving."""

from __future__ import annotations

import hashlib
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import pytest
import trio
import trio.testing

import wsstream
from tests.engine.test_engine import open_client
from tests.peer import BINARY, CONT, TEXT

MIB = 2**20

Handler = Callable[[wsstream.WebSocketStream], Awaitable[None]]


@asynccontextmanager
async def pair(
    handler: Handler, **options: Any
) -> AsyncIterator[wsstream.WebSocketStream]:
    """A wsstream client and a wsstream server over memory streams."""
    ours, theirs = trio.testing.memory_stream_pair()
    options.setdefault("ping_interval", None)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(lambda: wsstream.serve_stream(handler, theirs, **options))
        async with wsstream.WebSocketStream("ws://test/", stream=ours, **options) as wss:
            yield wss


async def test_an_upload_far_over_max_message_size_streams_through_bounded_memory() -> None:
    result: dict[str, Any] = {}

    async def handler(wss: wsstream.WebSocketStream) -> None:
        readable, writable, *_ = await wss.opened
        hasher = hashlib.sha256()
        async with readable.receive_stream() as message:
            async for chunk in message:
                hasher.update(chunk)  # type: ignore[arg-type]
                result["peak"] = max(result.get("peak", 0), wss.statistics().buffered_in)
        result["text"], result["size"] = message.text, message.size
        await writable.send(hasher.hexdigest())

    async with pair(handler, read_limit=256 * 1024) as wss:
        readable, writable, *_ = await wss.opened
        expected = hashlib.sha256()
        async with writable.send_stream() as message:
            for i in range(64):
                block = bytes([i]) * (256 * 1024)
                expected.update(block)
                await message.send(block)
        assert await readable.receive() == expected.hexdigest()
    assert (result["text"], result["size"]) == (False, 16 * MIB)
    assert result["peak"] <= 256 * 1024 + 256 * 1024 + 64  # read_limit + one piece


async def test_a_message_over_the_limit_before_the_call_is_held_then_streamed() -> None:
    # The whole message arrives before the handler asks for it: it is held
    # (nothing failed, nothing lost), and receive_stream() takes it.
    arrived = trio.Event()

    async def handler(wss: wsstream.WebSocketStream) -> None:
        readable, writable, *_ = await wss.opened
        await arrived.wait()
        await trio.testing.wait_all_tasks_blocked()
        async with readable.receive_stream() as message:
            data = b"".join([chunk async for chunk in message])  # type: ignore[misc]
        await writable.send(str(len(data)))
        assert await readable.receive() == "after"

    async with pair(handler, max_message_size=1000) as wss:
        readable, writable, *_ = await wss.opened
        await writable.send(os.urandom(50_000))
        await writable.send("after")
        arrived.set()
        assert await readable.receive() == "50000"


async def test_receive_fails_a_held_message_with_1009() -> None:
    async with open_client(max_message_size=1000) as (wss, peer):
        readable, *_ = await wss.opened
        await peer.send(TEXT, b"fits")
        await peer.send(BINARY, b"x" * 5000)
        assert await readable.receive() == "fits"  # what came before is read
        with pytest.raises(wsstream.WebSocketError) as error:
            await readable.receive()
        assert error.value.close_code == 1009
        assert (await peer.expect_close())[0] == 1009


async def test_leaving_a_streamed_message_early_drops_the_rest() -> None:
    async with open_client(max_message_size=None) as (wss, peer):
        readable, *_ = await wss.opened
        await peer.send(BINARY, b"a" * 1000, fin=False)
        async with readable.receive_stream() as message:
            assert await message.receive() == b"a" * 1000
        await peer.send(CONT, b"b" * 1000, fin=False)
        await peer.send(CONT, b"c" * 1000, fin=True)
        await peer.send(TEXT, b"next")
        assert await readable.receive() == "next"
        assert wss.statistics().messages_received >= 1


async def test_a_whole_message_already_there_streams_as_one_chunk() -> None:
    async with open_client() as (wss, peer):
        readable, *_ = await wss.opened
        await peer.send(TEXT, "h\u00e9".encode())
        await trio.testing.wait_all_tasks_blocked()
        async with readable.receive_stream() as message:
            assert [chunk async for chunk in message] == ["h\u00e9"]
        assert message.text is True


async def test_text_chunks_split_on_characters_and_bad_utf8_fails_with_1007() -> None:
    async with open_client(max_message_size=None) as (wss, peer):
        readable, *_ = await wss.opened
        text = "\U0001f600".encode()
        await peer.send(TEXT, text[:2], fin=False)
        async with readable.receive_stream() as message:
            await peer.send(CONT, text[2:] + b"!", fin=False)
            assert await message.receive() == "\U0001f600!"
            await peer.send(CONT, b"\xff", fin=True)
            with pytest.raises(wsstream.WebSocketError) as error:
                await message.receive()
        assert error.value.close_code == 1007


async def test_receive_while_a_message_is_streamed_is_busy() -> None:
    async with open_client() as (wss, peer):
        readable, *_ = await wss.opened
        await peer.send(BINARY, b"a", fin=False)
        async with readable.receive_stream():
            with pytest.raises(trio.BusyResourceError):
                await readable.receive()
            with pytest.raises(trio.BusyResourceError):
                async with readable.receive_stream():
                    pass  # pragma: no cover


async def test_the_streamed_limit_fails_with_1009() -> None:
    async with open_client(max_streamed_size=1500) as (wss, peer):
        readable, *_ = await wss.opened
        async with readable.receive_stream() as message:
            await peer.send(BINARY, b"a" * 1000, fin=False)
            assert await message.receive() == b"a" * 1000
            await peer.send(CONT, b"b" * 1000, fin=True)
            with pytest.raises(wsstream.WebSocketError) as error:
                await message.receive()
        assert error.value.close_code == 1009


async def test_other_sends_wait_for_a_message_sent_in_parts() -> None:
    async with open_client() as (wss, peer):
        _, writable, *_ = await wss.opened
        async with trio.open_nursery() as nursery, writable.send_stream() as message:
            await message.send(b"one")
            nursery.start_soon(writable.send, "other")
            await trio.testing.wait_all_tasks_blocked()
            with pytest.raises(trio.WouldBlock):
                writable.send_nowait("now")
            await message.send(b"two")
        frames = [await peer.receive_frame() for _ in range(4)]
        assert frames == [
            (BINARY, b"one", False), (CONT, b"two", False), (CONT, b"", True),
            (TEXT, b"other", True),
        ]


async def test_a_producer_that_fails_midway_fails_the_connection_with_1011() -> None:
    async with open_client() as (wss, peer):
        _, writable, *_ = await wss.opened
        with pytest.raises(ZeroDivisionError):
            async with writable.send_stream() as message:
                await message.send(b"half")
                1 / 0  # noqa: B018
        assert (await peer.receive_frame())[:2] == (BINARY, b"half")
        assert (await peer.expect_close())[0] == 1011
        await peer.stream.aclose()
        with pytest.raises(wsstream.WebSocketError) as error:
            await wss.closed
        assert error.value.close_code == 1011


async def test_a_cancelled_producer_midway_fails_with_1011_but_before_any_part_does_not() -> None:
    async with open_client() as (wss, peer):
        _, writable, *_ = await wss.opened
        with trio.CancelScope() as scope:
            async with writable.send_stream():
                scope.cancel()
                await trio.sleep_forever()
        # Nothing was sent: nothing to take back, the connection is fine.
        await writable.send("still open")
        assert await peer.receive_frame() == (TEXT, b"still open", True)
        with trio.CancelScope() as scope:
            async with writable.send_stream() as message:
                await message.send(b"half")
                scope.cancel()
                await trio.sleep_forever()
        assert (await peer.receive_frame())[:2] == (BINARY, b"half")
        assert (await peer.expect_close())[0] == 1011


async def test_a_text_message_in_parts_takes_str_only() -> None:
    async with open_client() as (wss, peer):
        _, writable, *_ = await wss.opened
        async with writable.send_stream(text=True) as message:
            with pytest.raises(TypeError):
                await message.send(b"bytes")
            await message.send("h\u00e9")
        assert await peer.receive_frame() == (TEXT, "h\u00e9".encode(), False)
        assert await peer.receive_frame() == (CONT, b"", True)


async def test_compressed_messages_stream_both_ways() -> None:
    payload = b"compressible " * 500_000  # 6.5 MB

    async def handler(wss: wsstream.WebSocketStream) -> None:
        readable, writable, *_ = await wss.opened
        async with readable.receive_stream() as message:
            size = 0
            async for chunk in message:
                size += len(chunk)
        async with writable.send_stream() as out:
            for i in range(0, len(payload), MIB):
                await out.send(payload[i : i + MIB])
        assert size == len(payload)

    async with pair(handler, compression="deflate") as wss:
        readable, writable, extensions, _ = await wss.opened
        assert extensions.startswith("permessage-deflate")
        async with writable.send_stream() as message:
            await message.send(payload)
        async with readable.receive_stream() as back:
            assert b"".join([chunk async for chunk in back]) == payload  # type: ignore[misc]
        assert wss.statistics().bytes_received < len(payload) // 10


async def test_lone_surrogates_in_a_text_part_go_as_u_fffd() -> None:
    # As send() does (the browser's USVString): never invalid UTF-8 on the wire.
    async with open_client() as (wss, peer):
        _, writable, *_ = await wss.opened
        async with writable.send_stream(text=True) as message:
            await message.send("a\udcffb")
        assert await peer.receive_frame() == (TEXT, "a\ufffdb".encode(), False)
