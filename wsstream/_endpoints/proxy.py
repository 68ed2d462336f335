"""Which proxy a client goes through: proxy URLs and the environment's rules.

No I/O here: :func:`parse_proxy` checks a proxy URL, :func:`proxy_from_environment`
picks the proxy that the environment names for a WebSocket URL, as curl
does, and :func:`bypassed` applies ``no_proxy``. Dialling through the proxy
is :mod:`.tunnel`'s.

A :class:`ProxyURL` keeps its credentials out of its ``str()`` and ``repr()``:
every message and log line shows a proxy as ``scheme://host:port``, so a
password can only reach the proxy itself.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Mapping
from urllib.parse import unquote, urlsplit

import attrs

from .url import WebSocketURL

__all__ = ["ProxyURL", "bypassed", "parse_proxy", "proxy_from_environment"]

#: The schemes a proxy URL may have, and the port each defaults to: HTTP's
#: and HTTPS' own, and 1080, the port IANA registered for SOCKS.
DEFAULT_PORTS = {
    "http": 80, "https": 443, "socks5": 1080, "socks5h": 1080, "socks4": 1080, "socks4a": 1080,
}

# The environment's variables, in order of precedence, for each scheme of
# WebSocket URL: curl's own (libcurl-env(3): ws_proxy/wss_proxy first, then
# the http/https ones, then all_proxy).
_VARIABLES = {
    "ws": ("ws_proxy", "http_proxy", "all_proxy"),
    "wss": ("wss_proxy", "https_proxy", "all_proxy"),
}


@attrs.frozen(repr=False)
class ProxyURL:
    """A checked proxy URL. ``str()`` is ``scheme://host:port``, never the
    credentials, which only :mod:`.tunnel` reads."""

    scheme: str
    host: str
    port: int
    username: str | None = None
    password: str | None = None

    @property
    def socks(self) -> bool:
        return self.scheme.startswith("socks")

    @property
    def address(self) -> str:
        """``host:port`` (an IPv6 host in brackets)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"

    def __str__(self) -> str:
        return f"{self.scheme}://{self.address}"

    def __repr__(self) -> str:
        return f"ProxyURL({str(self)!r})"


def redact(text: str) -> str:
    """``text`` (a URL that may not parse) with any userinfo replaced by ``***``."""
    scheme, sep, rest = text.partition("://")
    if not sep:
        scheme, rest = "", text
    end = len(rest)
    for stop in "/?#":
        index = rest.find(stop)
        if index >= 0:
            end = min(end, index)
    authority = rest[:end]
    if "@" in authority:
        # The last "@" ends the userinfo, as urlsplit reads it: a password
        # with an unescaped "@" is hidden whole.
        authority = "***@" + authority.rpartition("@")[2]
    return f"{scheme}{sep}{authority}{rest[end:]}"


def parse_proxy(
    value: object, *, name: str = "proxy", default_scheme: str | None = None
) -> ProxyURL:
    """Check a proxy URL; ``name`` is what the messages call it.

    ``default_scheme`` is given to a value without ``scheme://`` (the
    environment's ``host:port``, as curl reads it). Raises
    :class:`TypeError` for a value that is not a str and :class:`ValueError`
    for anything that is not a usable proxy URL; neither message shows the
    credentials.
    """
    if not isinstance(value, str):
        raise TypeError(f"{name} must be True, a proxy URL or None, not {type(value).__name__}")
    text = value.strip()
    shown = repr(redact(text))
    if default_scheme is not None and "://" not in text:
        text = f"{default_scheme}://{text}"
    if any(ord(c) < 0x21 or ord(c) == 0x7F for c in text):
        raise ValueError(f"invalid {name} {shown}: control characters or blanks")
    try:
        parts = urlsplit(text)
        port = parts.port
    except ValueError as exc:
        # urlsplit's message may quote the netloc: say only what is wrong.
        reason = "bad port" if "port" in str(exc) else "unparsable URL"
        raise ValueError(f"invalid {name} {shown}: {reason}") from None
    scheme = parts.scheme.lower()
    if scheme not in DEFAULT_PORTS:
        raise ValueError(
            f"invalid {name} {shown}: the scheme must be http, https, socks5, socks5h, "
            "socks4 or socks4a"
        )
    host = parts.hostname
    if not host:
        raise ValueError(f"invalid {name} {shown}: no host")
    if parts.path not in ("", "/") or parts.query or parts.fragment or "#" in text:
        raise ValueError(f"invalid {name} {shown}: a proxy URL has no path, query or fragment")
    if ":" in host:
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise ValueError(f"invalid {name} {shown}: bad IPv6 address") from None
    else:
        try:
            host.encode("ascii")
        except UnicodeEncodeError:
            try:
                host = host.encode("idna").decode("ascii")
            except UnicodeError:
                raise ValueError(f"invalid {name} {shown}: bad host name") from None
    if port == 0:
        raise ValueError(f"invalid {name} {shown}: bad port")
    username = password = None
    if parts.username is not None:
        username = unquote(parts.username)
        password = None if parts.password is None else unquote(parts.password)
        if scheme.startswith("socks4") and password is not None:
            raise ValueError(f"invalid {name} {shown}: SOCKS4 takes a user id, not a password")
        if scheme.startswith("socks5"):
            if password is None:
                raise ValueError(f"invalid {name} {shown}: a SOCKS5 user name needs a password")
            if not 0 < len(username.encode()) <= 255 or not 0 < len(password.encode()) <= 255:
                # RFC 1929: one byte of length each, neither empty.
                raise ValueError(
                    f"invalid {name} {shown}: SOCKS5 credentials are 1 to 255 bytes each"
                )
        if scheme in ("http", "https"):
            if ":" in username:
                raise ValueError(
                    f"invalid {name} {shown}: a user name cannot contain ':' (Basic authentication)"
                )
            password = password or ""  # curl's "user@": an empty password
    return ProxyURL(scheme, host, port or DEFAULT_PORTS[scheme], username, password)


