"""Prometheus metrics for `GET /metrics`, written in the text exposition format (version 0.0.4).

Hand-written rather than prometheus_client: the camera counters already live on each Camera
(`Stats`), so the page is rendered from them at scrape time (no second copy to keep in step, and
removed cameras vanish by themselves); the few request counters are owned by one `Metrics` object
instead of prometheus_client's process-global registry; and edge devices need one package fewer.
The format is checked by `promtool check metrics` in the tests. Names follow CONVENTIONS.md 4.
"""

from __future__ import annotations

import bisect
import os
import resource
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any

from rtsp2jpg import __version__

if TYPE_CHECKING:  # annotations only: tests render fakes with the same attributes
    from rtsp2jpg.service import Service
    from rtsp2jpg.web.mjpeg import ViewerStats

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
# Snapshot latency buckets (seconds): a cached JPEG is ~1 ms, an encode ~5-20 ms, a wait for a
# fresher frame up to a few frame intervals, a long-poll up to http.long_poll_timeout_sec.
BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
OTHER = "_other"  # camera label for requests naming no known camera: ids in URLs are user input


def escape(value: str) -> str:
    """A label value as the text format wants it: backslash, double quote and newline escaped."""
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def labels(**pairs: str) -> str:
    if not pairs:
        return ""
    return "{" + ",".join(f'{k}="{escape(str(v))}"' for k, v in pairs.items()) + "}"


def number(value: float) -> str:
    if value == float("inf"):
        return "+Inf"
    if isinstance(value, int) or float(value).is_integer():
        return str(int(value))
    return repr(float(value))


class Histogram:
    """Cumulative-bucket histogram of one label set."""

    __slots__ = ("counts", "total", "count")

    def __init__(self) -> None:
        self.counts = [0] * len(BUCKETS)
        self.total = 0.0
        self.count = 0

    def observe(self, value: float) -> None:
        i = bisect.bisect_left(BUCKETS, value)
        if i < len(BUCKETS):
            self.counts[i] += 1
        self.total += value
        self.count += 1


