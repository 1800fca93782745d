"""The hot request, `GET /snapshot/<id>` with no query, answered without Bottle when the answer is plain.

Pollers (Home Assistant, scripts, wrk) send exactly this request, thousands of times a second under
load; through Bottle's request and response objects, plugins and hooks it cost ~4x the CPU of a
bare Waitress handler returning the same bytes (bench/snapshot_http.py). Here it is a few dict
lookups plus headers built once per frame.

This path only ever *answers* where the full route would answer 200: Host allowed, the read check
passed (API key when snapshots are protected), a known camera, an acceptable format, a frame fresh
enough or a newer one within the wait that needs no long-poll slot (api.snapshot_wait), no
conditional request. Everything else (a query string, a 304/401/404/406/421/503, a wait that needs
a long-poll slot, HEAD, a bug) goes to Bottle unchanged, so every rule still has one
implementation: api.py's, app.py's checks.
"""

from __future__ import annotations

import hmac
import io
import logging
import time
import weakref
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from email.utils import formatdate
from typing import Any

from rtsp2jpg.capture.camera import Camera
from rtsp2jpg.capture.frames import Frame
from rtsp2jpg.capture.view import View
from rtsp2jpg.web.api import UNCOUNTED_WAIT_SEC, servable_age, snapshot_wait
from rtsp2jpg.web.formats import CONTENT_TYPES, NotAcceptable, etag, negotiate
from rtsp2jpg.web.metrics import Metrics
from rtsp2jpg.web.trust import Trust

log = logging.getLogger(__name__)

PREFIX = "/snapshot/"
ROUTE = "/snapshot/<camera_id>"  # the rule Bottle's metrics plugin counts the same bytes under
PREPARED = "rtsp2jpg.snapshot"  # environ key: the answer answer_now found, for __call__
MEMO_MAX = 256  # distinct Accept headers, and cameras' answers, remembered (bounded whatever clients send)

Wsgi = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


def presented_key(environ: dict[str, Any]) -> bytes | None:
    """The raw API key bytes of a request. From the WSGI environ (latin-1 text), not bottle's
    get_header, which re-decodes as UTF-8 and raised UnicodeDecodeError (a 500) on a non-UTF-8
    Authorization header."""
    auth = environ.get("HTTP_AUTHORIZATION", "")
    if auth[:7].lower() == "bearer ":
        return auth[7:].strip().encode("latin-1", "replace")
    key = environ.get("HTTP_X_API_KEY")
    return None if key is None else key.encode("latin-1", "replace")


def frame_headers(frame: Frame, fmt: str, length: int, has_sub: bool) -> list[tuple[str, str]]:
    """The headers of a 200 snapshot of the main stream's `frame`, as api.snapshot sets them."""
    return [("Content-Type", CONTENT_TYPES[fmt]), ("Content-Length", str(length)), ("Etag", etag(frame.seq, fmt)),
            ("Last-Modified", formatdate(frame.captured_at, usegmt=True)),
            ("X-Frame-Timestamp", f"{frame.captured_at:.3f}"), ("X-Frame-Seq", str(frame.seq)),
            ("Cache-Control", "no-store"), ("Vary", "Accept")] + ([("X-Stream", "main")] if has_sub else [])


@dataclass(frozen=True)
class Encoded:
    """A camera's newest plain answer."""

    camera: weakref.ref[Camera]  # a camera removed and added again under its id starts afresh
    frame: weakref.ref[Frame]
    view: View
    body: bytes
    headers: list[tuple[str, str]]
    captured_at: float


