"""The HTTP API's routes: /health, /register, /unregister and DELETE /cameras, /cameras, /status, /snapshot.

app.py builds the Bottle app (errors, host check, same-origin JSON, API key) and hands the guards here.
"""

from __future__ import annotations

import functools
import json
import logging
import threading
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from email.utils import formatdate
from typing import Any

import bottle

from rtsp2jpg.capture import streams
from rtsp2jpg.capture.camera import Camera
from rtsp2jpg.capture.sources import PREFERENCES
from rtsp2jpg.capture.status import list_view
from rtsp2jpg.capture.streams import urls_view
from rtsp2jpg.capture.view import PICTURE_KEYS, View, parse_crop, parse_rotate, parse_settings
from rtsp2jpg.registry import RegistryError
from rtsp2jpg.service import ConflictError, Service
from rtsp2jpg.urls import NotAllowedError, UrlError, canonical, validate_rtsp_url
from rtsp2jpg.web import formats, links
from rtsp2jpg.web.formats import CONTENT_TYPES, EXTENSIONS, NotAcceptable, negotiate
from rtsp2jpg.web.limits import MAX_DIMENSION, flag, long_poll_budget, number, parsed

log = logging.getLogger(__name__)

UNCOUNTED_WAIT_SEC = 0.25  # a snapshot may wait this long for a fresher frame without a long-poll slot
_fail = bottle.HTTPError


@dataclass(frozen=True)
class Guards:
    """What every route calls first (from app.py): the API-key/loopback check, the read check, the lookup."""

    authorize: Callable[[bool], None]
    protect_reads: Callable[..., None]  # (camera_id, kind): a signed link to that resource passes too
    camera_or_404: Callable[[str], Camera]
    read_json: Callable[[], dict[str, Any]]
    signing_key: bytes | None = None  # of signed links (links.link_key); None: no secret is set


