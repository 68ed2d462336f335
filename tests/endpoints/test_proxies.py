"""ws:// and wss:// through real proxies on 127.0.0.1 (tests/proxy_servers.py):
tinyproxy (HTTP CONNECT, with and without Basic authentication), tinyproxy
behind stunnel4 (an https:// proxy), microsocks (SOCKS5, with and without a
user) and danted (SOCKS4, SOCKS4A); the environment's proxy and no_proxy;
proxies that refuse. docs/proxies.md is the guide."""

from __future__ import annotations

import base64
import errno
import logging
import ssl
import sys
from collections.abc import Iterator
from pathlib import Path
from subprocess import CompletedProcess

import attrs
import pytest
import trio
import trustme
from python_socks import ProxyError

import wsstream
from tests.conftest import Server, echo_handler
from tests.proxy_servers import (
    SECRET,
    USER,
    Running,
    danted,
    free_port,
    microsocks,
    stunnel,
    tinyproxy,
)
from tests.tools.test_cli import ENV as CLI_ENV
from tests.tools.test_cli import bad_command_line, cli, one_error_line
from tests.wpt_handlers import TlsContexts


@attrs.frozen
class Proxy:
    """A running proxy: the URL a client is given and what it needs."""

    url: str
    port: int
    ssl_context: ssl.SSLContext | None = None


# -- the proxies: one of each, for the whole session ------------------------------


@pytest.fixture(scope="session")
def proxy_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("proxies")


@pytest.fixture(scope="session")
def tinyproxy_open(proxy_dir: Path) -> Iterator[Running]:
    with tinyproxy(proxy_dir) as running:
        yield running


@pytest.fixture(scope="session")
def tinyproxy_auth(proxy_dir: Path) -> Iterator[Running]:
    with tinyproxy(proxy_dir, auth=True) as running:
        yield running


@pytest.fixture(scope="session")
def proxy_ca() -> trustme.CA:
    """The https:// proxy's CA: not the server's (tls_contexts), so that
    each trust goes where it belongs."""
    return trustme.CA()


@pytest.fixture(scope="session")
def https_proxy(
    proxy_dir: Path, tinyproxy_auth: Running, proxy_ca: trustme.CA
) -> Iterator[Running]:
    certfile = proxy_dir / "proxy-cert.pem"
    proxy_ca.issue_cert("127.0.0.1").private_key_and_cert_chain_pem.write_to_path(str(certfile))
    with stunnel(proxy_dir, tinyproxy_auth.port, certfile) as running:
        yield running


@pytest.fixture(scope="session")
def microsocks_open(proxy_dir: Path) -> Iterator[Running]:
    with microsocks(proxy_dir) as running:
        yield running


@pytest.fixture(scope="session")
def microsocks_auth(proxy_dir: Path) -> Iterator[Running]:
    with microsocks(proxy_dir, auth=True) as running:
        yield running


@pytest.fixture(scope="session")
def dante(proxy_dir: Path) -> Iterator[Running]:
    with danted(proxy_dir) as running:
        yield running


def proxy_trust(proxy_ca: trustme.CA) -> ssl.SSLContext:
    context = ssl.create_default_context()
    proxy_ca.configure_trust(context)
    return context


KINDS = [
    "http", "http-auth", "https-auth", "socks5", "socks5h", "socks5h-auth", "socks4", "socks4a",
]


@pytest.fixture(params=KINDS)
def proxy(request: pytest.FixtureRequest, proxy_ca: trustme.CA) -> Proxy:
    """Each kind of proxy, with the credentials it wants."""
    kind: str = request.param
    if kind == "http":
        running: Running = request.getfixturevalue("tinyproxy_open")
        return Proxy(f"http://127.0.0.1:{running.port}", running.port)
    if kind == "http-auth":
        running = request.getfixturevalue("tinyproxy_auth")
        return Proxy(f"http://{USER}:{SECRET}@127.0.0.1:{running.port}", running.port)
    if kind == "https-auth":
        running = request.getfixturevalue("https_proxy")
        return Proxy(
            f"https://{USER}:{SECRET}@127.0.0.1:{running.port}", running.port,
            proxy_trust(proxy_ca),
        )
    if kind in ("socks5", "socks5h"):
        running = request.getfixturevalue("microsocks_open")
        return Proxy(f"{kind}://127.0.0.1:{running.port}", running.port)
    if kind == "socks5h-auth":
        running = request.getfixturevalue("microsocks_auth")
        return Proxy(f"socks5h://{USER}:{SECRET}@127.0.0.1:{running.port}", running.port)
    running = request.getfixturevalue("dante")
    return Proxy(f"{kind}://someone@127.0.0.1:{running.port}", running.port)


