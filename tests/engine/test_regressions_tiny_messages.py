"""Regression: tiny and empty messages count towards read_limit too.

read_limit counted payload bytes only, so a flood of empty messages never
paused reading and 2-byte messages held ~34x read_limit in memory (found by
the hostile-peer work). Each buffered message now also counts 64 bytes.
"""

import tracemalloc
from typing import Any

import pytest

from tests.engine.test_memory import CONSTANT, READ_LIMIT, client, flooding, measure
from tests.peer import BINARY, build_frame


@pytest.mark.parametrize("size", [0, 2])
async def test_a_flood_of_tiny_messages_is_bounded_in_memory_not_only_in_bytes(
    autojump_clock: Any, size: int
) -> None:
    # read_limit counts payload bytes; messages of 0 or 2 bytes must still
    # pause reading before their per-message overhead runs away.
    frames = [build_frame(BINARY, b"e" * size)] * 10_000
    async with client() as (wss, peer, stream):
        readable, *_ = await wss.opened
        with measure() as growth:
            async with flooding(peer, frames) as sent:
                paused_at = sent[0]
                current = tracemalloc.get_traced_memory()[0] - growth.base
                for _ in range(len(frames)):
                    assert await readable.receive() == b"e" * size
        assert current <= 4 * READ_LIMIT + CONSTANT, f"paused after {paused_at} messages"