def install(app: bottle.Bottle, service: Service, guards: Guards) -> None:
    http = service.config.http
    authorize, protect_reads, camera_or_404, read_json = (guards.authorize, guards.protect_reads,
                                                          guards.camera_or_404, guards.read_json)
    # Every request that may park a worker waiting for a frame takes a slot: ?after= long-polls and
    # plain snapshots waiting for a fresher frame (max_age, throttled cameras) alike. MJPEG viewers
    # come out of the same workers, so long-polls and streams never add up to every worker.
    long_polls = threading.BoundedSemaphore(long_poll_budget(http))

    @app.get("/health")
    def health() -> dict[str, Any]:
        return service.health()

    @app.post("/register")
    def register() -> dict[str, Any]:
        authorize(mutating=True)
        data = read_json()
        url, sub_url = requested_urls(data)
        name, prefer = data.get("name", ""), data.get("prefer")
        # Control characters, line separators and lone surrogates: header/log injection or a 500 in SQLite.
        if not isinstance(name, str) or len(name) > 200 or any(
                unicodedata.category(c) in ("Cc", "Cs", "Zl", "Zp") for c in name):
            raise _fail(400, "name must be a string of at most 200 printable characters")
        try:  # privacy masks, rotate, crop, timestamp: validated here, so a bad polygon is a 400
            picture = parse_settings(data) if any(k in data for k in PICTURE_KEYS) else None
        except ValueError as e:
            raise _fail(400, str(e)) from None
        if prefer is None or prefer == "":
            prefer = "default"
        if not isinstance(prefer, str) or prefer not in PREFERENCES:  # `[] or "default"` used to pass
            raise _fail(400, f"prefer must be one of {', '.join(PREFERENCES)}")
        try:
            cam, _created = service.register(url, name, prefer, picture, sub_url)
        except NotAllowedError as e:
            raise _fail(403, f"{'streams' if sub_url else 'rtsp_url'} {e}") from None
        except ConflictError as e:  # capacity, or the URL's camera has other picture settings
            raise _fail(409, str(e)) from None
        except UrlError as e:
            raise _fail(400, f"{'streams' if sub_url else 'rtsp_url'} {e}") from None
        except RegistryError as e:
            log.error("register failed: %s", e)
            raise _fail(503, "camera registry is not writable; see the service log", Retry_After="30") from None
        return {"token": cam.id, "id": cam.id, "backend": cam.stats.backend or cam.prefer,
                "status": cam.status.value}

    def unregister(camera_id: str) -> dict[str, Any]:
        authorize(mutating=True)
        try:
            removed = service.unregister(camera_id)
        except ConflictError as e:
            raise _fail(409, str(e)) from None
        except RegistryError as e:
            log.error("unregister failed: %s", e)
            raise _fail(503, "camera registry is not writable; see the service log", Retry_After="30") from None
        return {"ok": True} if removed else {"ok": True, "message": "already removed"}

    app.post("/unregister/<camera_id>", callback=unregister)
    app.delete("/cameras/<camera_id>", callback=unregister)

    @app.get("/cameras")
    def cameras() -> str:
        if http.api_key:
            authorize(mutating=False)
        bottle.response.content_type = "application/json"
        return json.dumps([{**list_view(c), **urls_view(c)} for c in service.cameras()])

    @app.post("/cameras/<camera_id>/links")
    def make_links(camera_id: str) -> dict[str, Any]:
        """Signed links to this camera's snapshot and stream, valid ttl_sec (API key required)."""
        authorize(mutating=True)
        if guards.signing_key is None:
            raise _fail(409, "signed links need http.api_key (or http.link_secret); without a key snapshots "
                             "are open anyway")
        ttl = read_json().get("ttl_sec", 3600)
        if isinstance(ttl, bool) or not isinstance(ttl, int | float) or not 1 <= ttl <= http.link_max_ttl_sec:
            raise _fail(400, f"ttl_sec must be a number of seconds from 1 to {http.link_max_ttl_sec:g} "
                             "(http.link_max_ttl_sec)")
        cam = camera_or_404(camera_id)
        url, exp = links.make(guards.signing_key, "snapshot", cam.id, ttl)
        stream_url, _ = links.make(guards.signing_key, "stream", cam.id, ttl)
        return {"url": url, "stream_url": stream_url, "expires": exp, "camera": cam.id}

    @app.get("/status/<camera_id>")
    def status(camera_id: str) -> dict[str, Any]:
        protect_reads()
        return camera_or_404(camera_id).describe()

    def snapshot(camera_id: str, ext: str = "") -> bytes:
        protect_reads(camera_id, "snapshot")
        camera = camera_or_404(camera_id)
        view = requested_view(camera, ext)
        try:  # the named stream, or the smallest that satisfies the size (capture/streams.py)
            cam = streams.pick(camera, parsed("stream", streams.parse_stream), view.width, view.height, view.crop,
                               view.rotate)
        except LookupError as e:
            raise _fail(400, f"stream: {e}") from None
        max_age = number("max_age", float, 0, 86400)
        after = number("after", int, 0, 2**62)
        if after is not None:
            if not long_polls.acquire(blocking=False):
                raise _fail(503, "too many long-polls in progress", Retry_After="1")
            try:
                frame = cam.wait_after(after, http.long_poll_timeout_sec)
            finally:
                long_polls.release()
            if frame is None:
                bottle.response.status = 304
                return b""
        else:
            wait = snapshot_wait(cam, http.long_poll_timeout_sec)
            freshness = max_age if max_age is not None else servable_age(cam)
            frame = cam.snapshot(freshness, 0.0)  # never blocks: the slot's frame, a newer one asked for
            if frame is None or frame.age() > freshness:
                # A long wait (max_age, a throttled or stalled camera) holds a worker: only within the
                # long-poll share. Twelve max_age waits on a throttled camera used to hold all 4
                # workers, and /health waited 9.3 s behind them. Without a slot, wait no longer than a
                # snapshot of a live stream may anyway: answering at once served a camera's frame
                # from 15 s before (no reader had asked since) when 64 clients started together.
                held = wait > UNCOUNTED_WAIT_SEC and long_polls.acquire(blocking=False)
                try:
                    frame = cam.snapshot(freshness, wait if held else min(wait, UNCOUNTED_WAIT_SEC))
                finally:
                    if held:
                        long_polls.release()
            if frame is None:
                raise _fail(503, "No frame available yet", Retry_After="1")
            if max_age is not None and frame.age() > max_age:
                raise _fail(503, f"no frame newer than {max_age:g}s (camera is {cam.status.value})",
                            Retry_After="1")
        stream = streams.name_of(camera, cam)
        etag = formats.etag(frame.seq, view.fmt, stream)
        headers = bottle.response
        if camera.sub is not None:
            headers.set_header("X-Stream", stream)
        headers.set_header("ETag", etag)
        headers.set_header("Last-Modified", formatdate(frame.captured_at, usegmt=True))
        headers.set_header("X-Frame-Timestamp", f"{frame.captured_at:.3f}")
        headers.set_header("X-Frame-Seq", str(frame.seq))
        headers.set_header("Cache-Control", "no-store")
        if not ext:
            headers.set_header("Vary", "Accept")
        if bottle.request.environ.get("HTTP_IF_NONE_MATCH") == etag:  # get_header: 500 on non-UTF-8
            bottle.response.status = 304
            return b""
        headers.content_type = CONTENT_TYPES[view.fmt]
        return frame.encode(service.backend.encode_jpeg, view)

    for ext in EXTENSIONS:  # before the bare route, which would take "cam.png" for an id
        app.get(f"/snapshot/<camera_id>.{ext}", callback=functools.partial(snapshot, ext=ext))
    app.get("/snapshot/<camera_id>", callback=snapshot)


