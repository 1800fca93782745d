"""How a URL (or any text holding URLs) looks once its passwords and tokens are gone: `redact`, `secrets_of`."""

from __future__ import annotations

import re
from urllib.parse import unquote, unquote_plus

MASK = "***"
DEFAULT_PORTS = {"rtsp": 554, "rtsps": 322}
# Where a URL starts in any text: any scheme, so a rejected file:// or http:// URL is masked too.
# It ends where a URL cannot go on (validate_rtsp_url refuses those characters); a URL inside it
# (`a://x,b://u:p@y`) is scanned in turn. Schemes are bounded (16 characters): an unbounded one made
# a long line without "://" quadratic.
_URL = re.compile(r"(?i)[a-z][a-z0-9+.-]{0,15}://[^\s\"'`<>\\{}|^\x00-\x1f\x7f]*")
MAX_NESTING = 8  # URLs inside URLs inside ...: deeper than this, the rest is masked whole
_HOSTPORT = re.compile(r"^(?:\[[0-9A-Fa-f:.]+(?:%[\w.~-]+)?\]|[^:\[\]@]+)(?::[0-9]*)?$")
# Query and vendor path keys that carry a secret (`password=`, `pwd=`, `authbasic=`, `token=`, ...),
# any case, also at the end of a longer name (`camera_password=`); user names stay visible.
_KEYED = (r"(?i)(^|[&;_/])([a-z0-9.-]*?(?:pass(?:word|wd|wort)?|pwd|pw|psw|auth(?:basic)?|token|"
          r"api_?key|key|secret|sig(?:nature)?|session(?:id)?))=")
# In a path a value ends at `&`, `;`, `/` or a vendor `_name=` (`password=X_channel=1_stream=0.sdp`;
# its first character always belongs to it); in a query at `&` or `#`, in a fragment at `&`.
_PAIR_PATH = re.compile(_KEYED + r"([^&;/](?:(?!_[A-Za-z][A-Za-z0-9-]*=)[^&;/])*)?")
_PAIR_QUERY = re.compile(_KEYED + r"([^&#]*)")
_PAIR_FRAGMENT = re.compile(_KEYED + r"([^&]*)")
_ALNUM_RUN = re.compile(r"(?<![A-Za-z0-9])[A-Za-z0-9]{12,}(?![A-Za-z0-9])")
MIN_TOKEN = 12


def _is_token(word: str) -> bool:
    """A long opaque alphanumeric word (UniFi Protect's `/AbCdEf123456789`), not a path like `realmonitor`.

    Upper, lower and digits together, or (two classes) a class change at most characters: random
    tokens change class every ~1.6 characters, CamelCase names (`FrontDoorCameraMain`) every ~3+.
    """
    if len(word) < MIN_TOKEN or not word.isascii() or not word.isalnum():
        return False
    kinds = [0 if c.isdigit() else 1 if c.isupper() else 2 for c in word]
    present = set(kinds)
    if len(present) == 3:
        return True
    changes = sum(a != b for a, b in zip(kinds, kinds[1:], strict=False))
    if 0 in present and len(present) == 2:
        return changes * 3 > len(word) - 1  # hex and other letter+digit tokens
    return len(present) == 2 and changes * 2 > len(word) - 1


def _first(text: str, chars: str) -> int:
    return min((i for i in (text.find(c) for c in chars) if i >= 0), default=len(text))


def _decoded(value: str) -> list[str]:
    return [value, unquote(value), unquote_plus(value)]


def _mask_pairs(text: str, pattern: re.Pattern[str], found: list[str]) -> str:
    def repl(m: re.Match[str]) -> str:
        if m.group(3):
            found.extend(_decoded(m.group(3)))
            return f"{m.group(1)}{m.group(2)}={MASK}"
        return m.group(0)

    return pattern.sub(repl, text)


def _mask_tail(tail: str, found: list[str]) -> str:
    """Path, query and fragment: secret-keyed values and opaque tokens become ***."""
    q = _first(tail, "?#")
    path, rest = tail[:q], tail[q:]
    out = _mask_pairs(path, _PAIR_PATH, found)
    if rest.startswith("?"):
        h = rest.find("#")
        query, rest = (rest[1:h], rest[h:]) if h >= 0 else (rest[1:], "")
        out += "?" + _mask_pairs(query, _PAIR_QUERY, found)
    if rest:
        out += "#" + _mask_pairs(rest[1:], _PAIR_FRAGMENT, found)

    def token(m: re.Match[str]) -> str:
        if _is_token(m.group(0)):
            found.append(m.group(0))
            return MASK
        return m.group(0)

    return _ALNUM_RUN.sub(token, out)


def _mask_userinfo(userinfo: str, found: list[str]) -> str:
    user, colon, password = userinfo.partition(":")
    if colon:
        found.extend(_decoded(password))
    if _is_token(unquote(user)):  # `rtsp://<token>@host`: a user name that is really a key
        found.extend(_decoded(user))
        user = MASK
    return f"{user}:{MASK}@" if colon else f"{user}@"


def _scan(url: str, found: list[str], depth: int = 0) -> str:
    """`url` with every secret masked (the secrets, as written and percent-decoded, go to `found`)."""
    scheme, sep, rest = url.partition("://")
    if depth > MAX_NESTING:
        return f"{scheme}{sep}{MASK}"
    end = _first(rest, "/?#")
    authority, tail = rest[:end], rest[end:]
    shown = ""
    if "@" in authority:
        userinfo, authority = authority.rsplit("@", 1)
        shown = _mask_userinfo(userinfo, found)
    elif "@" in tail:
        last = rest.rindex("@")
        if not _HOSTPORT.match(authority):
            # `rtsp://admin:pa/ss@host/x`: no connector accepts it (port "pa"), but its author meant
            # a password with a raw '/', '?' or '#': mask up to the last '@'.
            shown = _mask_userinfo(rest[:last], found)
            after = rest[last + 1:]
            end = _first(after, "/?#")
            authority, tail = after[:end], after[end:]
        elif ":" in rest[:last]:
            # `rtsp://10.0.0.1:554/path@x` keeps its host, but the path up to a raw '@' left after the
            # keyed values are masked could be the tail of a password with a raw '/': mask it too.
            tail = _mask_tail(tail, found)
            if "@" in tail:
                tail = tail[0] + MASK + tail[tail.rindex("@"):]
            return f"{scheme}{sep}{authority}{_redact(tail, found, depth + 1)}"
    return f"{scheme}{sep}{shown}{authority}{_redact(_mask_tail(tail, found), found, depth + 1)}"


def _redact(text: str, found: list[str], depth: int = 0) -> str:
    if "://" not in text:
        return text
    return _URL.sub(lambda m: _scan(m.group(0), found, depth), text)


def redact(text: str) -> str:
    """Mask every credential of every URL in `text` (a URL, a log line, an exception's repr).

    Passwords in the userinfo, secret query/fragment/path parameters and opaque path tokens become
    `***`; scheme, user name, host, port and the rest of the path stay (they help).
    """
    return _redact(text, [])


def secrets_of(url: str) -> list[str]:
    """Every secret of `url` as written and decoded, longest first: for text that has no URL around it
    (a library printing `user-pw=...`, FFmpeg printing the bare path)."""
    found: list[str] = []
    _redact(url, found)
    return sorted({s for s in found if s}, key=len, reverse=True)


passwords = secrets_of  # the older name, kept for callers and tests
