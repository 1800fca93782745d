"""A tiny RTSP client: one DESCRIBE (with Basic or Digest auth) to learn the stream's codec.

Two reasons to ask before opening a pipeline: the codec picks the depayloader/parser/decoder
(trying H.264 chains on an H.265 camera wastes an open timeout each), and a camera that refuses
the credentials can be reported as "authentication failed (401)" rather than a vague open error.
Runs in the camera thread, never in an HTTP request. rtsps:// is not probed (the pipeline's own
TLS settings decide there); the result is then "unknown" and candidates are tried in order.
"""

from __future__ import annotations

import hashlib
import os
import re
import socket
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

from rtsp2jpg.capture.rtsp import wire as rtspio
from rtsp2jpg.urls import host_of, split_credentials

USER_AGENT = "rtsp2jpg"
_ENCODINGS = {"H264": "h264", "H265": "h265", "HEVC": "h265"}
_AUTH_PARAM = re.compile(r'(\w+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,]+))')


@dataclass(frozen=True)
class ProbeResult:
    """`codec` is h264/h265 or None when unknown; `error` is set only for definite failures
    (unreachable, refused credentials, no such stream), and never contains the password."""

    codec: str | None = None
    status: int | None = None
    error: str = ""


def codec_from_sdp(sdp: str) -> str | None:
    """The codec of the first video media (`m=video ...` then `a=rtpmap:<pt> H264/90000`)."""
    in_video = False
    payloads: list[str] = []
    for raw in sdp.splitlines():
        line = raw.strip()
        if line.startswith("m="):
            if in_video:
                break  # only the first video media
            fields = line[2:].split()
            in_video = bool(fields) and fields[0] == "video"
            payloads = fields[3:]
        elif in_video and line.lower().startswith("a=rtpmap:"):
            pt, _, rest = line[9:].partition(" ")
            if payloads and pt not in payloads:
                continue
            encoding = rest.split("/")[0].strip().upper()
            if encoding in _ENCODINGS:
                return _ENCODINGS[encoding]
    return None


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


def _request(sock: socket.socket, method: str, uri: str, cseq: int, auth: str | None,
             deadline: rtspio.Deadline) -> rtspio.Response:
    lines = [f"{method} {uri} RTSP/1.0", f"CSeq: {cseq}", f"User-Agent: {USER_AGENT}", "Accept: application/sdp"]
    if auth:
        lines.append(f"Authorization: {auth}")
    return rtspio.exchange(sock, lines, deadline)


def probe(url: str, timeout: float = 5.0, cancelled: rtspio.Cancelled | None = None) -> ProbeResult:
    """DESCRIBE `url` (a validated rtsp:// URL) and return its codec or a definite error.

    `timeout` bounds the whole exchange (connect, DESCRIBE, the authenticated retry), not each
    read; `cancelled()` (e.g. the camera's stop event) ends it within rtspio.SLICE_SEC, as unknown.
    """
    parts = urlsplit(url)
    if parts.scheme.lower() != "rtsp":
        return ProbeResult()
    bare, user, password = split_credentials(url)
    user = unquote(user) if user else None
    password = unquote(password) if password is not None else None
    where = host_of(url)
    deadline = rtspio.Deadline(timeout, cancelled)
    try:
        with rtspio.connect(parts.hostname or "", parts.port or 554, deadline) as sock:
            resp = _request(sock, "DESCRIBE", bare, 1, None, deadline)
            if resp.status == 401 and user is not None:
                auth = authorization(resp.headers.get("www-authenticate", []), "DESCRIBE", bare,
                                     user, password or "")
                if auth:
                    resp = _request(sock, "DESCRIBE", bare, 2, auth, deadline)
    except rtspio.ExchangeCancelled:
        return ProbeResult()  # the camera is stopping: nobody will read a verdict
    except rtspio.DeadlineExceeded as e:
        if e.partial:
            return ProbeResult(error=f"{where} answers RTSP too slowly (no complete reply within {timeout:g}s)")
        return ProbeResult(error=f"no answer from {where} within {timeout:g}s")
    except TimeoutError:
        return ProbeResult(error=f"no answer from {where} within {timeout:g}s")
    except ConnectionRefusedError:
        return ProbeResult(error=f"connection to {where} refused")
    except socket.gaierror:
        return ProbeResult(error=f"cannot resolve the host of {where}")
    except (OSError, ValueError, UnicodeError):
        return ProbeResult()  # odd camera or network hiccup: let the pipelines try
    if resp.status == 401:
        why = "wrong user name or password" if user is not None else "the URL has no credentials"
        return ProbeResult(status=401, error=f"authentication failed (401): {why}")
    if resp.status in (403, 404):
        reason = "forbidden" if resp.status == 403 else "no such stream"
        return ProbeResult(status=resp.status, error=f"{reason} ({resp.status}) at {where}")
    if resp.status != 200:
        return ProbeResult(status=resp.status)
    return ProbeResult(codec=codec_from_sdp(resp.body.decode("utf-8", "replace")), status=200)
