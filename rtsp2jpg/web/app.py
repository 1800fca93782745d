"""HTTP API on Bottle: routes only translate HTTP to and from Service calls.

Compatible with the original rtsp2jpg (paths, fields, codes; errors as `{"detail": ...}`).
"""

from __future__ import annotations

import hmac
import json
import logging
import threading
import unicodedata
from email.utils import formatdate
from typing import Any

import bottle

from rtsp2jpg.capture.camera import Camera
from rtsp2jpg.capture.sources import PREFERENCES
from rtsp2jpg.registry import RegistryError
from rtsp2jpg.service import CapacityError, ConflictError, Service
from rtsp2jpg.urls import NotAllowedError, UrlError, redact
from rtsp2jpg.web import openapi
from rtsp2jpg.web import ops as ops_routes
from rtsp2jpg.web.trust import Trust, json_body_problem

log = logging.getLogger(__name__)

MAX_DIMENSION = 8192
UNCOUNTED_WAIT_SEC = 0.25  # a snapshot may wait this long for a fresher frame without a long-poll slot
NO_KEY_HINT = ("this endpoint only answers loopback clients while no API key is set; "
               "set http.api_key (or RTSP2JPG_HTTP_API_KEY) and send 'Authorization: Bearer <key>'")

FORWARDED_HINT = ("; this request came through a proxy (it has forwarding headers): list the proxy in "
                  "http.trusted_proxies so its X-Forwarded-For is believed")


def _fail(status: int, detail: str, **headers: str) -> bottle.HTTPError:
    return bottle.HTTPError(status, detail, **headers)


SAFE_METHODS = ("GET", "HEAD", "OPTIONS")


class SameOriginJson:
    """Bottle plugin on every route that changes something (POST/PUT/DELETE...): refuse cross-site
    requests (403) whatever their content type, then bodies that are not JSON (415).

    An HTML form (text/plain, form-encoded) or a no-cors fetch from any page in a browser on the
    device reaches us without a CORS preflight; with these two rules it changes nothing."""

    name = "rtsp2jpg-same-origin-json"
    api = 2

    def __init__(self, trust: Trust) -> None:
        self.trust = trust

    def apply(self, callback: Any, route: bottle.Route) -> Any:
        if route.method.upper() in SAFE_METHODS:
            return callback
        trust = self.trust

        def wrapper(*args: Any, **kwargs: Any) -> Any:
            env = bottle.request.environ
            why = trust.cross_site(env)
            if why:
                log.info("refused cross-site %s %r from %s: %s", bottle.request.method,
                         bottle.request.path, trust.client(env).address, why)
                raise _fail(403, f"cross-site request refused: {why}. Changes are accepted only from this "
                                 "service's own pages or from non-browser clients")
            problem = json_body_problem(env)
            if problem:
                raise _fail(415, problem)
            return callback(*args, **kwargs)

        return wrapper


def _presented_key(request: bottle.LocalRequest) -> bytes | None:
    """The raw key bytes. From the WSGI environ (latin-1 text), not bottle's get_header, which
    re-decodes as UTF-8 and raised UnicodeDecodeError (a 500) on a non-UTF-8 Authorization header."""
    env = request.environ
    auth = env.get("HTTP_AUTHORIZATION", "")
    if auth[:7].lower() == "bearer ":
        return auth[7:].strip().encode("latin-1", "replace")
    key = env.get("HTTP_X_API_KEY")
    return None if key is None else key.encode("latin-1", "replace")


def _number(name: str, kind: type, lo: float, hi: float) -> Any:
    raw = bottle.request.query.get(name)
    if raw is None or raw == "":
        return None
    try:
        value = kind(raw)
    except ValueError:
        raise _fail(400, f"{name} must be a {'whole number' if kind is int else 'number'}") from None
    if not (lo <= value <= hi):  # also rejects nan
        raise _fail(400, f"{name} must be between {lo:g} and {hi:g}")
    return value


def long_poll_slots(threads: int, max_long_polls: int, streams: int = 0) -> int:
    """Long-polls may hold at most this many Waitress workers; MJPEG viewers (`streams` of them at
    most) and a reserve of workers stay free for everything else.

    With 8 workers and max_long_polls 32, eight parked ?after= requests took every worker and a
    /health waited behind them for the whole long-poll timeout (times four batches).
    """
    reserve = 8 if threads >= 16 else threads // 2
    return max(1, min(max_long_polls, threads - reserve - streams))


