"""Why did a camera fail to open? One RTSP DESCRIBE of our own, because OpenCV only says "not opened".

FFmpeg prints the real reason ("401 Unauthorized") to stderr, where no code can attribute it to a
camera. Before each open the camera thread asks whether the camera answers RTSP at all (OPTIONS), and
after a failed open it asks `diagnose()` why, which speaks just enough RTSP
(DESCRIBE with Basic or Digest credentials) to tell refused / silent / wrong password / unknown path
apart, so `/status` says why and the backoff can be stretched for credential failures (cameras lock
an account after a few wrong passwords). rtsps:// is not diagnosed (no TLS here); None = no idea.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

from rtsp2jpg.capture.rtsp import wire as rtspio
from rtsp2jpg.capture.rtsp.client import describe, options
from rtsp2jpg.urls import split_credentials


@dataclass(frozen=True)
class Diagnosis:
    kind: str  # "auth", "not_found", "refused", "no_answer", "unreachable", "rtsp_error", "ok"
    message: str  # a sentence without credentials

    @property
    def is_auth(self) -> bool:
        return self.kind == "auth"


def diagnose(url: str, timeout: float = 5.0, method: str = "DESCRIBE",
             cancelled: rtspio.Cancelled | None = None) -> Diagnosis | None:
    """Connect, DESCRIBE (with credentials if the camera asks), and say in one sentence what happened.

    `method="OPTIONS"` only asks whether something answers RTSP at all: it prepares no media and
    logs nobody in, so it can run before every open (a DESCRIBE right before FFmpeg's own made the
    test server, and could make a weak camera, fail the connection that followed).
    `timeout` bounds the whole exchange (connect and every round trip), so a camera dripping a
    byte at a time cannot hold the camera thread; `cancelled()` true (the camera is stopping)
    ends it within rtspio.SLICE_SEC with None.
    """
    parts = urlsplit(url)
    if parts.scheme.lower() != "rtsp" or not parts.hostname:
        return None
    bare, user, password = split_credentials(url)
    host, port = parts.hostname, parts.port or 554
    deadline = rtspio.Deadline(timeout, cancelled)
    try:
        sock = rtspio.connect(host, port, deadline)
    except rtspio.ExchangeCancelled:
        return None
    except ConnectionRefusedError:
        return Diagnosis("refused", f"connection refused by {host}:{port}")
    except (OSError, UnicodeError):
        return Diagnosis("unreachable", f"cannot reach {host}:{port} (no route, DNS or connect timeout)")
    try:
        with sock:
            if method == "OPTIONS":
                options(sock, bare, deadline)
                return Diagnosis("ok", "the camera answers RTSP")
            resp, answered = describe(sock, bare, unquote(user) if user is not None else None,
                                      unquote(password or ""), deadline)
            code = resp.status
            if code == 401 and not answered:
                if user is None:
                    return Diagnosis("auth", "the camera requires a user name and password (401)")
                return Diagnosis("rtsp_error", "the camera asks for an unsupported authentication scheme")
            if answered and code in (401, 403):
                return Diagnosis("auth", f"the camera rejected the user name or password ({code})")
            if code == 403:
                return Diagnosis("auth", "the camera refused access (403)")
            if code == 404:
                return Diagnosis("not_found", "the camera has no stream at this path (404)")
            if code >= 300:
                return Diagnosis("rtsp_error", f"the camera answered DESCRIBE with RTSP status {code}")
            return Diagnosis("ok", "the camera answers RTSP")
    except rtspio.ExchangeCancelled:
        return None
    except rtspio.DeadlineExceeded as e:
        if e.partial:
            return Diagnosis("no_answer", f"{host}:{port} answers RTSP too slowly "
                                          f"(no complete reply within {timeout:g}s)")
        return Diagnosis("no_answer", f"{host}:{port} accepts connections but does not answer RTSP")
    except TimeoutError:
        return Diagnosis("no_answer", f"{host}:{port} accepts connections but does not answer RTSP")
    except (OSError, ValueError):
        return Diagnosis("rtsp_error", f"{host}:{port} does not speak RTSP")
