"""The command line (``python -m wsstream``), run as a subprocess against real
servers on 127.0.0.1: wsstream servers in this test's nursery, or the CLI's
own ``serve --echo`` in another process."""

from __future__ import annotations

import functools
import json
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import trio
import trustme

import wsstream
from tests.conftest import Server

TIMEOUT = 60
ENV = {**os.environ, "PYTHONUNBUFFERED": "1", "PYTHONIOENCODING": "utf-8"}


async def cli(*args: str, stdin: bytes = b"") -> subprocess.CompletedProcess[bytes]:
    """Run ``python -m wsstream ARGS`` to completion with ``stdin``."""
    with trio.fail_after(TIMEOUT):
        return await trio.run_process(
            [sys.executable, "-m", "wsstream", *args], stdin=stdin,
            capture_stdout=True, capture_stderr=True, check=False, env=ENV,
        )


def one_error_line(
    result: subprocess.CompletedProcess[bytes], after_progress: bool = False
) -> str:
    """The CLI's error contract: status 1, one line on stderr, no traceback
    (``bench`` may have printed progress lines before it)."""
    assert result.returncode == 1
    stderr = result.stderr.decode()
    lines = stderr.strip().splitlines()
    assert "Traceback" not in stderr
    assert len(lines) == 1 or after_progress, stderr
    assert lines[-1].startswith("wsstream: "), stderr
    return lines[-1]


