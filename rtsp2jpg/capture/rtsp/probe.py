"""`probe()`: one DESCRIBE (with Basic or Digest auth, client.py) to learn the stream's codec.

Two reasons to ask before opening a pipeline: the codec picks the depayloader/parser/decoder
(trying H.264 chains on an H.265 camera wastes an open timeout each), and a camera that refuses
the credentials can be reported as "authentication failed (401)" rather than a vague open error.
Runs in the camera thread, never in an HTTP request. rtsps:// is not probed (the pipeline's own
TLS settings decide there); the result is then "unknown" and candidates are tried in order.
"""

from __future__ import annotations

import socket
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

from rtsp2jpg.capture.rtsp import wire as rtspio
from rtsp2jpg.capture.rtsp.client import describe
from rtsp2jpg.capture.rtsp.sdp import video_track
from rtsp2jpg.urls import host_of, split_credentials


@dataclass(frozen=True)
class ProbeResult:
    """`codec` is h264/h265 or None when unknown; `error` is set only for definite failures
    (unreachable, refused credentials, no such stream), and never contains the password."""

    codec: str | None = None
    status: int | None = None
    error: str = ""


def codec_from_sdp(sdp: str) -> str | None:
    """The codec of the first video media (`m=video ...` then `a=rtpmap:<pt> H264/90000`)."""
    track = video_track(sdp)
    return track.codec if track is not None and track.codec else None


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
            resp, _answered = describe(sock, bare, user, password, deadline)
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
