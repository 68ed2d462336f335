"""permessage-deflate settings against headless Chromium as the client.

One wsstream server per setting (``compression=wsstream.Deflate(...)``), all
started before the page; ``tests/browser/deflate.html`` opens a
``WebSocketStream`` to each, records the negotiated extensions, sends chat
events and 64 KiB of text and checks the echoes. Chromium offers
``permessage-deflate; client_max_window_bits``, so the server's settings
decide the answer. One page run per module (tests/interop/test_browser.py's
machinery); Chromium is found as there, and the tests skip without it.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import attrs
import pytest
import trio

import wsstream
from tests.interop.test_browser import PageRun, find_chromium, run_page
from tests.peers.websockets_peer import compressible_messages

pytestmark = [pytest.mark.interop, pytest.mark.slow]

D = wsstream.Deflate
_S, _C = D().server_max_window_bits, D().client_max_window_bits
PMD = "permessage-deflate"
NCT = "server_no_context_takeover; client_no_context_takeover"
#: Our answers under the default client_no_context_takeover (None).
PMD_CNCT = f"{PMD}; client_no_context_takeover"

#: (id, our server's settings, the 101's Sec-WebSocket-Extensions).
CASES: Sequence[tuple[str, wsstream.Deflate, str]] = [
    ("defaults", D(), f"{PMD_CNCT}; server_max_window_bits={_S}; client_max_window_bits={_C}"),
    ("context-kept", D(client_no_context_takeover=False),
     f"{PMD}; server_max_window_bits={_S}; client_max_window_bits={_C}"),
    ("9-9", D(server_max_window_bits=9, client_max_window_bits=9),
     f"{PMD_CNCT}; server_max_window_bits=9; client_max_window_bits=9"),
    ("10-15", D(server_max_window_bits=10, client_max_window_bits=15),
     f"{PMD_CNCT}; server_max_window_bits=10"),
    ("15-15", D(server_max_window_bits=15, client_max_window_bits=15,
                client_no_context_takeover=False), PMD),
    ("nct-11-12", D(server_max_window_bits=11, client_max_window_bits=12,
                    server_no_context_takeover=True, client_no_context_takeover=True),
     f"{PMD}; {NCT}; server_max_window_bits=11; client_max_window_bits=12"),
    ("server-nct-15-10", D(server_max_window_bits=15, client_max_window_bits=10,
                           server_no_context_takeover=True, client_no_context_takeover=False),
     f"{PMD}; server_no_context_takeover; client_max_window_bits=10"),
    # The chat events go uncompressed (RSV1 clear), the 64 KiB compressed.
    ("min-size-level-mem", D(min_size=1024, level=9, mem_level=1),
     f"{PMD_CNCT}; server_max_window_bits={_S}; client_max_window_bits={_C}"),
]


@attrs.define
class Seen:
    offer: str = ""
    extensions: str = ""
    statistics: wsstream.Statistics | None = None


@attrs.frozen
class DeflateRun:
    page: PageRun
    ports: dict[str, int]
    seen: dict[str, Seen]


async def run_deflate_page(chromium: str, workdir: Path) -> DeflateRun:
    seen = {name: Seen() for name, _, _ in CASES}
    ports: dict[str, int] = {}

    def echo(name: str) -> Any:
        async def handler(wss: wsstream.WebSocketStream) -> None:
            readable, writable, extensions, _ = await wss.opened
            assert wss.request is not None
            seen[name].offer = wss.request.headers.get("Sec-WebSocket-Extensions", "")
            seen[name].extensions = extensions
            async for message in readable:
                await writable.send(message)
            seen[name].statistics = wss.statistics()

        return handler

    async with trio.open_nursery() as nursery:
        for name, settings, _ in CASES:
            listeners = await nursery.start(
                lambda task_status, name=name, settings=settings: wsstream.serve(
                    echo(name), "127.0.0.1", 0, compression=settings, task_status=task_status
                )
            )
            ports[name] = listeners[0].socket.getsockname()[1]
        query = "&ports=" + ",".join(str(port) for port in ports.values())
        page = await run_page(chromium, "deflate", workdir, query)
        nursery.cancel_scope.cancel()
    return DeflateRun(page, ports, seen)


@pytest.fixture(scope="module")
def deflate_run(tmp_path_factory: pytest.TempPathFactory) -> DeflateRun:
    chromium = find_chromium()
    if chromium is None:
        explicit = os.environ.get("WSSTREAM_CHROMIUM")
        pytest.skip(
            f"$WSSTREAM_CHROMIUM={explicit!r} is not an executable file" if explicit else
            "Chromium is not installed (no chromium, chromium-browser or google-chrome "
            "on PATH, and $WSSTREAM_CHROMIUM unset): apt-get install chromium"
        )
    run = trio.run(run_deflate_page, chromium, tmp_path_factory.mktemp("chromium-deflate"))
    if "fatal" in run.page.report:
        pytest.fail(f"the page crashed: {run.page.report['fatal']}\n{run.page.chromium_log}")
    return run


@pytest.mark.parametrize(("name", "settings", "expected"), CASES, ids=[c[0] for c in CASES])
def test_deflate_settings_negotiate_with_chromium(
    deflate_run: DeflateRun, name: str, settings: wsstream.Deflate, expected: str
) -> None:
    value = deflate_run.page.value(f"deflate:{deflate_run.ports[name]}")
    seen = deflate_run.seen[name]
    # What Chromium 156 offers; our answer is what both sides then report.
    assert seen.offer == "permessage-deflate; client_max_window_bits"
    assert value["extensions"] == seen.extensions == expected
    assert value["same"] == value["sent"] == len(compressible_messages())
    assert value["closeCode"] == 1000
    stats = seen.statistics
    assert stats is not None
    payload = sum(len(m.encode()) for m in compressible_messages())
    # Compressed both ways: Chromium compresses every message, we all of
    # those of min_size or more.
    assert stats.bytes_received < payload // 2
    assert stats.bytes_sent < payload // 2