def proxy_from_environment(
    url: WebSocketURL, environ: Mapping[str, str] | None = None
) -> ProxyURL | None:
    """The proxy the environment names for ``url``, ``None`` for none.

    The first set of the scheme's variables (:data:`_VARIABLES`), each in
    lower case then upper case, unless ``no_proxy`` lists the URL's host.
    An empty variable counts as not set. ``HTTP_PROXY`` in upper case is
    ignored when ``REQUEST_METHOD`` is set: in a CGI script it comes from
    the request's ``Proxy:`` header (httpoxy), as Python's urllib knows.
    Raises :class:`ValueError`, naming the variable, if its value is not a
    proxy URL.
    """
    env = os.environ if environ is None else environ
    for base in _VARIABLES[url.scheme]:
        for variable in (base, base.upper()):
            if variable == "HTTP_PROXY" and "REQUEST_METHOD" in env:
                continue
            value = env.get(variable, "").strip()
            if value:
                break
        else:
            continue
        if bypassed(url, _no_proxy(env)):
            return None
        return parse_proxy(value, name=f"proxy in ${variable}", default_scheme="http")
    return None


def _no_proxy(env: Mapping[str, str]) -> str:
    return env.get("no_proxy", "").strip() or env.get("NO_PROXY", "")


def bypassed(url: WebSocketURL, no_proxy: str) -> bool:
    """Whether the ``no_proxy`` list ``no_proxy`` exempts ``url``'s host.

    Entries, separated by commas (blanks around them ignored): ``*``, every
    host; an IP address or CIDR block, the URL's host when it is an address
    in it; a name, itself and the names under it (a leading ``.`` or ``*.``
    changes nothing, case and a trailing dot do not count). Any entry may
    end with ``:port`` (an IPv6 address then in brackets) to match that port
    only. No name is resolved.
    """
    host = url.host.lower().rstrip(".")
    address = _address(host)
    for raw in no_proxy.split(","):
        entry = raw.strip().lower()
        if not entry:
            continue
        if entry == "*":
            return True
        entry, port = _split_port(entry)
        if port is not None and port != url.port:
            continue
        network = _network(entry)
        if network is not None:
            if address is not None and address.version == network.version and address in network:
                return True
            continue
        name = entry.removeprefix("*").removeprefix(".").rstrip(".")
        if name and (host == name or host.endswith("." + name)):
            return True
    return False


def _split_port(entry: str) -> tuple[str, int | None]:
    """``"name:443"`` -> ``("name", 443)``; a bare IPv6 address has no port."""
    if entry.startswith("["):
        inside, _, rest = entry[1:].partition("]")
        if rest.startswith(":") and rest[1:].isdigit():
            return inside, int(rest[1:])
        return inside, None
    head, sep, tail = entry.rpartition(":")
    if sep and tail.isdigit() and ":" not in head:
        return head, int(tail)
    return entry, None


def _address(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(host.partition("%")[0])
    except ValueError:
        return None


def _network(entry: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network | None:
    """An IP address (a network of one) or CIDR block, else ``None``."""
    if not entry or not (entry[0].isdigit() or ":" in entry):
        return None  # a name: "10.example" still starts with a digit, tried below
    try:
        return ipaddress.ip_network(entry, strict=False)
    except ValueError:
        return None