# -- through each proxy ------------------------------------------------------------


def port_of(address: object) -> int:
    assert isinstance(address, tuple), address
    return int(address[1])


async def checked_echo(wss: wsstream.WebSocketStream) -> None:
    """An echo that first reports what the server saw: no proxy credentials."""
    readable, writable, *_ = await wss.opened
    assert wss.request is not None
    await writable.send(repr(sorted(name.lower() for name in wss.request.headers)))
    async for message in readable:
        await writable.send(message)


@pytest.mark.parametrize("scheme", ["ws", "wss"])
async def test_ws_and_wss_through_each_proxy(
    proxy: Proxy, scheme: str, server: Server, tls_contexts: TlsContexts
) -> None:
    secure = scheme == "wss"
    url = await server.start(checked_echo, ssl_context=tls_contexts.server if secure else None)
    if secure:
        url = url.replace("ws://", "wss://")
    server_port = int(url.rsplit(":", 1)[1])
    async with wsstream.WebSocketStream(
        url + "/through?q=1", proxy=proxy.url, proxy_ssl_context=proxy.ssl_context,
        ssl_context=tls_contexts.client if secure else None,
    ) as wss:
        readable, writable, *_ = await wss.opened
        headers = await readable.receive()
        assert "proxy-authorization" not in headers and "authorization" not in headers
        # The socket's peer is the proxy, not the server.
        assert port_of(wss.remote_address) == proxy.port != server_port
        for message in ("hello", b"\x00\xff" * 40_000, "é" * 1000):
            await writable.send(message)
            assert await readable.receive() == message
        wss.close(1000, "done")
        assert await wss.closed == wsstream.CloseInfo(1000, "done")


async def test_who_resolves_the_name_socks5h_the_proxy_socks5_this_side(
    microsocks_open: Running, server: Server
) -> None:
    url = (await server.start(echo_handler)).replace("127.0.0.1", "localhost")
    for scheme in ("socks5h", "socks5"):
        async with wsstream.WebSocketStream(
            url, proxy=f"{scheme}://127.0.0.1:{microsocks_open.port}"
        ) as wss:
            readable, writable, *_ = await wss.opened
            await writable.send("by name")
            assert await readable.receive() == "by name"
    # A name nobody can resolve (.invalid): socks5h hands it to the proxy,
    # which reports the failure; socks5 resolves it here and fails here.
    proxy = f"socks5h://127.0.0.1:{microsocks_open.port}"
    error = await refused("ws://wsstream-test.invalid:80/", proxy=proxy)
    assert error.proxy == proxy
    assert "could not open a tunnel to wsstream-test.invalid:80" in error.message
    error = await refused(
        "ws://wsstream-test.invalid:80/", proxy=f"socks5://127.0.0.1:{microsocks_open.port}"
    )
    assert error.proxy is None
    assert "wsstream-test.invalid:80: name not resolved" in error.message


async def test_the_classic_websocket_through_a_proxy(
    tinyproxy_auth: Running, server: Server
) -> None:
    url = await server.start(echo_handler)
    proxy = f"http://{USER}:{SECRET}@127.0.0.1:{tinyproxy_auth.port}"
    async with wsstream.WebSocket(url, proxy=proxy) as ws:
        async for event in ws.events():
            if isinstance(event, wsstream.OpenEvent):
                ws.send("classic")
            elif isinstance(event, wsstream.MessageEvent):
                assert event.data == "classic"
                ws.close()
            elif isinstance(event, wsstream.CloseEvent):
                assert event.was_clean
                break


# -- the environment ------------------------------------------------------------------


