"""Camera URLs: what may reach a pipeline, one spelling per stream, which networks it may reach.

How a URL looks once its password is gone: redaction.py (re-exported here: `urls.redact`)."""

from __future__ import annotations

import ipaddress
import re
import socket
import string
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import quote, unquote, urlsplit

from rtsp2jpg.redaction import DEFAULT_PORTS, MASK, passwords, redact, secrets_of  # noqa: F401 (re-exported)

SCHEMES = ("rtsp", "rtsps")
MAX_URL_LENGTH = 2048
# Characters that could break out of a quoted GStreamer property or a shell word, or smuggle headers.
_FORBIDDEN = re.compile(r"[\s\"'`!\\<>{}|^\x00-\x1f\x7f]")
class UrlError(ValueError):
    """The URL is not one this service will open; the message says why (without the URL)."""


class NotAllowedError(UrlError):
    """The URL's host lies outside `capture.allow_networks` (HTTP 403, not 400: the URL itself is fine)."""


def validate_rtsp_url(url: object) -> str:
    """Return `url` if it is a plain rtsp:// or rtsps:// URL with a host, else raise UrlError."""
    if not isinstance(url, str) or not url:
        raise UrlError("must be a non-empty string")
    if len(url) > MAX_URL_LENGTH:
        raise UrlError(f"must be at most {MAX_URL_LENGTH} characters")
    scheme = url.split(":", 1)[0].lower()
    if scheme not in SCHEMES:
        raise UrlError("must start with rtsp:// or rtsps://")
    if any("\ud800" <= c <= "\udfff" for c in url):  # lone surrogates (JSON "\ud800") cannot be stored or sent
        raise UrlError("must be valid Unicode text")
    if _FORBIDDEN.search(url):
        raise UrlError("must not contain spaces, quotes, backslashes, '!' or control characters")
    # User, password and path are percent-decoded on their way into an Authorization header, rtspsrc
    # user-id/user-pw or FFmpeg: a decoded CR/LF would inject an RTSP header, so no connector gets one.
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in unquote(url)):
        raise UrlError("must not contain percent-encoded control characters such as %0D%0A "
                       "(in the user name, password or path they could inject RTSP headers)")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise UrlError("has an invalid host or port") from None
    if not url[len(scheme):].startswith("://") or not parts.hostname:
        raise UrlError("must name a host (rtsp://host[:port]/path)")
    if port == 0:
        raise UrlError("has an invalid port")
    return url


# --- redaction: one scanner, used both to mask text and to list a URL's secrets -------------------
#
# The authority ends at the first '/', '?' or '#' and its userinfo at the LAST '@' inside it: the rule
# of urlsplit, FFmpeg's av_url_split and split_credentials (which feeds rtspsrc user-id/user-pw and our
# RTSP clients), so a raw '@' or ':' in a password is masked exactly as far as the connectors read it.


def host_of(url: str) -> str:
    """`host:port` of a camera URL, for messages that must not carry credentials."""
    parts = urlsplit(url)
    return f"{parts.hostname}:{parts.port or DEFAULT_PORTS.get(parts.scheme.lower(), 554)}"


def split_credentials(url: str) -> tuple[str, str | None, str | None]:
    """(url without userinfo, user, password), percent-decoding kept as-is for the pipeline to use."""
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url, None, None
    userinfo, hostport = parts.netloc.rsplit("@", 1)
    user, _, password = userinfo.partition(":")
    bare = parts._replace(netloc=hostport).geturl()
    return bare, user, password if _ else None


# --- canonical form: one stream under many spellings is one camera --------------------------------

_UNRESERVED = frozenset(string.ascii_letters + string.digits + "-._~")
_PERCENT = re.compile(r"%([0-9A-Fa-f]{2})")
_IPV4_PART = re.compile(r"(?i)^(?:0x[0-9a-f]+|[0-9]+)$")


def _percent_normal(text: str) -> str:
    """RFC 3986 6.2.2: decode percent-encoded unreserved characters, upper-case the other escapes."""
    def repl(m: re.Match[str]) -> str:
        ch = chr(int(m.group(1), 16))
        return ch if ch in _UNRESERVED else "%" + m.group(1).upper()

    return _PERCENT.sub(repl, text)


