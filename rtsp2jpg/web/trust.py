"""Who is asking, and through which name: the Host allow-list (DNS rebinding), the client address
behind trusted reverse proxies (fail closed), and the same-origin rule for mutating requests.

Pure functions of a WSGI environ and the config, so they are property-tested without a server;
http.py wires them in. See docs/security.md for the threat model.
"""

from __future__ import annotations

import ipaddress
import re
import socket
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

# Headers a proxy adds to say who the client is (or was). From a peer that is not a trusted proxy,
# any of them means a proxy we were not told about: the request is never treated as loopback.
FORWARDING_HEADERS = frozenset({"HTTP_FORWARDED", "HTTP_X_REAL_IP", "HTTP_X_CLIENT_IP", "HTTP_TRUE_CLIENT_IP",
                                "HTTP_CF_CONNECTING_IP", "HTTP_X_CLUSTER_CLIENT_IP", "HTTP_VIA"})
_NAME = re.compile(r"^[a-z0-9_]([a-z0-9_-]*[a-z0-9_])?(\.[a-z0-9_]([a-z0-9_-]*[a-z0-9_])?)*$")
DEFAULT_PORTS = {"http": 80, "https": 443}
HOST_MEMO_MAX = 256  # distinct Host headers whose verdict is remembered


def host_pattern_problem(entry: str) -> str | None:
    """Config check of one http.allowed_hosts entry: '*', a host name, or '*.' + a host name."""
    name = entry.lower().rstrip(".")
    if entry == "*" or _NAME.match(name.removeprefix("*.")):
        return None
    return f"{entry!r} is not a host name like cams.example.com, '*.example.com' or '*'"


def parse_ip(text: str) -> IPAddress | None:
    """An address as proxies write it: `1.2.3.4`, `1.2.3.4:5`, `::1`, `[::1]`, `[::1]:5`, quoted or not.

    IPv4-mapped IPv6 becomes IPv4 (so `::ffff:127.0.0.1` is loopback); anything else is None.
    """
    text = text.strip().strip('"').strip()
    if text.startswith("["):
        end = text.find("]")
        rest = text[end + 1:] if end > 0 else "x"
        if rest and not (rest[0] == ":" and rest[1:].isdigit()):
            return None
        text = text[1:end]
    elif text.count(":") == 1:
        text, _, port = text.partition(":")
        if not port.isdigit():
            return None
    try:
        ip = ipaddress.ip_address(text.split("%")[0])
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


def split_host(value: str) -> tuple[str, int | None] | None:
    """A Host header (`name`, `name:port`, `1.2.3.4:80`, `[::1]:80`) -> (lower-case name without a
    trailing dot, or the IP literal in canonical form; port or None). None if it is not one."""
    value = value.strip()
    port: str | None = None
    if value.startswith("["):
        end = value.find("]")
        if end < 0:
            return None
        name, rest = value[1:end], value[end + 1:]
        if rest:
            if rest[0] != ":":
                return None
            port = rest[1:]
        try:
            name = str(ipaddress.IPv6Address(name))
        except ValueError:
            return None
    else:
        name, sep, port_text = value.rpartition(":")
        if not sep:
            name = value
        else:
            port = port_text
        if ":" in name:  # a bare IPv6 address is not a valid Host
            return None
    if port is not None and port != "" and not (port.isdigit() and len(port) <= 5):
        return None
    name = name.lower()
    if name.endswith("."):
        name = name[:-1]
    if ":" not in name and not _NAME.match(name):
        return None
    return name, (int(port) if port else None)