def snapshot_wait(cam: Camera, long_poll_timeout: float) -> float:
    """How long a plain snapshot waits for a newer frame than the slot's too old one: a few frame
    intervals, plus what the throttle still withholds. Past UNCOUNTED_WAIT_SEC it needs a long-poll slot."""
    fps = cam.stats.fps or 10.0
    return min(long_poll_timeout, max(0.25, 3.0 / fps) + cam.cfg.read_throttle_sec)


def servable_age(cam: Camera) -> float:
    """How old the slot's frame may be to be served as is: about the newest the stream can give
    (1.5 frame intervals absorb arrival jitter), else the request waits for the next one. A 0.1 s
    floor here served a 10/s poller the frame converted after its previous poll, ~90 ms old."""
    return max(cam.cfg.read_throttle_sec, 1.5 / (cam.stats.fps or 10.0))


def requested_urls(data: dict[str, Any]) -> tuple[str, str]:
    """(url, sub_url) of a registration: `rtsp_url`, or `streams: {main, sub}` instead; 400 otherwise."""
    url, pair = data.get("rtsp_url"), data.get("streams")
    if pair is None:
        if not isinstance(url, str):
            raise _fail(400, "rtsp_url is required and must be a string (or streams: {main, sub})")
        return url, ""
    if url is not None:
        raise _fail(400, "give either rtsp_url or streams, not both")
    if not isinstance(pair, dict) or set(pair) != {"main", "sub"} or not all(isinstance(v, str) for v in pair.values()):
        raise _fail(400, "streams must be an object with two URL strings, main and sub")
    for key in ("main", "sub"):
        try:
            validate_rtsp_url(pair[key])
        except UrlError as e:
            raise _fail(400, f"streams.{key} {e}") from None
    if canonical(pair["main"]) == canonical(pair["sub"]):
        raise _fail(400, "streams.sub is the main stream's URL; a camera with one stream has rtsp_url")
    return pair["main"], pair["sub"]


def requested_view(cam: Camera, ext: str) -> View:
    """What this request asks of the frame (format, quality, size, rotation, crop, time stamp); 400/406 on bad input."""
    try:
        fmt = EXTENSIONS[ext] if ext else negotiate(bottle.request.environ.get("HTTP_ACCEPT"))
    except NotAcceptable as e:
        raise _fail(406, f"{e}; ask for /snapshot/<id>.jpg, .webp or .png") from None
    stamp = flag("timestamp")
    picture = cam.slot.picture
    return View(fmt=fmt, quality=number("q", int, 1, 100) or cam.cfg.jpeg_quality,
                width=number("width", int, 1, MAX_DIMENSION) or 0, height=number("height", int, 1, MAX_DIMENSION) or 0,
                rotate=parsed("rotate", parse_rotate) or 0, crop=parsed("crop", parse_crop) or (),
                stamp=stamp if stamp is not None else bool(picture is not None and picture.timestamp))
