"""MJPEG viewers (`GET /stream/<id>`): multipart/x-mixed-replace parts read from a camera's FrameSlot.

A viewer never drives the camera: it takes the newest frame from the slot at its own pace (frames
in between are skipped), and its JPEG comes from `Frame.jpeg()`, so viewers asking for the same
quality and width share one encode per frame. Each viewer holds one Waitress worker thread for as
long as it watches, which is why viewers are capped per camera and in all (`StreamLimits`).

A client that stops reading fills Waitress's output buffer; the viewer then skips frames instead of
queueing them, and is dropped after `stall_timeout` without progress. The buffer's size is read
from the Waitress channel when the server is Waitress (elsewhere frames are only paced).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from rtsp2jpg.capture.camera import Camera

BOUNDARY = "rtsp2jpg-frame"
CONTENT_TYPE = f"multipart/x-mixed-replace; boundary={BOUNDARY}"
HEARTBEAT_SEC = 5.0  # resend the last frame this often when the camera sends none (detects gone viewers)


@dataclass
class ViewerStats:
    """Counters of all viewers since start, for /metrics."""

    parts_sent: int = 0
    frames_skipped: int = 0
    dropped_slow: int = 0


class StreamLimits:
    """Counts viewers per camera and in all; `acquire()` says no once either cap is reached."""

    def __init__(self, per_camera: int, total: int) -> None:
        self.per_camera = per_camera
        self.total = total
        self._lock = threading.Lock()
        self._viewers: dict[str, int] = {}
        self.stats = ViewerStats()

    def acquire(self, camera_id: str) -> str | None:
        """None if a viewer may start (the caller must `release()` it), else the reason it may not."""
        with self._lock:
            if self._viewers.get(camera_id, 0) >= self.per_camera:
                return f"too many MJPEG viewers for this camera (http.stream_max_clients={self.per_camera})"
            if sum(self._viewers.values()) >= self.total:
                return f"too many MJPEG viewers in all (http.stream_max_total={self.total})"
            self._viewers[camera_id] = self._viewers.get(camera_id, 0) + 1
            return None

    def release(self, camera_id: str) -> None:
        with self._lock:
            left = self._viewers.get(camera_id, 0) - 1
            if left > 0:
                self._viewers[camera_id] = left
            else:
                self._viewers.pop(camera_id, None)

    def viewers(self) -> dict[str, int]:
        with self._lock:
            return dict(self._viewers)


def buffered_bytes(environ: dict[str, Any]) -> Callable[[], int]:
    """How many response bytes wait unsent for this client (Waitress only; 0 elsewhere)."""
    channel = getattr(environ.get("waitress.client_disconnected"), "__self__", None)
    if channel is None or not hasattr(channel, "total_outbufs_len"):
        return lambda: 0
    return lambda: int(getattr(channel, "total_outbufs_len", 0))


def server_stopping(environ: dict[str, Any]) -> Callable[[], bool]:
    """True once Waitress is shutting its workers down, so viewers end at once instead of holding
    shutdown for Waitress's 5 s grace period (Waitress only; always False elsewhere)."""
    channel = getattr(environ.get("waitress.client_disconnected"), "__self__", None)
    dispatcher = getattr(getattr(channel, "server", None), "task_dispatcher", None)
    if dispatcher is None or not hasattr(dispatcher, "stop_count"):
        return lambda: False
    return lambda: getattr(dispatcher, "stop_count", 0) > 0


def _pause(seconds: float, gone: Callable[[], bool]) -> None:
    """Sleep, but notice within half a second that the viewer should end."""
    end = time.monotonic() + seconds
    while not gone():
        left = end - time.monotonic()
        if left <= 0:
            return
        time.sleep(min(0.5, left))


def part(jpeg: bytes, captured_at: float, seq: int) -> bytes:
    head = (f"--{BOUNDARY}\r\nContent-Type: image/jpeg\r\nContent-Length: {len(jpeg)}\r\n"
            f"X-Frame-Timestamp: {captured_at:.3f}\r\nX-Frame-Seq: {seq}\r\n\r\n")
    return head.encode("ascii") + jpeg + b"\r\n"


def viewer(source: Callable[[], Camera], encode: Callable[..., bytes], *, quality: int, width: int, fps: float,
           stall_timeout: float, backlog: Callable[[], int], gone: Callable[[], bool],
           stats: ViewerStats, clock: Callable[[], float] = time.monotonic) -> Iterator[bytes]:
    """Yield one part per new frame, at most `fps` a second, until the camera goes or the client stalls.

    `source()` is the stream to read, asked again before every frame: a viewer of a camera's feed
    moves to the sub stream when it comes up (and back to the main one when it fails) instead of
    keeping, for as long as it watches, whichever stream delivered when it connected.
    `backlog()` is the number of bytes already queued for the client: while it exceeds about one
    part, new frames are skipped rather than queued. `gone()` says the camera was removed.
    """
    interval = 1.0 / fps
    cam = source()
    latest = cam.slot.latest()
    # An old frame in the slot goes out only if no newer one comes within the first wait (heartbeat).
    last_seq = latest.seq if latest is not None and latest.age() > 2 * interval else 0
    last_size = 0
    progress_at = clock()  # last time the client had taken what we gave it
    sent_at = -1e9
    while not gone():
        if (now_reading := source()) is not cam:  # each stream numbers its own frames: start afresh
            cam, last_seq = now_reading, 0
        frame = cam.slot.wait_newer(last_seq, min(1.0, max(interval, 0.05)))
        now = clock()
        fresh = frame is not None and frame.seq > last_seq
        if not fresh and (frame is None or now - sent_at < HEARTBEAT_SEC):
            continue
        if backlog() > max(2 * last_size, 65536):
            if now - progress_at > stall_timeout:
                stats.dropped_slow += 1
                return  # Waitress flushes what it holds, then closes the idle connection
            stats.frames_skipped += 1
            _pause(interval, gone)
            continue
        progress_at = now
        assert frame is not None
        jpeg = frame.jpeg(encode, quality, width, 0)
        last_seq, last_size, sent_at = frame.seq, len(jpeg), now
        stats.parts_sent += 1
        yield part(jpeg, frame.captured_at, frame.seq)
        _pause(interval - (clock() - now), gone)
