"""Every example in examples/ runs as ``python examples/NAME.py`` (a
subprocess, on 127.0.0.1, with a timeout) and does what its docstring says."""

from __future__ import annotations

import contextlib
import functools
import os
import re
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import trio

import wsstream

EXAMPLES = Path(__file__).resolve().parent.parent.parent / "examples"
TIMEOUT = 60
ENV = {**os.environ, "PYTHONUNBUFFERED": "1", "PYTHONIOENCODING": "utf-8"}


async def run_example(*args: str) -> str:
    """Run an example to completion; its stdout, after checking it succeeded."""
    with trio.fail_after(TIMEOUT):
        result = await trio.run_process(
            [sys.executable, str(EXAMPLES / args[0]), *args[1:]],
            capture_stdout=True, capture_stderr=True, check=False, env=ENV,
        )
    assert result.returncode == 0, result.stderr.decode()
    assert b"Traceback" not in result.stderr, result.stderr.decode()
    return result.stdout.decode()


class Background:
    """An example server running in a child process, read line by line."""

    def __init__(self, process: trio.Process) -> None:
        self.process = process
        self.buffer = b""

    async def readline(self) -> str:
        assert self.process.stdout is not None
        with trio.fail_after(TIMEOUT):
            while b"\n" not in self.buffer:
                chunk = await self.process.stdout.receive_some()
                assert chunk, f"the example exited early: {self.buffer!r}"
                self.buffer += chunk
        line, _, self.buffer = self.buffer.partition(b"\n")
        return line.decode()


@contextlib.asynccontextmanager
async def background(nursery: trio.Nursery, *args: str) -> AsyncIterator[Background]:
    process = await nursery.start(functools.partial(
        trio.run_process, [sys.executable, str(EXAMPLES / args[0]), *args[1:]],
        stdout=subprocess.PIPE, check=False, env=ENV,
    ))
    try:
        yield Background(process)
    finally:
        process.send_signal(signal.SIGINT)  # as Ctrl-C: the servers exit quietly
        with trio.move_on_after(10):
            await process.wait()
        if process.returncode is None:
            process.kill()


async def test_echo_server_and_client(nursery: trio.Nursery) -> None:
    async with background(nursery, "echo_server.py", "127.0.0.1", "0") as server:
        line = await server.readline()
        match = re.fullmatch(r"echo server listening on ws://127\.0\.0\.1:(\d+)/", line)
        assert match, line
        out = await run_example("echo_client.py", "127.0.0.1", match[1])
    assert "echoed: hello\n" in out
    assert "echoed: b'\\x00\\x01\\x02'\n" in out
    assert "closed: code 1000, reason 'bye'" in out


async def test_echo_client_without_a_server_fails_cleanly() -> None:
    with trio.socket.socket() as sock:
        await sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with trio.fail_after(TIMEOUT):
        result = await trio.run_process(
            [sys.executable, str(EXAMPLES / "echo_client.py"), "127.0.0.1", str(port)],
            capture_stdout=True, capture_stderr=True, check=False, env=ENV,
        )
    assert result.returncode == 1
    assert result.stderr.decode().startswith(f"cannot connect to ws://127.0.0.1:{port}/")


async def test_chat_drop_policy_never_stalls_the_fast_members() -> None:
    out = await run_example("chat.py", "demo", "--policy", "drop")
    assert "server: snail's outbox is full: dropping messages for it" in out
    assert "alice: received 1000/1000 chat messages" in out
    assert "bob: received 1000/1000 chat messages" in out
    dropped = re.search(r"server: dropped (\d+) messages for snail in all", out)
    received = re.search(r"snail: received (\d+) chat messages; (\d+) notices", out)
    assert dropped and received, out
    assert int(dropped[1]) > 0
    # Each chat message was delivered or dropped (the drops may include the
    # "done", "joined" and "left" lines too: four of them).
    assert 1000 <= int(received[1]) + int(dropped[1]) <= 1004


