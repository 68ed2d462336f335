"""Which proxy a client uses: proxy URLs, the environment's variables and
``no_proxy``, checked without any proxy or socket (docs/proxies.md)."""

from __future__ import annotations

import ssl
from pathlib import Path

import pytest
import trio

import wsstream
from wsstream._endpoints.client import Dialer
from wsstream._endpoints.proxy import (
    ProxyURL,
    bypassed,
    parse_proxy,
    proxy_from_environment,
    redact,
)
from wsstream._endpoints.url import parse_url

SECRET = "pw-Zq81x"


def chosen(url: str, **environ: str) -> str | None:
    proxy = proxy_from_environment(parse_url(url), environ)
    return None if proxy is None else str(proxy)


# -- proxy URLs -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("http://proxy.corp:3128", ProxyURL("http", "proxy.corp", 3128)),
        ("HTTP://Proxy.Corp:3128/", ProxyURL("http", "proxy.corp", 3128)),
        ("http://proxy.corp", ProxyURL("http", "proxy.corp", 80)),
        ("https://proxy.corp", ProxyURL("https", "proxy.corp", 443)),
        ("socks5://10.0.0.1", ProxyURL("socks5", "10.0.0.1", 1080)),
        ("socks5h://[::1]:9050", ProxyURL("socks5h", "::1", 9050)),
        ("socks4://h", ProxyURL("socks4", "h", 1080)),
        ("socks4a://someone@h:1081", ProxyURL("socks4a", "h", 1081, "someone")),
        ("http://u:p%40ss@h:1", ProxyURL("http", "h", 1, "u", "p@ss")),
        ("http://u@h:1", ProxyURL("http", "h", 1, "u", "")),
        ("socks5h://u:p@h", ProxyURL("socks5h", "h", 1080, "u", "p")),
        ("http://bücher.example:3128", ProxyURL("http", "xn--bcher-kva.example", 3128)),
    ],
)
def test_proxy_urls_parse_with_default_ports_and_decoded_credentials(
    text: str, expected: ProxyURL
) -> None:
    assert parse_proxy(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "ftp://h:1", "h:3128", "http://", "http://:3128", "http://h:99999", "http://h:port",
        "http://h:0", "http://h/path", "http://h?q", "http://h#f", "http://[zz::1]:1",
        "socks4://u:p@h", "socks5://u@h", "socks5://:p@h", "http://a%3Ab:c@h",
        "http://h\n:1", "http://h :1",
    ],
)
def test_malformed_proxy_urls_are_value_errors(text: str) -> None:
    with pytest.raises(ValueError, match="invalid proxy"):
        parse_proxy(text)


@pytest.mark.parametrize("value", [False, 1, b"http://h:1", ["http://h:1"]])
def test_a_proxy_that_is_not_true_a_str_or_none_is_a_type_error(value: object) -> None:
    with pytest.raises(TypeError, match="proxy must be True, a proxy URL or None"):
        wsstream.WebSocketStream("ws://example.com/", proxy=value)  # type: ignore[arg-type]


def test_str_and_repr_of_a_proxy_never_show_credentials() -> None:
    proxy = parse_proxy(f"http://user:{SECRET}@h:3128")
    assert str(proxy) == "http://h:3128"
    assert repr(proxy) == "ProxyURL('http://h:3128')"
    assert proxy.password == SECRET


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        (f"http://user:{SECRET}@h:1/x", "http://***@h:1/x"),
        (f"http://user:{SECRET}@with@at@h:1", "http://***@h:1"),
        (f"user:{SECRET}@h:1", "***@h:1"),
        ("http://h:1", "http://h:1"),
    ],
)
def test_redact_hides_the_userinfo(text: str, shown: str) -> None:
    assert redact(text) == shown


@pytest.mark.parametrize(
    "text",
    [
        f"ftp://user:{SECRET}@h", f"http://user:{SECRET}@h:bad", f"socks4://u:{SECRET}@h",
        f"http://user:{SECRET}@h/path", f"http://u:{SECRET}@[zz]:1",
    ],
)
def test_a_malformed_proxy_url_never_shows_its_credentials(text: str) -> None:
    with pytest.raises(ValueError) as info:
        wsstream.WebSocketStream("ws://example.com/", proxy=text)
    assert SECRET not in str(info.value)
    assert SECRET not in repr(info.value)
    assert info.value.__cause__ is None or SECRET not in str(info.value.__cause__)