def _is_ip_literal(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


def _last(value: str) -> str:
    """The right-most entry of a comma-separated header: the one our nearest proxy wrote."""
    return value.rsplit(",", 1)[-1].strip()


def _forwarded_elements(value: str) -> list[dict[str, str]]:
    """RFC 7239 `Forwarded: for=1.2.3.4;proto=https, for="[::1]:5"` -> one dict per hop."""
    hops = []
    for element in value.split(","):
        pairs: dict[str, str] = {}
        for pair in element.split(";"):
            key, sep, val = pair.partition("=")
            if sep:
                pairs[key.strip().lower()] = val.strip().strip('"')
        hops.append(pairs)
    return hops


@dataclass(frozen=True)
class Client:
    """`address` is for logs; `loopback` is what the no-key shortcut may rely on."""

    address: str
    loopback: bool
    forwarded: bool = False  # forwarding headers came from a peer that is not a trusted proxy


class Trust:
    """The http.allowed_hosts and http.trusted_proxies rules, parsed once."""

    def __init__(self, allowed_hosts: Iterable[str] = (), trusted_proxies: Iterable[str] = (),
                 hostname: str | None = None) -> None:
        full = (hostname if hostname is not None else socket.gethostname()).lower().rstrip(".")
        short = full.split(".")[0]
        self.names = {"localhost"} | {n for n in (full, short, f"{full}.local", f"{short}.local") if n and
                                      n != ".local"}
        self.suffixes: list[str] = []
        self.any_host = False
        for entry in allowed_hosts:
            entry = entry.strip().lower().rstrip(".")
            if entry == "*":
                self.any_host = True
            elif entry.startswith("*."):
                self.suffixes.append(entry[1:])  # ".example.com"
            elif entry:
                self.names.add(entry)
        self.proxies = [ipaddress.ip_network(p, strict=False) for p in trusted_proxies]
        # Host header -> allowed: the same few arrive on every request (~10 us to parse one). Bounded.
        self._hosts: dict[str, bool] = {}

    # -- Host allow-list -------------------------------------------------------------------------

    def host_allowed(self, value: str | None) -> bool:
        """IP literals, localhost, this machine's names and http.allowed_hosts; no Host at all
        (HTTP/1.0) passes, since a browser always sends one."""
        if self.any_host or value is None:
            return True
        if (known := self._hosts.get(value)) is None:
            if len(self._hosts) >= HOST_MEMO_MAX:
                self._hosts.clear()
            known = self._hosts[value] = self._host_allowed(value)
        return known

    def _host_allowed(self, value: str) -> bool:
        if value.strip() == "":
            return True
        parsed = split_host(value)
        if parsed is None:
            return False
        name = parsed[0]
        if _is_ip_literal(name) or name in self.names:
            return True
        return any(name.endswith(suffix) and len(name) > len(suffix) for suffix in self.suffixes)

    def hosts_allowed(self, environ: Mapping[str, Any]) -> str | None:
        """The first Host this request names that is not allowed (Host, and X-Forwarded-Host or
        Forwarded host= from a trusted proxy), else None."""
        names = [environ.get("HTTP_HOST")]
        if self.from_proxy(environ):
            names += self._forwarded_host_and_proto(environ)[0:1]
        for name in names:
            if not self.host_allowed(name):
                return name
        return None

    # -- client address --------------------------------------------------------------------------

    def is_proxy(self, ip: IPAddress | None) -> bool:
        return ip is not None and any(ip.version == net.version and ip in net for net in self.proxies)

    def from_proxy(self, environ: Mapping[str, Any]) -> bool:
        return bool(self.proxies) and self.is_proxy(parse_ip(str(environ.get("REMOTE_ADDR") or "")))

    def _from_chain(self, hops: list[str]) -> IPAddress | None:
        """The right-most hop that is not a trusted proxy; an unreadable hop before it: unknown."""
        parsed = [parse_ip(h) for h in hops if h.strip()]
        for ip in reversed(parsed):
            if ip is None:
                return None
            if not self.is_proxy(ip):
                return ip
        return parsed[0] if parsed else None

    def client(self, environ: Mapping[str, Any]) -> Client:
        """Who sent this request. The peer itself, unless it is a trusted proxy that names the client
        in X-Forwarded-For, Forwarded for= or X-Real-IP; loopback only if every such header says so."""
        raw_peer = str(environ.get("REMOTE_ADDR") or "")
        peer = parse_ip(raw_peer)
        forwarding = [k for k in environ if k.startswith("HTTP_X_FORWARDED_") or k in FORWARDING_HEADERS]
        if peer is None:
            return Client(raw_peer or "unknown", False, bool(forwarding))
        if not self.is_proxy(peer):
            return Client(str(peer), peer.is_loopback and not forwarding, bool(forwarding))
        named: list[IPAddress | None] = []
        if "HTTP_X_FORWARDED_FOR" in environ:
            named.append(self._from_chain(str(environ["HTTP_X_FORWARDED_FOR"]).split(",")))
        if "HTTP_FORWARDED" in environ:
            hops = _forwarded_elements(str(environ["HTTP_FORWARDED"]))
            named.append(self._from_chain([h.get("for", "unknown") for h in hops]))
        if "HTTP_X_REAL_IP" in environ:
            named.append(parse_ip(str(environ["HTTP_X_REAL_IP"])))
        if not named:  # the proxy's host talking to us directly (a local tool, the watchdog probe)
            return Client(str(peer), peer.is_loopback)
        first = named[0]
        return Client(str(first) if first is not None else "unknown",
                      all(ip is not None and ip.is_loopback for ip in named))

    # -- same origin -----------------------------------------------------------------------------

    def _forwarded_host_and_proto(self, environ: Mapping[str, Any]) -> tuple[str | None, str | None]:
        host = environ.get("HTTP_X_FORWARDED_HOST")
        proto = environ.get("HTTP_X_FORWARDED_PROTO")
        if "HTTP_FORWARDED" in environ:
            last = _forwarded_elements(str(environ["HTTP_FORWARDED"]))[-1]
            host = host or last.get("host")
            proto = proto or last.get("proto")
        return (_last(host) if host else None), (_last(proto).lower() if proto else None)

    def own_origin(self, environ: Mapping[str, Any]) -> tuple[str, str, int] | None:
        """(scheme, host, port) the client used to reach us, as far as the request says."""
        scheme = str(environ.get("wsgi.url_scheme") or "http").lower()
        host = environ.get("HTTP_HOST")
        if self.from_proxy(environ):
            fwd_host, fwd_proto = self._forwarded_host_and_proto(environ)
            host, scheme = fwd_host or host, fwd_proto or scheme
        parsed = split_host(str(host)) if host else None
        if parsed is None:
            return None
        return scheme, parsed[0], parsed[1] or DEFAULT_PORTS.get(scheme, 0)

    def cross_site(self, environ: Mapping[str, Any]) -> str | None:
        """Why this request is cross-site (a sentence fragment), or None when it is not."""
        site = str(environ.get("HTTP_SEC_FETCH_SITE", "")).strip().lower()
        if site in ("cross-site", "same-site"):
            return f"Sec-Fetch-Site is {site}"
        origin = environ.get("HTTP_ORIGIN")
        if origin is None:
            return None  # not a browser, or a same-origin GET: browsers send Origin on cross-site POSTs
        origin = str(origin).strip()
        if origin.lower() == "null":
            return "Origin is null (a sandboxed or file page)"
        theirs = _origin(origin)
        own = self.own_origin(environ)
        if theirs is None or own is None or theirs != own:
            return f"Origin {origin[:100]!r} is not this service's origin"
        return None


def json_body_problem(environ: Mapping[str, Any]) -> str | None:
    """Mutating requests take JSON or nothing: a body or a Content-Type that is not application/json
    (parameters such as charset allowed) is what an HTML form or a no-cors fetch can send cross-site
    without a preflight, so it is refused (415). No body and no Content-Type stays allowed, for the
    original rtsp2jpg's `POST /unregister/<id>`."""
    ctype = str(environ.get("CONTENT_TYPE") or "").strip()
    length = str(environ.get("CONTENT_LENGTH") or "").strip()
    has_body = (length not in ("", "0")) or "chunked" in str(environ.get("HTTP_TRANSFER_ENCODING", "")).lower()
    mime = ctype.split(";", 1)[0].strip().lower()
    if (ctype or has_body) and mime != "application/json":
        got = f"Content-Type {ctype[:60]!r}" if ctype else "no Content-Type"
        return f"request body must be JSON: send Content-Type: application/json (got {got})"
    return None


def _origin(value: str) -> tuple[str, str, int] | None:
    try:
        parts = urlsplit(value)
        port = parts.port
    except ValueError:
        return None
    scheme, host = parts.scheme.lower(), (parts.hostname or "").rstrip(".")
    if not scheme or not host:
        return None
    if _is_ip_literal(host):
        host = str(ipaddress.ip_address(host))
    return scheme, host, port or DEFAULT_PORTS.get(scheme, 0)
