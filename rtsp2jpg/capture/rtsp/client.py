"""The RTSP client's one request path: a request over wire.py's bounded exchange, the Digest/Basic answer to
a challenge, DESCRIBE with its authenticated retry, and the Session and Transport header readers. probe.py
(the codec), diagnose.py (why an open failed) and session.py (our receiver) all speak through it.
"""

from __future__ import annotations

import hashlib
import os
import re
import socket

from rtsp2jpg.capture.rtsp import wire

USER_AGENT = "rtsp2jpg"
DEFAULT_SESSION_TIMEOUT_SEC = 60  # RFC 2326's session timeout when the camera names none
_AUTH_PARAM = re.compile(r'(\w+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,]+))')


def parse_challenge(header: str) -> tuple[str, dict[str, str]]:
    """`Digest realm="x", nonce="y"` -> ("digest", {"realm": "x", "nonce": "y"})."""
    scheme, _, rest = header.strip().partition(" ")
    params = {m.group(1).lower(): m.group(2) if m.group(2) is not None else m.group(3)
              for m in _AUTH_PARAM.finditer(rest)}
    return scheme.lower(), params


def authorization(challenges: list[str], method: str, uri: str, user: str, password: str,
                  cnonce: str | None = None) -> str | None:
    """The Authorization header answering the strongest challenge we speak (Digest MD5, then Basic)."""
    parsed = [parse_challenge(c) for c in challenges]
    for scheme, params in parsed:
        if scheme == "digest" and params.get("algorithm", "MD5").upper() == "MD5" and "nonce" in params:
            realm, nonce = params.get("realm", ""), params["nonce"]
            ha1 = hashlib.md5(f"{user}:{realm}:{password}".encode()).hexdigest()  # noqa: S324 - RFC 2617
            ha2 = hashlib.md5(f"{method}:{uri}".encode()).hexdigest()  # noqa: S324
            fields = [f'username="{user}"', f'realm="{realm}"', f'nonce="{nonce}"', f'uri="{uri}"']
            qops = [q.strip() for q in params.get("qop", "").split(",") if q.strip()]
            if "auth" in qops:
                cnonce = cnonce or os.urandom(8).hex()
                nc = "00000001"
                response = hashlib.md5(  # noqa: S324
                    f"{ha1}:{nonce}:{nc}:{cnonce}:auth:{ha2}".encode()).hexdigest()
                fields += ["qop=auth", f"nc={nc}", f'cnonce="{cnonce}"']
            else:
                response = hashlib.md5(f"{ha1}:{nonce}:{ha2}".encode()).hexdigest()  # noqa: S324
            fields.append(f'response="{response}"')
            if "opaque" in params:
                fields.append(f'opaque="{params["opaque"]}"')
            return "Digest " + ", ".join(fields)
    if any(scheme == "basic" for scheme, _ in parsed):
        import base64

        return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
    return None


def request_lines(method: str, uri: str, cseq: int, auth: str | None, headers: tuple[str, ...] = ()) -> list[str]:
    lines = [f"{method} {uri} RTSP/1.0", f"CSeq: {cseq}", f"User-Agent: {USER_AGENT}", *headers]
    if auth:
        lines.append(f"Authorization: {auth}")
    return lines


def request(sock: socket.socket, method: str, uri: str, cseq: int, auth: str | None,
            deadline: wire.Deadline, headers: tuple[str, ...] = ("Accept: application/sdp",)) -> wire.Response:
    return wire.exchange(sock, request_lines(method, uri, cseq, auth, headers), deadline)


def describe(sock: socket.socket, bare: str, user: str | None, password: str | None,
             deadline: wire.Deadline) -> tuple[wire.Response, bool]:
    """DESCRIBE `bare` (a URL without credentials); on a 401, once more with credentials if we have them
    and speak the camera's scheme. Returns the last reply and whether an authenticated retry was sent."""
    resp = request(sock, "DESCRIBE", bare, 1, None, deadline)
    if resp.status != 401 or user is None:
        return resp, False
    auth = authorization(resp.headers.get("www-authenticate", []), "DESCRIBE", bare, user, password or "")
    if auth is None:
        return resp, False
    return request(sock, "DESCRIBE", bare, 2, auth, deadline), True


def options(sock: socket.socket, bare: str, deadline: wire.Deadline) -> wire.Response:
    """OPTIONS: does something answer RTSP at all (prepares no media, logs nobody in)."""
    return request(sock, "OPTIONS", bare, 1, None, deadline)


def interleaved_channel(transport: str) -> int | None:
    """The first channel of `interleaved=a-b` in a (lower-case) Transport header; None without one."""
    for part in transport.split(";"):
        name, _, value = part.strip().partition("=")
        if name == "interleaved":
            first = value.split("-")[0].strip()
            return int(first) if first.isascii() and first.isdigit() and int(first) < 256 else None
    return None


def session_header(header: str) -> tuple[str, float]:
    """`12345678;timeout=60` -> ("12345678", 60.0); the timeout defaults to 60 s."""
    sid, _, rest = header.partition(";")
    timeout = float(DEFAULT_SESSION_TIMEOUT_SEC)
    for part in rest.split(";"):
        name, _, value = part.strip().partition("=")
        if name.lower() == "timeout" and value.strip().isascii() and value.strip().isdigit():
            timeout = float(min(int(value.strip()), 3600))
    return sid.strip(), timeout