def camera_json(cam: Camera) -> dict[str, Any]:
    return {"id": cam.id, "token": cam.id, "name": cam.name, "url": redact(cam.url), "source": cam.source,
            "status": cam.status.value, "last_seen": cam.stats.last_seen or None,
            "backend": cam.stats.backend or None, "fps": cam.stats.fps,
            "size": [cam.stats.width, cam.stats.height] if cam.stats.width else None}


def make_app(service: Service) -> bottle.Bottle:
    app = bottle.Bottle()
    http = service.config.http
    # The MJPEG viewer budget as ops_routes computes it: long-polls and streams must not add up to every worker.
    streams = (http.stream_max_total or max(1, http.threads // 2)) if http.stream_max_clients else 0
    # Every request that may park a worker waiting for a frame takes a slot: ?after= long-polls and
    # plain snapshots waiting for a fresher frame (max_age, throttled cameras) alike.
    long_polls = threading.BoundedSemaphore(long_poll_slots(http.threads, http.max_long_polls, streams))

    def json_error(err: bottle.HTTPError) -> str:
        bottle.response.content_type = "application/json"
        if err.status_code >= 500 and err.exception is not None:
            return json.dumps({"detail": "internal error"})
        return json.dumps({"detail": err.body if isinstance(err.body, str) else "error"})

    app.default_error_handler = json_error  # type: ignore[method-assign]

    def guard(callback: Any) -> Any:
        """Unexpected exceptions become a JSON 500 and one redacted log line, never a traceback page."""
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            try:
                return callback(*args, **kwargs)
            except bottle.HTTPResponse:
                raise
            except Exception as e:
                log.exception("%s %s failed: %s", bottle.request.method, bottle.request.path, redact(repr(e)))
                raise _fail(500, "internal error") from None
        return wrapper

    app.install(guard)
    trust = Trust((*http.allowed_hosts, http.host), http.trusted_proxies)  # a listen name is one clients use

    @app.hook("before_request")
    def check_host() -> None:
        """Before routing, so unknown paths too: a rebinding name (evil.example -> 127.0.0.1) gets
        nothing, not even a 404 that tells it the service is there."""
        bad = trust.hosts_allowed(bottle.request.environ)
        if bad is not None:
            raise _fail(421, f"host {bad[:100]!r} is not one this service answers to; add it to "
                             "http.allowed_hosts if clients reach the service under that name")

    app.install(SameOriginJson(trust))

    def authorize(mutating: bool) -> None:
        if http.api_key:
            presented = _presented_key(bottle.request)
            if presented is None or not hmac.compare_digest(presented, http.api_key.encode()):
                raise _fail(401, "missing or wrong API key", WWW_Authenticate="Bearer")
        elif mutating:
            # Not bottle's remote_addr (it believes any client's X-Forwarded-For): trust.client()
            # follows forwarding headers only from http.trusted_proxies, and with forwarding headers
            # from anyone else a loopback peer is a proxy we were not told about, so not loopback.
            client = trust.client(bottle.request.environ)
            if not client.loopback:
                log.info("refused %s %r from %s%s: no API key set", bottle.request.method, bottle.request.path,
                         client.address, " (forwarded by an untrusted proxy)" if client.forwarded else "")
                raise _fail(403, NO_KEY_HINT + (FORWARDED_HINT if client.forwarded else ""))

    def protect_reads() -> None:
        if http.protect_snapshots:
            authorize(mutating=False)

    def camera_or_404(camera_id: str) -> Camera:
        cam = service.camera(camera_id)
        if cam is None:
            raise _fail(404, "Camera not found")
        return cam

    def read_json() -> dict[str, Any]:
        length = bottle.request.content_length
        if length > http.max_body_bytes:
            raise _fail(413, f"request body larger than {http.max_body_bytes} bytes")
        body = bottle.request.body.read(http.max_body_bytes + 1)
        if len(body) > http.max_body_bytes:
            raise _fail(413, f"request body larger than {http.max_body_bytes} bytes")
        try:
            data = json.loads(body or b"null")
        except (ValueError, UnicodeDecodeError, RecursionError):  # deep nesting: RecursionError, not a 500
            raise _fail(400, "body must be JSON") from None
        if not isinstance(data, dict):
            raise _fail(400, 'body must be a JSON object like {"rtsp_url": "rtsp://..."}')
        return data

    @app.get("/health")
    def health() -> dict[str, Any]:
        return service.health()

    @app.post("/register")
    def register() -> dict[str, Any]:
        authorize(mutating=True)
        data = read_json()
        url, name, prefer = data.get("rtsp_url"), data.get("name", ""), data.get("prefer")
        if not isinstance(url, str):
            raise _fail(400, "rtsp_url is required and must be a string")
        # Control characters, line separators and lone surrogates: header/log injection or a 500 in SQLite.
        if not isinstance(name, str) or len(name) > 200 or any(
                unicodedata.category(c) in ("Cc", "Cs", "Zl", "Zp") for c in name):
            raise _fail(400, "name must be a string of at most 200 printable characters")
        if prefer is None or prefer == "":
            prefer = "default"
        if not isinstance(prefer, str) or prefer not in PREFERENCES:  # `[] or "default"` used to pass
            raise _fail(400, f"prefer must be one of {', '.join(PREFERENCES)}")
        try:
            cam, _created = service.register(url, name, prefer)
        except NotAllowedError as e:
            raise _fail(403, f"rtsp_url {e}") from None
        except CapacityError as e:
            raise _fail(409, str(e)) from None
        except UrlError as e:
            raise _fail(400, f"rtsp_url {e}") from None
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
        return json.dumps([camera_json(c) for c in service.cameras()])

    @app.get("/status/<camera_id>")
    def status(camera_id: str) -> dict[str, Any]:
        protect_reads()
        return camera_or_404(camera_id).describe()

    def snapshot(camera_id: str) -> bytes:
        protect_reads()
        cam = camera_or_404(camera_id)
        quality = _number("q", int, 1, 100) or cam.cfg.jpeg_quality
        width = _number("width", int, 1, MAX_DIMENSION) or 0
        height = _number("height", int, 1, MAX_DIMENSION) or 0
        max_age = _number("max_age", float, 0, 86400)
        after = _number("after", int, 0, 2**62)
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
            fps = cam.stats.fps or 10.0
            # Wait up to a few frame intervals (plus what the throttle still withholds) for a newer frame.
            wait = min(http.long_poll_timeout_sec, max(0.25, 3.0 / fps) + cam.cfg.read_throttle_sec)
            # The slot's frame is served as is only while it is about the newest the stream can give
            # (1.5 frame intervals absorb arrival jitter); otherwise wait for the next one. A 0.1 s
            # floor here served a 10/s poller the frame converted after its previous poll, ~90 ms old.
            freshness = max_age if max_age is not None else max(cam.cfg.read_throttle_sec, 1.5 / fps)
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
        etag = f'"{frame.seq}"'
        headers = bottle.response
        headers.set_header("ETag", etag)
        headers.set_header("Last-Modified", formatdate(frame.captured_at, usegmt=True))
        headers.set_header("X-Frame-Timestamp", f"{frame.captured_at:.3f}")
        headers.set_header("X-Frame-Seq", str(frame.seq))
        headers.set_header("Cache-Control", "no-store")
        if bottle.request.environ.get("HTTP_IF_NONE_MATCH") == etag:  # get_header: 500 on non-UTF-8
            bottle.response.status = 304
            return b""
        headers.content_type = "image/jpeg"
        return frame.jpeg(service.backend.encode_jpeg, quality, width, height)

    app.get("/snapshot/<camera_id>.jpg", callback=snapshot)
    app.get("/snapshot/<camera_id>", callback=snapshot)

    # Dashboard, MJPEG, /metrics and the plugin that counts snapshot requests (ops_routes.py).
    ops_routes.install(app, service, protect_reads=protect_reads, camera_or_404=camera_or_404)

    @app.get("/openapi.json")
    def openapi_json() -> dict[str, Any]:
        return openapi.document((r.method, r.rule) for r in app.routes)

    return app