def _aton_part(part: str) -> int | None:
    if not _IPV4_PART.match(part):
        return None
    if part[:2].lower() == "0x":
        return int(part[2:], 16)
    if len(part) > 1 and part[0] == "0":
        return int(part, 8) if set(part) <= set("01234567") else None  # `08` is no number to inet_aton
    return int(part)


def _inet_aton(host: str) -> str | None:
    """`127.1`, `0x7f000001`, `2130706433`, `0177.0.0.1` -> `127.0.0.1`, as getaddrinfo reads them."""
    parts = host.split(".")
    nums = [_aton_part(p) for p in parts] if 1 <= len(parts) <= 4 else [None]
    if any(n is None for n in nums):
        return None
    *head, last = [n for n in nums if n is not None]
    if any(n > 255 for n in head) or last >= 256 ** (5 - len(nums)):
        return None
    return str(ipaddress.IPv4Address(sum(n << (24 - 8 * i) for i, n in enumerate(head)) + last))


def _canonical_host(host: str) -> str:
    if ":" in host:  # IPv6 (urlsplit took the brackets off)
        addr, pct, zone = host.partition("%")
        try:
            ip = ipaddress.IPv6Address(addr)
        except ValueError:
            return f"[{host}]"
        if ip.ipv4_mapped:
            return str(ip.ipv4_mapped)
        return f"[{ip.compressed}{pct}{zone}]"
    host = host[:-1] if host.endswith(".") else host
    dotted = _inet_aton(host)
    if dotted:
        return dotted
    try:
        return host.encode("idna").decode("ascii")
    except UnicodeError:
        return host


def _userinfo_key(userinfo: str) -> str:
    user, colon, password = userinfo.partition(":")
    key = quote(unquote(user), safe="")
    return key + (":" + quote(unquote(password), safe="") if colon else "") + "@"


def canonical(url: str) -> str:
    """A comparison key for `url`: equal for spellings every connector opens as the same stream.

    Scheme and host case, the default port (554, rtsps 322), a trailing slash, inet_aton forms of
    IPv4, v4-mapped IPv6, percent-encoding of unreserved characters and of the credentials. Only a
    key: the URL sent to the camera is still the one registered.
    """
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError:
        return url
    scheme = parts.scheme.lower()
    userinfo = _userinfo_key(parts.netloc.rsplit("@", 1)[0]) if "@" in parts.netloc else ""
    host = _canonical_host(parts.hostname or "")
    port = port or DEFAULT_PORTS.get(scheme, 0)
    path = _percent_normal(parts.path)
    path = path.rstrip("/") or "/"
    query = "?" + _percent_normal(parts.query) if parts.query else ""
    fragment = "#" + _percent_normal(parts.fragment) if parts.fragment else ""
    return f"{scheme}://{userinfo}{host}:{port}{path}{query}{fragment}"

def check_allowed(url: str, networks: Iterable[str],
                  resolve: Callable[..., list[Any]] = socket.getaddrinfo) -> None:
    """Raise NotAllowedError unless every address `url`'s host resolves to is inside `networks`.

    Every address, not any: a name that resolves to one allowed and one foreign address could
    still be used to reach the foreign one. No networks = no restriction.
    """
    nets = [ipaddress.ip_network(n, strict=False) for n in networks]
    if not nets:
        return
    host = urlsplit(url).hostname or ""
    try:
        addrs = {ipaddress.ip_address(host.split("%")[0])}
    except ValueError:
        try:
            infos = resolve(host, None, type=socket.SOCK_STREAM)
        except (OSError, UnicodeError):
            raise UrlError("host does not resolve (capture.allow_networks needs an address to check)") from None
        addrs = {ipaddress.ip_address(str(info[4][0]).split("%")[0]) for info in infos}
    if not addrs:
        raise UrlError("host does not resolve (capture.allow_networks needs an address to check)")
    for addr in sorted(addrs, key=str):
        if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped:
            addr = addr.ipv4_mapped
        if not any(addr.version == n.version and addr in n for n in nets):
            raise NotAllowedError(f"host {addr} is outside capture.allow_networks")