# -- the environment ---------------------------------------------------------------


def test_http_proxy_for_ws_and_https_proxy_for_wss() -> None:
    env = {"http_proxy": "http://h1:1", "https_proxy": "http://h2:2"}
    assert chosen("ws://example.com/", **env) == "http://h1:1"
    assert chosen("wss://example.com/", **env) == "http://h2:2"
    # http:// and https:// URLs are ws:// and wss://.
    assert chosen("http://example.com/", **env) == "http://h1:1"
    assert chosen("https://example.com/", **env) == "http://h2:2"


def test_ws_proxy_and_wss_proxy_come_first_as_for_curl() -> None:
    env = {"ws_proxy": "socks5h://w:1", "wss_proxy": "socks5h://s:2",
           "http_proxy": "http://h1:1", "https_proxy": "http://h2:2", "all_proxy": "http://a:3"}
    assert chosen("ws://example.com/", **env) == "socks5h://w:1"
    assert chosen("wss://example.com/", **env) == "socks5h://s:2"


def test_all_proxy_is_the_fallback_for_both() -> None:
    assert chosen("ws://example.com/", all_proxy="socks5://a:1") == "socks5://a:1"
    assert chosen("wss://example.com/", ALL_PROXY="socks5://a:1") == "socks5://a:1"
    assert chosen("wss://example.com/", all_proxy="http://a:1", https_proxy="http://s:2") == (
        "http://s:2"
    )


def test_https_proxy_is_not_used_for_ws_nor_http_proxy_for_wss() -> None:
    assert chosen("ws://example.com/", https_proxy="http://s:2") is None
    assert chosen("wss://example.com/", http_proxy="http://h:1") is None


def test_upper_case_variables_count_and_lower_case_wins() -> None:
    assert chosen("wss://example.com/", HTTPS_PROXY="http://up:1") == "http://up:1"
    assert chosen("ws://example.com/", HTTP_PROXY="http://up:1") == "http://up:1"
    env = {"https_proxy": "http://low:1", "HTTPS_PROXY": "http://up:2"}
    assert chosen("wss://example.com/", **env) == "http://low:1"


def test_empty_variables_count_as_not_set() -> None:
    env = {"https_proxy": "", "HTTPS_PROXY": " ", "all_proxy": "http://a:1"}
    assert chosen("wss://example.com/", **env) == "http://a:1"
    assert chosen("wss://example.com/", https_proxy="") is None


def test_upper_case_http_proxy_is_ignored_in_a_cgi_script() -> None:
    # httpoxy: in CGI, HTTP_PROXY comes from the request's "Proxy:" header.
    env = {"HTTP_PROXY": "http://attacker:1", "REQUEST_METHOD": "GET"}
    assert chosen("ws://example.com/", **env) is None
    env["http_proxy"] = "http://mine:1"
    assert chosen("ws://example.com/", **env) == "http://mine:1"


def test_a_value_without_scheme_is_an_http_proxy() -> None:
    assert chosen("wss://example.com/", https_proxy="proxy.corp:3128") == "http://proxy.corp:3128"
    proxy = proxy_from_environment(
        parse_url("ws://example.com/"), {"http_proxy": f"u:{SECRET}@h:1"}
    )
    assert proxy == ProxyURL("http", "h", 1, "u", SECRET)


def test_a_bad_proxy_in_the_environment_names_the_variable_not_the_password() -> None:
    with pytest.raises(ValueError, match=r"\$HTTPS_PROXY") as info:
        chosen("wss://example.com/", HTTPS_PROXY=f"ftp://user:{SECRET}@h:1")
    assert SECRET not in str(info.value)