async def test_the_environments_proxy_and_no_proxy(
    tinyproxy_open: Running, server: Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = await server.start(echo_handler)
    server_port = int(url.rsplit(":", 1)[1])
    monkeypatch.setenv("http_proxy", f"http://127.0.0.1:{tinyproxy_open.port}")

    async def peer_port() -> int:
        async with wsstream.WebSocketStream(url) as wss:
            await wss.opened
            return port_of(wss.remote_address)

    assert await peer_port() == tinyproxy_open.port
    for no_proxy in ("127.0.0.1", "127.0.0.0/8", f"127.0.0.1:{server_port}", "*"):
        monkeypatch.setenv("NO_PROXY", no_proxy)
        assert await peer_port() == server_port, no_proxy
    monkeypatch.setenv("NO_PROXY", "127.0.0.1:1, localhost, 10.0.0.0/8")
    assert await peer_port() == tinyproxy_open.port
    monkeypatch.delenv("NO_PROXY")
    monkeypatch.delenv("http_proxy")
    monkeypatch.setenv("ALL_PROXY", f"127.0.0.1:{tinyproxy_open.port}")  # http:// implied
    assert await peer_port() == tinyproxy_open.port
    async with wsstream.WebSocketStream(url, proxy=None) as wss:
        await wss.opened
        assert port_of(wss.remote_address) == server_port


# -- refusals -----------------------------------------------------------------------


async def refused(url: str, **options: object) -> wsstream.HandshakeError:
    async with wsstream.WebSocketStream(url, **options) as wss:  # type: ignore[arg-type]
        with pytest.raises(wsstream.HandshakeError) as info:
            await wss.opened
        with pytest.raises(wsstream.HandshakeError) as closed:
            await wss.closed
        assert closed.value is info.value
    return info.value


async def test_tinyproxy_without_credentials_answers_407(
    tinyproxy_auth: Running, server: Server
) -> None:
    url = await server.start(echo_handler)
    proxy = f"http://127.0.0.1:{tinyproxy_auth.port}"
    error = await refused(url, proxy=proxy)
    assert error.status == 407
    assert error.proxy == proxy
    assert error.headers is not None and "Proxy-Authenticate" in error.headers
    assert error.body  # tinyproxy explains in HTML
    assert error.message == (
        f"the proxy {proxy} refused to open a tunnel to 127.0.0.1:{url.rsplit(':', 1)[1]}: "
        "HTTP 407 Proxy Authentication Required"
    )
    assert error.close_code == 1006


async def test_tinyproxy_with_a_wrong_password_refuses(
    tinyproxy_auth: Running, server: Server
) -> None:
    url = await server.start(echo_handler)
    error = await refused(url, proxy=f"http://{USER}:wrong@127.0.0.1:{tinyproxy_auth.port}")
    # tinyproxy 1.11 answers wrong credentials with 401, not 407.
    assert error.status in (401, 407)
    assert error.proxy == f"http://127.0.0.1:{tinyproxy_auth.port}"


async def test_a_proxy_that_denies_the_client_answers_403(
    proxy_dir: Path, server: Server
) -> None:
    url = await server.start(echo_handler)
    with tinyproxy(proxy_dir, allow="192.0.2.1") as denying:
        error = await refused(url, proxy=f"http://127.0.0.1:{denying.port}")
    assert error.status == 403
    assert "HTTP 403" in error.message


async def test_a_socks5_proxy_that_wants_credentials(
    microsocks_auth: Running, server: Server
) -> None:
    url = await server.start(echo_handler)
    proxy = f"socks5h://127.0.0.1:{microsocks_auth.port}"
    error = await refused(url, proxy=proxy)
    assert error.proxy == proxy
    assert "no acceptable authentication methods" in error.message
    assert isinstance(error.__cause__, ProxyError)
    error = await refused(url, proxy=f"socks5h://{USER}:wrong@127.0.0.1:{microsocks_auth.port}")
    assert "authentication failure" in error.message
    assert error.status is None


async def test_socks_failure_codes(microsocks_open: Running, dante: Running) -> None:
    closed_port = free_port()
    # SOCKS5 reply 5, "connection refused": an OSError, as if direct.
    error = await refused(
        f"ws://127.0.0.1:{closed_port}/", proxy=f"socks5://127.0.0.1:{microsocks_open.port}"
    )
    assert "(SOCKS5 reply 5)" in error.message
    assert f"could not open a tunnel to 127.0.0.1:{closed_port}" in error.message
    assert isinstance(error.__cause__, ConnectionRefusedError)
    assert error.__cause__.errno == errno.ECONNREFUSED
    assert isinstance(error.__cause__.__cause__, ProxyError)
    # SOCKS4 has one refusal, 91: python-socks' error is the cause.
    error = await refused(
        f"ws://127.0.0.1:{closed_port}/", proxy=f"socks4://127.0.0.1:{dante.port}"
    )
    assert "(SOCKS4 reply 91)" in error.message
    assert isinstance(error.__cause__, ProxyError)
    assert error.__cause__.error_code == 91


async def test_an_https_proxy_is_verified_with_its_own_trust(
    https_proxy: Running, proxy_ca: trustme.CA, server: Server, tls_contexts: TlsContexts
) -> None:
    url = (await server.start(echo_handler, ssl_context=tls_contexts.server)).replace(
        "ws://", "wss://"
    )
    proxy = f"https://{USER}:{SECRET}@127.0.0.1:{https_proxy.port}"
    # The server's trust does not vouch for the proxy.
    error = await refused(url, proxy=proxy, ssl_context=tls_contexts.client,
                          proxy_ssl_context=tls_contexts.client)
    assert error.proxy == f"https://127.0.0.1:{https_proxy.port}"
    assert error.message.startswith(f"TLS with the proxy 127.0.0.1:{https_proxy.port} failed")
    assert isinstance(error.__cause__, trio.BrokenResourceError)
    assert isinstance(error.__cause__.__cause__, ssl.SSLCertVerificationError)
    # Nor does the proxy's trust vouch for the server: that check is inside
    # the tunnel, against the URL's host, and it is not the proxy's failure.
    error = await refused(url, proxy=proxy, proxy_ssl_context=proxy_trust(proxy_ca))
    assert error.proxy is None
    assert "CERTIFICATE_VERIFY_FAILED" in error.message


# -- credentials never shown ---------------------------------------------------


async def test_proxy_credentials_never_appear_in_logs_or_errors(
    tinyproxy_auth: Running, microsocks_auth: Running, server: Server,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    url = await server.start(echo_handler)
    wrong = f"{USER}:{SECRET}x"
    errors: list[BaseException] = []
    for proxy, options in [
        (f"http://{wrong}@127.0.0.1:{tinyproxy_auth.port}", {}),
        (f"socks5h://{wrong}@127.0.0.1:{microsocks_auth.port}", {}),
        (f"http://{USER}:{SECRET}@127.0.0.1:1", {}),
        (f"socks5h://{USER}:{SECRET}@127.0.0.1:1", {}),
        (f"https://{USER}:{SECRET}@127.0.0.1:{tinyproxy_auth.port}", {"open_timeout": 0.5}),
    ]:
        errors.append(await refused(url, proxy=proxy, **options))
    # And those that work, logged at DEBUG too.
    for proxy in (f"http://{USER}:{SECRET}@127.0.0.1:{tinyproxy_auth.port}",
                  f"socks5h://{USER}:{SECRET}@127.0.0.1:{microsocks_auth.port}"):
        async with wsstream.WebSocketStream(url, proxy=proxy) as wss:
            await wss.opened
    assert_never_shown(errors, caplog)


def assert_never_shown(errors: list[BaseException], caplog: pytest.LogCaptureFixture) -> None:
    secrets = (SECRET, base64.b64encode(f"{USER}:{SECRET}".encode()).decode())
    texts = [record.getMessage() for record in caplog.records]
    texts += [caplog.text]
    for error in errors:
        seen: set[int] = set()
        current: BaseException | None = error
        while current is not None and id(current) not in seen:
            seen.add(id(current))
            texts += [str(current), repr(current), *getattr(current, "__notes__", [])]
            texts += [repr(vars(current))] if hasattr(current, "__dict__") else []
            current = current.__cause__ or current.__context__
    assert caplog.records, "nothing was logged: the test proves nothing"
    for text in texts:
        for secret in secrets:
            assert secret not in text


# -- the command line ------------------------------------------------------------------


async def cli_with(env: dict[str, str], *args: str, stdin: bytes = b"") -> CompletedProcess[bytes]:
    with trio.fail_after(60):
        return await trio.run_process(
            [sys.executable, "-m", "wsstream", *args], stdin=stdin, capture_stdout=True,
            capture_stderr=True, check=False, env={**CLI_ENV, **env},
        )


async def test_cli_connect_through_a_proxy(
    tinyproxy_auth: Running, https_proxy: Running, proxy_ca: trustme.CA, server: Server,
    tmp_path: Path,
) -> None:
    url = await server.start(echo_handler)
    proxy = f"http://{USER}:{SECRET}@127.0.0.1:{tinyproxy_auth.port}"
    result = await cli("connect", "--proxy", proxy, url, stdin=b"hello\n")
    assert result.returncode == 0, result.stderr.decode()
    assert result.stdout == b"hello\n"
    assert SECRET.encode() not in result.stderr
    cafile = tmp_path / "proxy-ca.pem"
    proxy_ca.cert_pem.write_to_path(str(cafile))
    proxy = f"https://{USER}:{SECRET}@127.0.0.1:{https_proxy.port}"
    result = await cli("connect", "--proxy", proxy, "--proxy-cafile", str(cafile), url,
                       stdin=b"over tls\n")
    assert result.returncode == 0, result.stderr.decode()
    assert result.stdout == b"over tls\n"


async def test_cli_a_refusing_proxy_is_one_line_without_the_password(
    tinyproxy_auth: Running, server: Server
) -> None:
    url = await server.start(echo_handler)
    port = tinyproxy_auth.port
    result = await cli("connect", "--proxy", f"http://127.0.0.1:{port}", url)
    assert one_error_line(result) == (
        f"wsstream: {url}/: the proxy http://127.0.0.1:{port} refused to open a tunnel to "
        f"127.0.0.1:{url.rsplit(':', 1)[1]}: HTTP 407 Proxy Authentication Required"
    )
    result = await cli("connect", "--proxy", f"http://{USER}:{SECRET}x@127.0.0.1:{port}", url)
    line = one_error_line(result)
    assert f"the proxy http://127.0.0.1:{port} refused" in line
    assert SECRET not in result.stderr.decode()


async def test_cli_reads_the_environment_and_proxy_none_skips_it(
    tinyproxy_auth: Running, server: Server
) -> None:
    url = await server.start(echo_handler)
    env = {"http_proxy": f"http://127.0.0.1:{tinyproxy_auth.port}"}
    result = await cli_with(env, "connect", url)
    assert "HTTP 407" in one_error_line(result)
    result = await cli_with(env, "connect", "--proxy", "none", url, stdin=b"direct\n")
    assert result.returncode == 0, result.stderr.decode()
    assert result.stdout == b"direct\n"
    # A malformed proxy in the environment: one line naming the variable.
    result = await cli_with({"http_proxy": f"ftp://u:{SECRET}@h"}, "connect", url)
    line = one_error_line(result)
    assert "$http_proxy" in line and SECRET not in line


@pytest.mark.parametrize(
    ("args", "shown"),
    [
        (("--proxy", f"gopher://u:{SECRET}@h:1"), "argument --proxy: invalid proxy URL"),
        (("--proxy", "http://h:99999"), "argument --proxy: invalid proxy URL 'http://h:99999'"),
        (("--proxy", "http://h:1", "--unix", "/tmp/x.sock"), "argument --unix: not with --proxy"),
        (("--unix", ""), "argument --unix: expected a path"),
        (("--proxy", "socks5://h:1", "--proxy-cafile", "ca.pem"), "for an https:// proxy only"),
        (("--proxy", "https://h:1", "--proxy-cafile", "/nonexistent/ca.pem"),
         "argument --proxy-cafile: cannot load '/nonexistent/ca.pem'"),
    ],
)
async def test_cli_proxy_and_unix_arguments_are_checked_before_connecting(
    server: Server, args: tuple[str, ...], shown: str
) -> None:
    connections: list[wsstream.WebSocketStream] = []

    async def handler(wss: wsstream.WebSocketStream) -> None:
        connections.append(wss)

    url = await server.start(handler)
    result = await cli("connect", *args, url, stdin=b"hello\n")
    line = bad_command_line(result)
    assert shown in line
    assert SECRET not in result.stderr.decode()
    assert connections == []
