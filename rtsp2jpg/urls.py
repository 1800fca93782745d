"""Camera URLs: what may reach a pipeline, and how a URL looks once its password is gone."""

from __future__ import annotations

import ipaddress
import re
import socket
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import unquote, urlsplit

SCHEMES = ("rtsp", "rtsps")
MAX_URL_LENGTH = 2048
# Characters that could break out of a quoted GStreamer property or a shell word, or smuggle headers.
_FORBIDDEN = re.compile(r"[\s\"'`!\\<>{}|^\x00-\x1f\x7f]")
# user:password@ inside any rtsp URL, also when embedded in a longer text (log lines, error messages).
_CREDENTIALS = re.compile(r"(?i)(rtsps?://)([^/@\s:]*):([^@\s]*)@")


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


def redact(text: str) -> str:
    """Replace the password of every rtsp URL in `text` with `***` (user names stay: they help)."""
    return _CREDENTIALS.sub(r"\1\2:***@", text)


def host_of(url: str) -> str:
    """`host:port` of a camera URL, for messages that must not carry credentials."""
    parts = urlsplit(url)
    return f"{parts.hostname}:{parts.port or (322 if parts.scheme == 'rtsps' else 554)}"


def split_credentials(url: str) -> tuple[str, str | None, str | None]:
    """(url without userinfo, user, password), percent-decoding kept as-is for the pipeline to use."""
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url, None, None
    userinfo, hostport = parts.netloc.rsplit("@", 1)
    user, _, password = userinfo.partition(":")
    bare = parts._replace(netloc=hostport).geturl()
    return bare, user, password if _ else None



def passwords(url: str) -> list[str]:
    """The password of `url` as written and percent-decoded, for redacting text that has no URL around it."""
    _, _, password = split_credentials(url)
    if not password:
        return []
    return sorted({password, unquote(password)}, key=len, reverse=True)


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