class Metrics:
    """Request-side counters (snapshots, bytes served); camera-side values are read at render time."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._lock = threading.Lock()
        self._requests: dict[tuple[str, str], int] = {}
        self._latency: dict[str, Histogram] = {}
        self._bytes: dict[str, int] = {}
        self._clock = clock

    def observe_snapshot(self, camera: str, code: int, seconds: float) -> None:
        with self._lock:
            key = (camera, str(code))
            self._requests[key] = self._requests.get(key, 0) + 1
            self._latency.setdefault(camera, Histogram()).observe(seconds)

    def add_bytes(self, route: str, n: int) -> None:
        with self._lock:
            self._bytes[route] = self._bytes.get(route, 0) + n

    def forget(self, keep: Iterable[str]) -> None:
        """Drop request series of cameras that no longer exist, so id churn cannot grow memory."""
        keep = set(keep) | {OTHER}
        with self._lock:
            self._requests = {k: v for k, v in self._requests.items() if k[0] in keep}
            self._latency = {k: v for k, v in self._latency.items() if k in keep}

    def render(self, service: Service, streams: Mapping[str, int] | None = None,
               stream_stats: ViewerStats | None = None) -> str:
        """The whole exposition page for `service` (a Service, or anything with the same readers)."""
        cams = sorted(service.cameras(), key=lambda c: c.id)
        ids = [c.id for c in cams]
        self.forget(ids)
        out = Page()
        caps = service.backend.capabilities
        out.family("rtsp2jpg_build_info", "gauge", "Version of rtsp2jpg and of the OpenCV it uses.")
        out.sample("rtsp2jpg_build_info", 1, version=__version__, opencv_version=caps.cv2_version,
                   videoio_backend=",".join(k for k, v in sorted(caps.backends.items()) if v))
        out.family("rtsp2jpg_start_time_seconds", "gauge", "When the service started (epoch seconds).")
        out.sample("rtsp2jpg_start_time_seconds", service.started_at)

        per_camera: list[tuple[str, str, str, Callable[[Any], float]]] = [
            ("rtsp2jpg_camera_up", "gauge", "1 while the camera delivers frames (status active or degraded).",
             lambda c: 1 if c.status.value in ("active", "degraded") else 0),
            ("rtsp2jpg_camera_degraded", "gauge", "1 while frames arrive but the picture is useless (uniform, "
             "frozen, sudden scene change; the reason is /status error).",
             lambda c: 1 if c.status.value == "degraded" else 0),
            ("rtsp2jpg_frames_decoded_total", "counter", "Frames read from the stream (every frame is drained).",
             lambda c: c.stats.frames),
            ("rtsp2jpg_decode_errors_total", "counter", "Frames that failed to convert after a successful grab.",
             lambda c: c.stats.decode_errors),
            ("rtsp2jpg_stream_reconnects_total", "counter", "Stream re-opens after the first connection.",
             lambda c: max(0, c.stats.reconnects - 1)),
            ("rtsp2jpg_last_frame_timestamp_seconds", "gauge",
             "When the last frame arrived (epoch seconds; 0 = never). Age: time() - this.",
             lambda c: c.stats.last_seen),
            ("rtsp2jpg_camera_fps", "gauge", "Frames per second the stream delivers, over the last second.",
             lambda c: c.stats.fps),
        ]
        for name, kind, help_text, read in per_camera:
            out.family(name, kind, help_text)
            for cam in cams:
                out.sample(name, read(cam), camera=cam.id)
        out.family("rtsp2jpg_camera_status", "gauge", "1 for the camera's current status, 0 for the others.")
        for cam in cams:
            for status in ("connecting", "active", "degraded", "error", "inactive"):
                out.sample("rtsp2jpg_camera_status", 1 if cam.status.value == status else 0,
                           camera=cam.id, status=status)

        with self._lock:
            requests = dict(self._requests)
            latency = {k: (list(h.counts), h.total, h.count) for k, h in self._latency.items()}
            sent = dict(self._bytes)
        for cam_id in ids:  # pre-initialise so rate() works from the first request on
            requests.setdefault((cam_id, "200"), 0)
            latency.setdefault(cam_id, ([0] * len(BUCKETS), 0.0, 0))
        out.family("rtsp2jpg_snapshot_requests_total", "counter", "GET /snapshot requests by camera and HTTP code.")
        for (cam_id, code), n in sorted(requests.items()):
            out.sample("rtsp2jpg_snapshot_requests_total", n, camera=cam_id, code=code)
        out.family("rtsp2jpg_snapshot_request_duration_seconds", "histogram",
                   "Time to answer GET /snapshot, including any wait for a fresher frame.")
        for cam_id, (counts, total, count) in sorted(latency.items()):
            running = 0
            for bound, n in zip(BUCKETS, counts, strict=True):
                running += n
                out.sample("rtsp2jpg_snapshot_request_duration_seconds_bucket", running, camera=cam_id,
                           le=number(bound))
            out.sample("rtsp2jpg_snapshot_request_duration_seconds_bucket", count, camera=cam_id, le="+Inf")
            out.sample("rtsp2jpg_snapshot_request_duration_seconds_sum", total, camera=cam_id)
            out.sample("rtsp2jpg_snapshot_request_duration_seconds_count", count, camera=cam_id)
        out.family("rtsp2jpg_http_response_bytes_total", "counter", "Response body bytes sent, by route.")
        for route, n in sorted(sent.items()):
            out.sample("rtsp2jpg_http_response_bytes_total", n, route=route)

        out.family("rtsp2jpg_stream_viewers", "gauge", "MJPEG viewers connected now.")
        for cam in cams:
            out.sample("rtsp2jpg_stream_viewers", (streams or {}).get(cam.id, 0), camera=cam.id)
        if stream_stats is not None:
            out.family("rtsp2jpg_stream_frames_sent_total", "counter", "MJPEG parts sent to viewers.")
            out.sample("rtsp2jpg_stream_frames_sent_total", stream_stats.parts_sent)
            out.family("rtsp2jpg_stream_frames_skipped_total", "counter",
                       "MJPEG frames skipped because a viewer had not read the previous ones.")
            out.sample("rtsp2jpg_stream_frames_skipped_total", stream_stats.frames_skipped)
            out.family("rtsp2jpg_stream_viewers_dropped_total", "counter",
                       "MJPEG viewers dropped for not reading within http.stream_stall_timeout_sec.")
            out.sample("rtsp2jpg_stream_viewers_dropped_total", stream_stats.dropped_slow)

        connected, published = mqtt_state(service)
        out.family("rtsp2jpg_mqtt_connected", "gauge", "1 while the MQTT session is up (0 also when disabled).")
        out.sample("rtsp2jpg_mqtt_connected", 1 if connected else 0)
        out.family("rtsp2jpg_mqtt_messages_published_total", "counter", "MQTT messages published, by kind.")
        for kind in sorted(set(published) | {"status", "snapshot", "discovery"}):
            out.sample("rtsp2jpg_mqtt_messages_published_total", published.get(kind, 0), kind=kind)

        process(out)
        return out.text()


def mqtt_state(service: Service) -> tuple[bool, dict[str, int]]:
    """MQTT figures from the service's publisher (`Service.publisher`, None while MQTT is off):
    whether it is connected, and its count of published messages per kind."""
    pub = service.publisher
    if pub is None:
        return False, {}
    return bool(pub.connected), {str(k): int(v) for k, v in pub.published.items()}


def process(out: Page) -> None:
    """The standard process_* metrics Prometheus' own client exports, read from /proc where there is one."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    out.family("process_cpu_seconds_total", "counter", "User and system CPU time spent, in seconds.")
    out.sample("process_cpu_seconds_total", usage.ru_utime + usage.ru_stime)
    try:
        with open("/proc/self/statm") as fh:
            rss_pages = int(fh.read().split()[1])
        out.family("process_resident_memory_bytes", "gauge", "Resident memory size in bytes.")
        out.sample("process_resident_memory_bytes", rss_pages * os.sysconf("SC_PAGE_SIZE"))
        out.family("process_open_fds", "gauge", "Number of open file descriptors.")
        out.sample("process_open_fds", len(os.listdir("/proc/self/fd")))
    except (OSError, ValueError, IndexError):
        pass


class Page:
    """Builds the exposition text: one HELP/TYPE block per family, samples after it."""

    def __init__(self) -> None:
        self._lines: list[str] = []

    def family(self, name: str, kind: str, help_text: str) -> None:
        self._lines.append(f"# HELP {name} {help_text.replace(chr(92), chr(92) * 2).replace(chr(10), ' ')}")
        self._lines.append(f"# TYPE {name} {kind}")

    def sample(self, name: str, value: float, **pairs: str) -> None:
        self._lines.append(f"{name}{labels(**pairs)} {number(value)}")

    def text(self) -> str:
        return "\n".join(self._lines) + "\n"