class FastSnapshots:
    """WSGI callable in front of the Bottle app's own `wsgi` (see make_app)."""

    def __init__(self, fallback: Wsgi, camera: Callable[[str], Camera | None], encode: Callable[..., bytes],
                 trust: Trust, api_key: str, protect_snapshots: bool, metrics: Metrics | None,
                 long_poll_timeout: float) -> None:
        self.fallback = fallback
        self._long_poll_timeout = long_poll_timeout
        self._camera = camera
        self._encode = encode
        self._trust = trust
        self._key = api_key.encode() if protect_snapshots and api_key else None
        self._locked = protect_snapshots and not api_key  # config refuses this; never serve it here
        self._metrics = metrics
        self._formats: dict[str | None, str | None] = {}  # Accept -> format; None = not acceptable
        # camera id -> its newest answer: headers are built once per frame, and the previous frame's
        # JPEG is at hand while a new one is encoded. One JPEG per camera; the frame itself only
        # weakly (a replaced frame, 2.7 MB at 720p, must not live on here).
        self._last: dict[str, Encoded] = {}

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        started = time.perf_counter()
        answer = environ.pop(PREPARED, None)  # answer_now found it on the I/O thread
        if answer is None and self._plain(environ):
            try:
                answer = self._answer(environ, environ["PATH_INFO"][len(PREFIX):])
            except Exception:  # never a 500 from here: the full route decides (and logs) what went wrong
                log.debug("snapshot fast path failed; answering through the app", exc_info=True)
        if answer is None:
            return self.fallback(environ, start_response)
        cam_id, body, headers = answer
        start_response("200 OK", headers)
        if self._metrics is not None:
            self._metrics.observe_snapshot(cam_id, 200, time.perf_counter() - started)
            self._metrics.add_bytes(ROUTE, len(body))
        # Waitress copies a returned bytes body into its output buffer (125 KB per answer);
        # a file wrapper over the same bytes is sent from them (16 connections: ~10-20%
        # more answers per second for the same CPU, bench/snapshot_http.py).
        wrapper = environ.get("wsgi.file_wrapper")
        return wrapper(io.BytesIO(body)) if wrapper is not None else [body]

    def answer_now(self, environ: dict[str, Any]) -> bool:
        """True when this request's whole answer is already at hand (a plain poll of a camera whose
        newest frame is encoded for it, or whose previous one is while a reader encodes the newest),
        kept in `environ` for __call__. Asked on Waitress's I/O thread (web/channel.py), so it never
        waits for a frame and never encodes one."""
        if not self._plain(environ):
            return False
        try:
            answer = self._answer(environ, environ["PATH_INFO"][len(PREFIX):], at_once=True)
        except Exception:
            log.debug("snapshot fast path failed; answering through the app", exc_info=True)
            return False
        if answer is None:
            return False
        environ[PREPARED] = answer
        return True

    @staticmethod
    def _plain(environ: dict[str, Any]) -> bool:
        """The one request this path answers: GET /snapshot/<id>, no query, not conditional."""
        return (environ.get("REQUEST_METHOD") == "GET" and environ.get("PATH_INFO", "").startswith(PREFIX)
                and not environ.get("QUERY_STRING") and "HTTP_IF_NONE_MATCH" not in environ)

    def _answer(self, environ: dict[str, Any], cam_id: str,
                at_once: bool = False) -> tuple[str, bytes, list[tuple[str, str]]] | None:
        """(camera id, body, headers) of the 200 the full route would give, else None. `at_once`:
        only an answer that needs neither a wait for a newer frame nor an encode."""
        if not cam_id or "/" in cam_id or "." in cam_id or not cam_id.isascii() or self._locked:
            return None
        if self._trust.hosts_allowed(environ) is not None:
            return None
        if self._key is not None:
            presented = presented_key(environ)
            if presented is None or not hmac.compare_digest(presented, self._key):
                return None
        cam = self._camera(cam_id)
        if cam is None:
            self._last.pop(cam_id, None)  # removed: its entry goes too
            return None
        fmt = self._format(environ.get("HTTP_ACCEPT"))
        if fmt is None:
            return None
        # api.snapshot's rule for a plain request (no size, so streams.pick answers with the main
        # stream, `cam` itself): an older frame means waiting for the next one. That wait is done
        # here when it needs no long-poll slot: under a flood the next frame is often a few ms late,
        # and the 10% of polls that fell through to Bottle for it took twice the GIL time of the rest.
        cfg = cam.cfg
        freshness = servable_age(cam)
        frame = cam.snapshot(freshness, 0.0)
        if frame is None:
            return None
        if frame.age() > freshness:
            if at_once:
                return None
            wait = snapshot_wait(cam, self._long_poll_timeout)
            if wait > UNCOUNTED_WAIT_SEC:
                return None
            frame = cam.snapshot(freshness, wait)
            if frame is None:
                return None
        picture = cam.slot.picture
        view = View(fmt=fmt, quality=cfg.jpeg_quality, stamp=bool(picture is not None and picture.timestamp))
        last = self._last.get(cam_id)
        if last is not None and last.camera() is not cam:
            last = None
        if last is not None and last.frame() is frame and last.view == view:
            return cam_id, last.body, last.headers
        # While another reader encodes this new frame: the previous answer, if still fresh.
        previous = last if last is not None and last.view == view and time.time() - last.captured_at <= freshness \
            else None
        if at_once:
            return (cam_id, previous.body, previous.headers) if previous is not None and frame.encoding() else None
        body = frame.try_encode(self._encode, view)
        if body is None:
            if previous is not None:
                return cam_id, previous.body, previous.headers
            body = frame.encode(self._encode, view)
        headers = frame_headers(frame, fmt, len(body), cam.sub is not None)
        if len(self._last) >= MEMO_MAX:  # ids of removed cameras are not asked again: forget those first
            self._last = {k: v for k, v in self._last.items() if v.camera() is not None and k != cam_id}
            if len(self._last) >= MEMO_MAX:
                self._last.clear()
        self._last[cam_id] = Encoded(weakref.ref(cam), weakref.ref(frame), view, body, headers, frame.captured_at)
        return cam_id, body, headers

    def _format(self, accept: str | None) -> str | None:
        try:
            return self._formats[accept]
        except KeyError:
            pass
        try:
            fmt: str | None = negotiate(accept)
        except NotAcceptable:
            fmt = None
        if len(self._formats) >= MEMO_MAX:
            self._formats.clear()
        self._formats[accept] = fmt
        return fmt
