"""Operator routes on the HTTP app: dashboard (`/`, `/static/...`), MJPEG (`/stream/<id>`), `/metrics`,
`/cameras/<id>/history`, and the plugin that counts snapshot requests and bytes served.

Kept out of api.py so the API module stays about the API; app.py calls `install()` once.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import bottle

from rtsp2jpg.capture import streams
from rtsp2jpg.capture.camera import Camera
from rtsp2jpg.capture.status import StatusChange
from rtsp2jpg.web import mjpeg
from rtsp2jpg.web.dashboard import SECURITY_HEADERS, STATIC_DIR, StatusHistory
from rtsp2jpg.web.limits import MAX_DIMENSION, number, parsed, viewer_budget
from rtsp2jpg.web.metrics import CONTENT_TYPE, OTHER, Metrics


class ResponseMetrics:
    """Bottle plugin: snapshot requests by camera and code, their latency, and body bytes per route."""

    name = "rtsp2jpg-metrics"
    api = 2

    def __init__(self, metrics: Metrics, known: Callable[[str], bool]) -> None:
        self.metrics = metrics
        self.known = known

    def apply(self, callback: Callable[..., Any], route: bottle.Route) -> Callable[..., Any]:
        rule = route.rule
        is_snapshot = rule.startswith("/snapshot/")
        metrics = self.metrics

        def wrapper(*args: Any, **kwargs: Any) -> Any:
            start = time.perf_counter()
            code = 500
            try:
                out = callback(*args, **kwargs)
                code = bottle.response.status_code
            except bottle.HTTPResponse as e:
                code = e.status_code
                raise
            finally:
                if is_snapshot:
                    cam_id = kwargs.get("camera_id", "")
                    metrics.observe_snapshot(cam_id if self.known(cam_id) else OTHER, code,
                                             time.perf_counter() - start)
            return self._counted(rule, out)

        return wrapper

    def _counted(self, rule: str, out: Any) -> Any:
        if isinstance(out, dict):  # what Bottle's JSON plugin would do, so the size is known here
            out = json.dumps(out)
            bottle.response.content_type = "application/json"
        if isinstance(out, str):
            self.metrics.add_bytes(rule, len(out.encode()))
        elif isinstance(out, bytes | bytearray):
            self.metrics.add_bytes(rule, len(out))
        elif isinstance(out, bottle.HTTPResponse):  # static_file()
            self.metrics.add_bytes(rule, int(out.headers.get("Content-Length") or 0))
        elif isinstance(out, Iterator):
            return self._stream(rule, out)
        return out

    def _stream(self, rule: str, chunks: Iterator[bytes]) -> Iterable[bytes]:
        try:
            for chunk in chunks:
                self.metrics.add_bytes(rule, len(chunk))
                yield chunk
        finally:
            close = getattr(chunks, "close", None)
            if close:
                close()


def _static(path: str) -> Any:
    resp = bottle.static_file(path, root=str(STATIC_DIR))
    for key, value in SECURITY_HEADERS.items():
        resp.set_header(key, value)
    return resp


def install(app: bottle.Bottle, service: Any, *, protect_reads: Callable[..., None],
            camera_or_404: Callable[[str], Camera]) -> Metrics:
    """Add the operator routes and the metrics plugin to `app`; returns the Metrics it feeds."""
    http = service.config.http
    metrics = Metrics()
    history = StatusHistory()

    def remember(change: StatusChange) -> None:
        history(change)
        if change.status.value == "inactive" and service.camera(change.camera_id) is None:
            history.forget(change.camera_id)  # unregistered: its history goes with it

    service.add_listener(remember)
    limits = mjpeg.StreamLimits(http.stream_max_clients, viewer_budget(http))
    app.install(ResponseMetrics(metrics, lambda cid: service.camera(cid) is not None))

    @app.get("/")
    def index() -> Any:
        return _static("index.html")

    @app.get("/static/<path:path>")
    def static(path: str) -> Any:
        return _static(path)

    @app.get("/metrics")
    def prometheus() -> str:
        protect_reads()
        bottle.response.content_type = CONTENT_TYPE
        bottle.response.set_header("Cache-Control", "no-store")
        return metrics.render(service, limits.viewers(), limits.stats)

    @app.get("/cameras/<camera_id>/history")
    def camera_history(camera_id: str) -> str:
        protect_reads()
        camera_or_404(camera_id)
        bottle.response.content_type = "application/json"
        return json.dumps(history.of(camera_id))

    @app.get("/stream/<camera_id>")
    def stream(camera_id: str) -> Any:
        protect_reads(camera_id, "stream")
        cam = camera_or_404(camera_id)
        fps = min(number("fps", float, 0.1, 1000) or http.stream_max_fps, http.stream_max_fps)
        width = number("width", int, 1, MAX_DIMENSION) or 0
        quality = number("q", int, 1, 100) or cam.cfg.jpeg_quality
        name = parsed("stream", streams.parse_stream)
        try:  # a viewer reads continuously: the sub stream while it delivers, unless it names one
            named = streams.pick(cam, name) if name else None
        except LookupError as e:
            raise bottle.HTTPError(400, f"stream: {e}") from None
        source = (lambda: named) if named is not None else (lambda: cam.feed)
        refused = limits.acquire(camera_id)
        if refused:
            raise bottle.HTTPError(503, refused, Retry_After="5")
        stopping = mjpeg.server_stopping(bottle.request.environ)
        parts = mjpeg.viewer(source, service.backend.encode_jpeg, quality=quality, width=width, fps=fps,
                             stall_timeout=http.stream_stall_timeout_sec,
                             backlog=mjpeg.buffered_bytes(bottle.request.environ),
                             gone=lambda: service.camera(camera_id) is not cam or not cam.alive or stopping(),
                             stats=limits.stats)
        bottle.response.content_type = mjpeg.CONTENT_TYPE
        bottle.response.set_header("Cache-Control", "no-store")
        bottle.response.set_header("X-Accel-Buffering", "no")  # a proxy in front must not buffer a stream
        return _released(parts, lambda: limits.release(camera_id))

    return metrics


def _released(parts: Iterator[bytes], release: Callable[[], None]) -> Iterator[bytes]:
    """Pass `parts` through and free the viewer's place however the stream ends (client gone included)."""
    try:
        yield from parts
    finally:
        parts.close()  # type: ignore[attr-defined]
        release()
