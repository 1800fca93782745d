"""Signed, expiring links: `/snapshot/<id>?exp=...&sig=...` opens that one camera's snapshots (or its
MJPEG stream) without the API key until `exp`, for notifications and embeds.

The signature is HMAC-SHA256 over (resource path, camera id, expiry), keyed by `http.link_secret`,
or else by a key derived from `http.api_key`: rotating either revokes every link. A link names a
resource, never a format or size, so `/snapshot/<id>.webp?width=320&exp=..&sig=..` uses the same
link. No cv2, no bottle: pure, shared by the web routes and `rtsp2jpg link`.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import time
from urllib.parse import quote, urlencode

KINDS = ("snapshot", "stream")
MAX_SIG = 64  # characters of `sig` looked at: a signature is 43


class LinkError(ValueError):
    """A link that does not open anything: `status` is 401 (expired) or 403 (tampered, malformed)."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status = status


def link_key(link_secret: str, api_key: str) -> bytes | None:
    """The signing key, None when neither secret is set (then there is nothing to sign with)."""
    if link_secret:
        return hashlib.sha256(b"rtsp2jpg link secret\0" + link_secret.encode()).digest()
    if api_key:
        return hmac.new(api_key.encode(), b"rtsp2jpg signed links v1", hashlib.sha256).digest()
    return None


def _path(kind: str, camera_id: str) -> str:
    return f"/{kind}/{quote(camera_id, safe='')}"


def signature(key: bytes, kind: str, camera_id: str, exp: int) -> str:
    message = f"{_path(kind, camera_id)}\n{camera_id}\n{exp}".encode()
    return base64.urlsafe_b64encode(hmac.new(key, message, hashlib.sha256).digest()).rstrip(b"=").decode()


def make(key: bytes, kind: str, camera_id: str, ttl_sec: float, now: float | None = None) -> tuple[str, int]:
    """(relative URL, expiry epoch seconds) of a link to `kind` of `camera_id`, valid `ttl_sec`."""
    exp = int((time.time() if now is None else now) + ttl_sec)
    return f"{_path(kind, camera_id)}?{urlencode({'exp': exp, 'sig': signature(key, kind, camera_id, exp)})}", exp


def verify(key: bytes | None, kind: str, camera_id: str, exp_raw: str | None, sig_raw: str | None,
           max_ttl_sec: float, now: float | None = None) -> None:
    """Accept the link's `exp` and `sig` for `kind` of `camera_id`, or raise LinkError saying why not."""
    if key is None:
        raise LinkError(403, "signed links are off: set http.api_key or http.link_secret")
    if not exp_raw or not sig_raw or not re.fullmatch(r"[1-9]\d{0,11}", exp_raw):  # one spelling per expiry
        raise LinkError(403, "a signed link needs both exp (epoch seconds) and sig")
    exp = int(exp_raw)
    expected = signature(key, kind, camera_id, exp)
    if not hmac.compare_digest(sig_raw[:MAX_SIG].encode("latin-1", "replace"), expected.encode()):
        raise LinkError(403, "invalid link signature (not made by this service, for another camera or "
                             "resource, altered, or revoked by a new key)")
    now = time.time() if now is None else now
    if exp < now:
        raise LinkError(401, f"link expired {int(now - exp)} s ago; ask for a new one")
    if exp > now + max_ttl_sec + 1:
        raise LinkError(403, "link lives longer than http.link_max_ttl_sec allows now; ask for a new one")


def parse_ttl(text: str) -> float:
    """`90`, `90s`, `30m`, `1h`, `7d` -> seconds; ValueError otherwise."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*", text)
    if not m:
        raise ValueError(f"{text!r} is not a duration like 90, 30m, 1h or 7d")
    return float(m[1]) * {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}[m[2]]