def test_the_default_proxy_true_reads_the_environment_at_construction(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("https_proxy", "http://proxy.corp:3128")
    monkeypatch.setenv("no_proxy", "internal.example")
    wss = wsstream.WebSocketStream("wss://example.com/")
    assert str(wss._conn._connect.proxy) == "http://proxy.corp:3128"  # type: ignore[union-attr]
    assert wss._conn._connect.proxy is not None  # type: ignore[union-attr]
    bypass = wsstream.WebSocketStream("wss://ws.internal.example/")
    assert bypass._conn._connect.proxy is None  # type: ignore[union-attr]
    never = wsstream.WebSocketStream("wss://example.com/", proxy=None)
    assert never._conn._connect.proxy is None  # type: ignore[union-attr]
    monkeypatch.setenv("https_proxy", f"ftp://u:{SECRET}@h")
    with pytest.raises(ValueError, match=r"\$https_proxy") as info:
        wsstream.WebSocketStream("wss://example.com/")
    assert SECRET not in str(info.value)
    # An explicit proxy does not read the environment, bad or not.
    wsstream.WebSocketStream("wss://example.com/", proxy="socks5h://127.0.0.1:1080")
    wsstream.WebSocketStream("wss://example.com/", proxy=None)


def test_no_proxy_exempts_from_the_environment_only(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("no_proxy", "*")
    wss = wsstream.WebSocketStream("ws://example.com/", proxy="http://h:1")
    assert wss._conn._connect.proxy == ProxyURL("http", "h", 1)  # type: ignore[union-attr]


# -- no_proxy -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("no_proxy", "url", "expected"),
    [
        ("*", "ws://anything.example/", True),
        ("a.example, *", "ws://b.example/", True),
        ("", "ws://example.com/", False),
        (" , ,", "ws://example.com/", False),
        # names: the name itself and the names under it
        ("example.com", "ws://example.com/", True),
        ("example.com", "ws://ws.example.com/", True),
        ("example.com", "ws://a.b.example.com:8443/", True),
        ("example.com", "ws://badexample.com/", False),
        ("example.com", "ws://example.com.evil/", False),
        (".example.com", "ws://example.com/", True),
        (".example.com", "ws://ws.example.com/", True),
        ("*.example.com", "ws://ws.example.com/", True),
        ("EXAMPLE.com.", "ws://Example.COM./", True),
        ("other.org,  example.com  ,x", "ws://example.com/", True),
        ("localhost", "ws://127.0.0.1/", False),  # no name is resolved
        # IP addresses and CIDR blocks
        ("10.1.2.3", "ws://10.1.2.3/", True),
        ("10.1.2.3", "ws://10.1.2.4/", False),
        ("10.0.0.0/8", "ws://10.200.3.4/", True),
        ("10.0.0.0/8", "ws://11.0.0.1/", False),
        ("192.168.1.7/16", "ws://192.168.200.1/", True),  # host bits ignored, as curl
        ("127.0.0.0/8", "ws://127.0.0.1:8765/", True),
        ("::1", "ws://[::1]:8765/", True),
        ("[::1]", "ws://[::1]/", True),
        ("fd00::/8", "ws://[fd12::5]/", True),
        ("fd00::/8", "ws://[fe80::1]/", False),
        ("10.0.0.0/8", "ws://[::1]/", False),
        ("::/0", "ws://10.0.0.1/", False),  # another family
        ("10.0.0.0/8", "ws://10.example/", False),  # a name, not an address
        ("10.example", "ws://ws.10.example/", True),
        # ports
        ("example.com:8443", "ws://example.com:8443/", True),
        ("example.com:8443", "ws://example.com:8444/", False),
        ("example.com:80", "ws://example.com/", True),  # the default port counts
        ("127.0.0.1:8765", "ws://127.0.0.1:8765/", True),
        ("127.0.0.1:8765", "ws://127.0.0.1:8766/", False),
        ("[::1]:8765", "ws://[::1]:8765/", True),
        ("[::1]:8765", "ws://[::1]:9/", False),
    ],
)
def test_no_proxy_matching(no_proxy: str, url: str, expected: bool) -> None:
    assert bypassed(parse_url(url), no_proxy) is expected


def test_no_proxy_upper_case_and_lower_case_first() -> None:
    env = {"https_proxy": "http://h:1", "NO_PROXY": "example.com"}
    assert chosen("wss://example.com/", **env) is None
    env["no_proxy"] = "other.org"
    assert chosen("wss://example.com/", **env) == "http://h:1"


# -- with stream= and unix_socket_path= -------------------------------------------


def test_the_default_proxy_is_ignored_with_a_stream_or_a_unix_socket(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("http_proxy", "http://h:1")
    left, _ = trio.testing.memory_stream_pair()
    for options in ({"stream": left}, {"unix_socket_path": "/run/app.sock"}):
        wss = wsstream.WebSocketStream("ws://example.com/", **options)  # type: ignore[arg-type]
        assert wss._conn._connect.proxy is None  # type: ignore[union-attr]
    # Even a malformed one: it is not read at all.
    monkeypatch.setenv("http_proxy", "ftp://nonsense")
    wsstream.WebSocketStream("ws://example.com/", unix_socket_path="/run/app.sock")


def test_an_explicit_proxy_with_a_stream_or_a_unix_socket_is_a_value_error() -> None:
    left, _ = trio.testing.memory_stream_pair()
    with pytest.raises(ValueError, match="not used with stream"):
        wsstream.WebSocketStream("ws://example.com/", stream=left, proxy="http://h:1")
    with pytest.raises(ValueError, match="not used with unix_socket_path"):
        wsstream.WebSocketStream(
            "ws://example.com/", unix_socket_path="/run/app.sock", proxy="socks5://h"
        )
    with pytest.raises(ValueError, match="cannot both be given"):
        wsstream.WebSocketStream("ws://example.com/", stream=left, unix_socket_path="/x")
    # proxy=None with either is fine: it says "no proxy".
    wsstream.WebSocketStream("ws://example.com/", stream=left, proxy=None)
    wsstream.WebSocketStream("ws://example.com/", unix_socket_path="/x", proxy=None)


@pytest.mark.parametrize("path", [b"/run/app.sock", 3, ["/x"]])
def test_a_unix_socket_path_that_is_not_a_str_or_path_is_a_type_error(path: object) -> None:
    with pytest.raises(TypeError, match="unix_socket_path"):
        wsstream.WebSocketStream("ws://example.com/", unix_socket_path=path)  # type: ignore[arg-type]


def test_unix_socket_paths_are_str_or_path_like_and_not_empty() -> None:
    wsstream.WebSocketStream("ws://example.com/", unix_socket_path=Path("/run/app.sock"))
    with pytest.raises(ValueError, match="must not be empty"):
        wsstream.WebSocketStream("ws://example.com/", unix_socket_path="")


def test_proxy_ssl_context_is_checked() -> None:
    context = ssl.create_default_context()
    wsstream.WebSocketStream("wss://e.example/", proxy="https://h:1", proxy_ssl_context=context)
    # With proxy=True it waits for the environment to name an https:// proxy.
    wsstream.WebSocketStream("wss://e.example/", proxy_ssl_context=context)
    with pytest.raises(ValueError, match="for an https:// proxy, not socks5h://"):
        wsstream.WebSocketStream(
            "wss://e.example/", proxy="socks5h://h:1", proxy_ssl_context=context
        )
    with pytest.raises(TypeError, match="proxy_ssl_context"):
        wsstream.WebSocketStream(
            "wss://e.example/", proxy="https://h:1",
            proxy_ssl_context="ca.pem",  # type: ignore[arg-type]
        )


def test_the_classic_websocket_and_connect_forever_check_the_same_options() -> None:
    with pytest.raises(ValueError, match="invalid proxy"):
        wsstream.WebSocket("ws://example.com/", proxy="gopher://h")
    with pytest.raises(ValueError, match="not used with unix_socket_path"):
        wsstream.WebSocket("ws://example.com/", proxy="http://h:1", unix_socket_path="/x")


async def test_connect_forever_checks_the_proxy_before_any_io() -> None:
    async def handler(wss: wsstream.WebSocketStream) -> None:
        raise AssertionError("never called")

    with pytest.raises(ValueError, match="invalid proxy"):
        await wsstream.connect_forever("ws://example.com/", handler, proxy="gopher://h")


def test_dialer_records_the_proxy_it_will_use() -> None:
    dialer = Dialer(parse_url("ws://example.com/"), proxy=f"socks5h://u:{SECRET}@h:1")
    assert str(dialer.proxy) == "socks5h://h:1"
    assert dialer.waiting_for_proxy is None