@pytest.fixture
async def cli_echo_server(nursery: trio.Nursery) -> AsyncIterator[str]:
    """``python -m wsstream serve --echo 127.0.0.1 0`` in a child process."""
    process = await nursery.start(functools.partial(
        trio.run_process,
        [sys.executable, "-m", "wsstream", "serve", "--echo", "127.0.0.1", "0"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, check=False, env=ENV,
    ))
    try:
        line = b""
        with trio.fail_after(TIMEOUT):
            while not line.endswith(b"\n"):
                chunk = await process.stdout.receive_some(1)
                assert chunk, "the server exited before listening"
                line += chunk
        text = line.decode().strip()
        assert text.startswith("echo server listening on ws://127.0.0.1:"), text
        yield text.rsplit(" ", 1)[1]
    finally:
        process.terminate()


async def test_help_lists_every_command() -> None:
    result = await cli("--help")
    assert result.returncode == 0
    out = result.stdout.decode()
    for command in ("demo", "connect", "serve", "bench"):
        assert command in out
    for command in ("connect", "serve", "bench", "demo"):
        assert (await cli(command, "--help")).returncode == 0


async def test_demo_runs_and_finishes() -> None:
    result = await cli("demo")
    assert result.returncode == 0, result.stderr.decode()
    out = result.stdout.decode()
    assert out.startswith("wsstream demo: an echo server on 127.0.0.1")
    assert "closed cleanly: code=1000 reason='demo done'" in out
    assert out.rstrip().endswith("demo finished")


async def test_connect_to_cli_echo_server_sends_lines_and_closes_with_1000(
    cli_echo_server: str,
) -> None:
    result = await cli("connect", cli_echo_server, stdin="hello\nwörld\n\n".encode())
    assert result.returncode == 0, result.stderr.decode()
    assert result.stdout.decode().splitlines() == ["hello", "wörld", ""]
    assert result.stderr.decode().strip().splitlines()[-1] == "closed: code 1000"


async def test_connect_binary_subprotocol_and_headers(server: Server) -> None:
    async def handler(wss: wsstream.WebSocketStream) -> None:
        readable, writable, _, protocol = await wss.opened
        assert wss.request is not None
        tokens = ",".join(wss.request.headers.get_all("X-Token"))
        await writable.send(f"protocol={protocol} tokens={tokens}")
        message = await readable.receive()
        await writable.send(f"got {type(message).__name__} {message!r}")
        await readable.receive()  # EndOfChannel when the client closes

    url = await server.start(handler, subprotocols=["chat"])
    result = await cli(
        "connect", "--binary", "-s", "other", "--subprotocol", "chat",
        "-H", "X-Token: a", "--header", "X-Token:b", url, stdin=b"\xc3\xa9t\xc3\xa9\n",
    )
    assert result.returncode == 0, result.stderr.decode()
    assert result.stdout.decode().splitlines() == [
        "protocol=chat tokens=a,b",
        "got bytes b'\\xc3\\xa9t\\xc3\\xa9'",
    ]
    stderr = result.stderr.decode()
    assert "subprotocol 'chat'" in stderr
    assert stderr.strip().splitlines()[-1] == "closed: code 1000"


async def test_connect_prints_binary_messages_raw(server: Server) -> None:
    async def handler(wss: wsstream.WebSocketStream) -> None:
        _, writable, *_ = await wss.opened
        await writable.send(b"\x00\x01raw")
        wss.close(1000)

    result = await cli("connect", await server.start(handler))
    assert result.returncode == 0
    assert result.stdout == b"\x00\x01raw\n"


@pytest.mark.parametrize(
    ("code", "reason", "status", "shown"),
    [
        (1000, "bye", 0, "closed: code 1000, reason 'bye'"),
        (4000, "ロボット", 1, "closed: code 4000, reason 'ロボット'"),
    ],
)
async def test_connect_reports_the_servers_close_code(
    server: Server, code: int, reason: str, status: int, shown: str
) -> None:
    async def handler(wss: wsstream.WebSocketStream) -> None:
        await wss.opened
        wss.close(code, reason)
        await wss.closed

    result = await cli("connect", "--linger", "30", await server.start(handler))
    assert result.returncode == status
    assert result.stderr.decode().strip().splitlines()[-1] == shown


async def test_connect_refused_is_one_line() -> None:
    with trio.socket.socket() as sock:  # a port that nobody listens on
        await sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    line = one_error_line(await cli("connect", f"ws://127.0.0.1:{port}/"))
    # The URL, what failed, the address and the system's reason; each once.
    assert line == (
        f"wsstream: ws://127.0.0.1:{port}/: could not connect: "
        f"127.0.0.1:{port}: connection refused"
    )


async def test_connect_handshake_rejected_is_one_line(server: Server) -> None:
    async def never(wss: wsstream.WebSocketStream) -> None:
        raise AssertionError("not reached")

    def reject(request: wsstream.Request) -> wsstream.Response:
        return wsstream.Response(403, {"Content-Type": "text/plain"}, b"go away\nreally\n")

    url = await server.start(never, process_request=reject)
    line = one_error_line(await cli("connect", url))
    assert line.endswith("handshake rejected: HTTP 403: go away")


async def test_connect_handshake_with_a_non_websocket_server_is_one_line(
    nursery: trio.Nursery,
) -> None:
    async def http_only(stream: trio.SocketStream) -> None:
        await stream.send_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        await stream.aclose()

    serve_http = functools.partial(trio.serve_tcp, http_only, 0, host="127.0.0.1")
    listeners = await nursery.start(serve_http)
    port = listeners[0].socket.getsockname()[1]
    line = one_error_line(await cli("connect", f"ws://127.0.0.1:{port}/"))
    assert "HTTP 200" in line


def bad_command_line(result: subprocess.CompletedProcess[bytes]) -> str:
    """argparse's contract: status 2, usage, then one error line."""
    assert result.returncode == 2, result
    stderr = result.stderr.decode()
    assert "Traceback" not in stderr
    assert stderr.startswith("usage: wsstream"), stderr
    line = stderr.strip().splitlines()[-1]
    assert line.startswith("wsstream") and ": error: " in line, stderr
    return line


@pytest.mark.parametrize("url", ["ftp://example.com/", "ws://example.com/#fragment"])
async def test_connect_bad_url_is_a_bad_command_line(url: str) -> None:
    line = bad_command_line(await cli("connect", url))
    assert "URL" in line


async def test_bad_arguments_exit_2() -> None:
    result = await cli("connect", "-H", "no-colon", "ws://127.0.0.1:1/")
    assert "NAME:VALUE" in bad_command_line(result)


@pytest.mark.parametrize(
    ("args", "shown"),
    [
        (("connect", "--open-timeout", "-1"), "argument --open-timeout"),
        (("connect", "--open-timeout", "0"), "argument --open-timeout"),
        (("connect", "--linger", "-5"), "argument --linger"),
        (("connect", "--linger", "nan"), "argument --linger"),
        (("connect", "-H", "X-Token: a\nb"), "argument -H/--header"),
        (("connect", "-H", "X Token: a"), "argument -H/--header"),
        (("connect", "-s", "two words"), "subprotocol"),
        (("connect", "--cafile", "/nonexistent/ca.pem"), "'/nonexistent/ca.pem'"),
        (("bench", "--size", "big"), "argument --size"),
    ],
)
async def test_every_client_argument_is_checked_before_connecting(
    server: Server, args: tuple[str, ...], shown: str
) -> None:
    connections: list[wsstream.WebSocketStream] = []

    async def handler(wss: wsstream.WebSocketStream) -> None:
        connections.append(wss)

    url = await server.start(handler)
    line = bad_command_line(await cli(*args, url, stdin=b"hello\n"))
    assert shown in line
    assert connections == []  # nothing was attempted


@pytest.mark.parametrize(
    ("args", "shown"),
    [
        (("serve", "127.0.0.1", "99999"), "argument port"),
        (("serve", "127.0.0.1", "-1"), "argument port"),
        (("serve", "127.0.0.1", "http"), "argument port"),
        (("serve", "--max-message-size", "0", "0"), "argument --max-message-size"),
        (("serve", "--certfile", "/nonexistent/cert.pem", "0"), "'/nonexistent/cert.pem'"),
        (("serve", "--keyfile", "/nonexistent/key.pem", "0"), "argument --keyfile"),
    ],
)
async def test_every_server_argument_is_checked_before_listening(
    args: tuple[str, ...], shown: str
) -> None:
    # A server that started would run until killed: the timeout would fail.
    line = bad_command_line(await cli(*args, "--echo"))
    assert shown in line


async def test_serve_needs_no_echo_flag(nursery: trio.Nursery) -> None:
    process = await nursery.start(functools.partial(
        trio.run_process, [sys.executable, "-m", "wsstream", "serve", "127.0.0.1", "0"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, check=False, env=ENV,
    ))
    try:
        line = b""
        with trio.fail_after(TIMEOUT):
            while not line.endswith(b"\n"):
                chunk = await process.stdout.receive_some(1)
                assert chunk, (await process.stderr.receive_some()).decode()
                line += chunk
        url = line.decode().split()[-1]
        result = await cli("connect", url, stdin=b"echoed\n")
        assert result.stdout == b"echoed\n"
    finally:
        process.terminate()


async def test_connect_sends_input_that_is_not_utf8_with_u_fffd(server: Server) -> None:
    received: list[str | bytes] = []

    async def handler(wss: wsstream.WebSocketStream) -> None:
        readable, *_ = await wss.opened
        async for message in readable:
            received.append(message)

    url = await server.start(handler)
    result = await cli("connect", "--linger", "0", url, stdin=b"a\xffb\n\xed\xb3\xbf\n")
    assert result.returncode == 0, result.stderr.decode()
    # The bad bytes become U+FFFD (a lone surrogate's UTF-8-like form too).
    assert received == ["a\ufffdb", "\ufffd\ufffd\ufffd"]


async def test_serve_on_a_busy_port_is_one_line_naming_the_address(
    cli_echo_server: str,
) -> None:
    port = cli_echo_server.rsplit(":", 1)[1].strip("/")
    line = one_error_line(await cli("serve", "--echo", "127.0.0.1", port))
    assert line == f"wsstream: cannot listen on 127.0.0.1:{port}: address already in use"


async def test_bench_against_cli_echo_server(cli_echo_server: str) -> None:
    result = await cli(
        "bench", cli_echo_server, "--count", "300", "--round-trips", "50", "--size", "2000",
        "--json",
    )
    assert result.returncode == 0, result.stderr.decode()
    numbers = json.loads(result.stdout)
    assert numbers["size"] == 2000
    assert numbers["throughput"]["messages"] == 300
    assert numbers["throughput"]["messages_per_s"] > 0
    rtt = numbers["round_trip_ms"]
    assert 0 < rtt["min"] <= rtt["median"] <= rtt["p99"] <= rtt["max"]
    # stderr is not a terminal here: plain progress lines, one phase after the other.
    progress = result.stderr.decode()
    assert "round trips: 50 messages..." in progress
    assert "throughput: done in" in progress


async def test_bench_prints_a_readable_summary(server: Server) -> None:
    from tests.conftest import echo_handler

    url = await server.start(echo_handler)
    result = await cli("bench", url, "--count", "100", "--round-trips", "10", "--text")
    assert result.returncode == 0, result.stderr.decode()
    out = result.stdout.decode()
    assert "round trip (ms): min" in out
    assert "messages/s" in out


@pytest.mark.parametrize("behaviour", ["silent", "other"])
async def test_bench_against_a_non_echo_server_is_one_line(
    server: Server, behaviour: str
) -> None:
    async def not_echo(wss: wsstream.WebSocketStream) -> None:
        readable, writable, *_ = await wss.opened
        async for _ in readable:
            if behaviour == "silent":
                return  # closes with 1000
            await writable.send("not what you sent")

    result = await cli(
        "bench", await server.start(not_echo), "--round-trips", "3", "--count", "3"
    )
    line = one_error_line(result, after_progress=True)
    assert "echo server" in line


async def test_console_script_is_declared() -> None:
    # pyproject declares wsstream = "wsstream.__main__:main"; main() parses argv.
    from wsstream.__main__ import main

    with pytest.raises(SystemExit) as info:
        main(["--help"])
    assert info.value.code == 0


async def test_serve_and_connect_over_tls(nursery: trio.Nursery, tmp_path: Path) -> None:
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1")
    cert.private_key_and_cert_chain_pem.write_to_path(str(tmp_path / "server.pem"))
    ca.cert_pem.write_to_path(str(tmp_path / "ca.pem"))
    process = await nursery.start(functools.partial(
        trio.run_process,
        [sys.executable, "-m", "wsstream", "serve", "--echo",
         "--certfile", str(tmp_path / "server.pem"), "127.0.0.1", "0"],
        stdout=subprocess.PIPE, check=False, env=ENV,
    ))
    try:
        line = b""
        with trio.fail_after(TIMEOUT):
            while not line.endswith(b"\n"):
                line += await process.stdout.receive_some(1)
        url = line.decode().split()[-1]
        assert url.startswith("wss://127.0.0.1:")
        result = await cli("connect", "--cafile", str(tmp_path / "ca.pem"), url,
                           stdin=b"secret\n")
        assert result.returncode == 0, result.stderr.decode()
        assert result.stdout == b"secret\n"
        # Without the CA, the certificate is refused: one line, status 1.
        line = one_error_line(await cli("connect", url))
        assert "CERTIFICATE_VERIFY_FAILED" in line
    finally:
        process.terminate()


async def test_an_abnormal_close_says_its_reason_once(server: Server) -> None:
    async def too_big(wss: wsstream.WebSocketStream) -> None:
        _, writable, *_ = await wss.opened
        await writable.send(bytes(2**20 + 1))  # over the client's 1 MiB limit
        await wss.closed

    url = await server.start(too_big, max_message_size=None)
    line = one_error_line(await cli("connect", url), after_progress=True)
    assert line.startswith("wsstream: connection closed abnormally: ")
    assert line.endswith("(close code 1009)")
    reason = line.removeprefix("wsstream: connection closed abnormally: the connection failed: ")
    assert line.count(reason.removesuffix(" (close code 1009)")) == 1
