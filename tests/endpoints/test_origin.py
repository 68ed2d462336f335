"""The Origin comparison of RFC 6454 (wsstream._endpoints.origin): pure functions, no I/O.

The server's ``origins=`` check uses it (tests/api/test_controls.py checks it
from a client)."""

from __future__ import annotations

import pytest

from wsstream._endpoints.origin import allowed_origins, normalize_origin, origin_allowed


@pytest.mark.parametrize(
    ("value", "normal"),
    [
        ("https://example.com", "https://example.com"),
        ("HTTPS://Example.COM", "https://example.com"),
        ("https://example.com:443", "https://example.com"),
        ("http://example.com:80", "http://example.com"),
        ("wss://example.com:443", "wss://example.com"),
        ("ws://example.com:80", "ws://example.com"),
        ("https://example.com:80", "https://example.com:80"),
        ("https://example.com:0443", "https://example.com"),
        ("http://[::1]:8080", "http://[::1]:8080"),
        ("http://[FE80::1]", "http://[fe80::1]"),
        ("https://B\u00fccher.example", "https://xn--bcher-kva.example"),
        # Not scheme://host[:port]: compared as they are.
        ("null", "null"),
        ("https://example.com/", "https://example.com/"),
        ("https://example.com:99999", "https://example.com:99999"),
        ("https://a.example https://b.example", "https://a.example https://b.example"),
        ("", ""),
    ],
)
def test_normalize_origin(value: str, normal: str) -> None:
    assert normalize_origin(value) == normal


def test_scheme_and_host_compare_case_insensitively_and_default_ports_match() -> None:
    allowed = allowed_origins(["https://App.Example.com"])
    assert origin_allowed("https://app.example.com", allowed)
    assert origin_allowed("https://APP.example.COM:443", allowed)
    assert origin_allowed("HTTPS://app.example.com", allowed)


@pytest.mark.parametrize(
    "origin",
    [
        "http://app.example.com",  # another scheme
        "https://app.example.com:8443",  # another port
        "https://app.example.com.evil.example",  # another host
        "https://evil.example",
        "null",  # an opaque origin: sandboxed frames, file:// pages
        None,  # no Origin header
    ],
)
def test_other_origins_are_refused(origin: str | None) -> None:
    assert not origin_allowed(origin, allowed_origins(["https://app.example.com"]))


def test_none_in_the_list_allows_requests_without_origin() -> None:
    allowed = allowed_origins(["https://app.example.com", None])
    assert origin_allowed(None, allowed)
    assert not origin_allowed("null", allowed)


def test_null_matches_only_an_entry_written_null() -> None:
    assert origin_allowed("null", allowed_origins(["null"]))
    assert not origin_allowed("NULL", allowed_origins(["null"]))


def test_an_empty_list_refuses_everything() -> None:
    allowed = allowed_origins([])
    assert not origin_allowed(None, allowed)
    assert not origin_allowed("https://app.example.com", allowed)