async def test_chat_disconnect_policy_closes_the_slow_member_with_1008() -> None:
    out = await run_example("chat.py", "--policy", "disconnect")
    assert "server: snail's outbox is full: disconnecting it (1008)" in out
    assert "alice: received 1000/1000 chat messages" in out
    assert "bob: received 1000/1000 chat messages" in out
    assert "then the server closed it: code 1008, reason 'too slow'" in out


async def test_pipeline_backpressure_reaches_the_source() -> None:
    out = await run_example("pipeline.py", "--count", "300", "--rate", "300")
    assert "backpressure: the slow sink held the source back" in out
    rows = [line.split() for line in out.splitlines() if re.match(r"\s*\d+\.\d+s ", line)]
    assert rows
    # In flight (sent by the source, not yet read by the sink) stays bounded by
    # the buffers on the way, far below the 300 messages sent.
    assert max(int(row[4]) for row in rows) < 200


async def test_batching_relays_every_event_both_ways() -> None:
    # The sink checks each event's order and added field, and the example
    # exits non-zero unless it answered "done" after exactly --count events.
    out = await run_example("batching.py", "--count", "3000")
    for loop in ("plain", "batching"):
        line = next(line for line in out.splitlines() if line.strip().startswith(loop))
        assert "every event checked by the sink" in line
        assert float(line.split(":")[1].split()[0].replace(",", "")) > 0


async def http_get(port: int, path: str) -> bytes:
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    async with stream:
        await stream.send_all(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
        response = b""
        while chunk := await stream.receive_some():
            response += chunk
    return response


async def test_browser_example_serves_the_page_and_the_websocket(
    nursery: trio.Nursery,
) -> None:
    async with background(nursery, "browser/server.py", "127.0.0.1", "0") as server:
        line = await server.readline()
        match = re.fullmatch(r"open http://127\.0\.0\.1:(\d+)/ in a browser.*", line)
        assert match, line
        port = int(match[1])
        page = await http_get(port, "/")
        assert page.startswith(b"HTTP/1.1 200 ")
        assert b"new WebSocketStream(" in page
        assert (await http_get(port, "/nope")).startswith(b"HTTP/1.1 404 ")

        async with wsstream.WebSocketStream(
            f"ws://127.0.0.1:{port}/ws", protocols=["upper"]
        ) as wss:
            readable, writable, _, protocol = await wss.opened
            assert protocol == "upper"
            await writable.send("shout")
            assert await readable.receive() == "SHOUT"
            wss.close(1000, "done")
            assert await wss.closed == (1000, "done")
        assert "closed by the browser: code 1000, reason 'done'" in await server.readline() + (
            await server.readline()
        )


async def test_browser_example_in_chromium(nursery: trio.Nursery, tmp_path: Path) -> None:
    """The page's ?auto mode in headless Chromium: one message, its reply, a close."""
    from tests.interop.test_browser import CHROMIUM_FLAGS, find_chromium

    chromium = find_chromium()
    if chromium is None:
        pytest.skip("Chromium is not installed (see tests/interop/test_browser.py)")
    async with background(nursery, "browser/server.py", "127.0.0.1", "0") as server:
        line = await server.readline()
        url = line.split()[1] + "?auto"
        log = (tmp_path / "chromium.log").open("wb")
        process = await trio.lowlevel.open_process(
            [chromium, *CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'profile'}", url],
            stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True,
        )
        try:
            lines = [await server.readline(), await server.readline()]
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            with trio.move_on_after(10):
                await process.wait()
            log.close()
    assert lines[0].endswith("< 'hello from the browser'"), lines
    assert lines[1].endswith("closed by the browser: code 1000, reason 'bye'"), lines


async def test_tls_example() -> None:
    out = await run_example("tls.py")
    assert "wss server on wss://127.0.0.1:" in out
    assert "echoed: hello over TLS" in out
    assert "without the CA: refused as it should be" in out
