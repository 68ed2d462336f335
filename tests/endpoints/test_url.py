"""URL parsing and normalisation, as the browser's URL parser does it."""

from __future__ import annotations

import pytest

import wsstream


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("ws://127.0.0.1:9/caf\u00e9", "ws://127.0.0.1:9/caf%C3%A9"),
        ("ws://h/a b?q=\u00e9 x", "ws://h/a%20b?q=%C3%A9%20x"),
        ("ws://h/a%20b?x=%41", "ws://h/a%20b?x=%41"),
        ("ws://b\u00fccher.example/", "ws://xn--bcher-kva.example/"),
        ("HTTP://Example.COM:80", "ws://example.com/"),
        ("https://[::1]:443/p", "wss://[::1]/p"),
    ],
)
def test_urls_are_percent_encoded_and_normalised(given: str, expected: str) -> None:
    assert wsstream.WebSocketStream(given).url == expected


@pytest.mark.parametrize(
    "bad", ["ws://h/\tx", "ws://h/\nx", "ws://h:99999/", "ws:///path", "ws://a b/", "ws://[zz]/"]
)
def test_control_characters_bad_ports_and_missing_hosts_are_refused(bad: str) -> None:
    with pytest.raises(ValueError):
        wsstream.WebSocketStream(bad)
