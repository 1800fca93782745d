"""Camera: one RTSP stream, one thread, one FrameSlot, one status.

The thread never sleeps on the stream: it grabs every frame as it arrives (keeping the decoder and
socket drained, which is what keeps snapshots fresh) and converts a frame only when a reader wants
one, at most once per `read_throttle_sec`. Failures reconnect with exponential backoff and jitter.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

from rtsp2jpg.capture import reconnect
from rtsp2jpg.capture.frames import EncodeBudget, Frame, FrameSlot, looks_blank
from rtsp2jpg.capture.opening import Capture, SourceTrials
from rtsp2jpg.capture.sources import SourceSpec
from rtsp2jpg.capture.status import Stats, Status, StatusChange, status_view
from rtsp2jpg.capture.streams import streams_view
from rtsp2jpg.capture.view import Picture
from rtsp2jpg.config import CaptureConfig
from rtsp2jpg.urls import redact

log = logging.getLogger("rtsp2jpg.worker")


def _name_os_thread(name: str) -> None:
    """Give the OS thread the Python name (`top -H`, /proc/<pid>/task/*/comm; 15 bytes on Linux)."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(15, name.encode()[:15], 0, 0, 0)  # PR_SET_NAME
    except (OSError, AttributeError):  # pragma: no cover - not Linux
        pass


class Camera(SourceTrials):
    """Owns its thread, stop event, capture and FrameSlot; `stop()` is idempotent."""

    def __init__(self, camera_id: str, name: str, url: str, cfg: CaptureConfig, sources: Sequence[SourceSpec], *,
                 open_source: Callable[[SourceSpec], Capture], on_status: Callable[[StatusChange], None],
                 source: str = "api", prefer: str = "default", clock: Callable[[], float] = time.monotonic,
                 wall: Callable[[], float] = time.time, probe: Callable[..., Any] | None = None,
                 diagnose: Callable[..., Any] | None = None, admit: Callable[[str], None] | None = None,
                 encode_budget: EncodeBudget | None = None, picture: Picture | None = None,
                 port_probe: Callable[[str], reconnect.Probe | None] | None = None) -> None:
        self.id = camera_id
        self.name = name or camera_id
        self.url = url
        self.source = source  # "config" or "api": where the camera was declared
        self.prefer = prefer
        self.cfg = cfg
        # The Service's budget (JPEG caches bounded across cameras); the slot applies the picture settings.
        self.slot = FrameSlot(encode_budget, picture)
        self.stats = Stats()
        self.status = Status.INACTIVE
        self.since = wall()
        self.error = ""
        self._sources = list(sources)
        self._winner: SourceSpec | None = None  # the source that last delivered frames: tried first on reconnect
        self._open_source = open_source
        self._probe = probe
        self._on_status = on_status
        self._clock, self._wall = clock, wall
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.disabled = False  # stopped on purpose (disable()): not a dead thread for the supervisor
        self._status_lock = threading.Lock()
        self._last_retrieve = -1e9
        self._failures = 0
        self._diagnose = diagnose  # (url, timeout, method, cancelled=) -> rtsp.Diagnosis | None
        self._auth_failures = 0  # consecutive "wrong password" answers: backoff stretched, FFmpeg skipped
        # (url) -> None, or UrlError saying why this URL may not be opened (capture.allow_networks).
        # Asked before every connection: a name may resolve elsewhere tomorrow.
        self._admit = admit
        self._port_probe = port_probe  # (url) -> a TCP probe of the camera's port (reconnect.port_probe)
        # The camera's sub stream (capture/streams.py), a Camera of its own with its own thread and
        # slot: it feeds continuous readers while this one, the main stream, decodes on demand.
        self.sub: Camera | None = None

    @property
    def feed(self) -> Camera:
        """What continuous readers (MJPEG, MQTT snapshots, the health check) read: the sub stream while
        it delivers, else this one."""
        sub = self.sub
        return sub if sub is not None and sub.status in (Status.ACTIVE, Status.DEGRADED) else self

    def _streams(self) -> list[Camera]:
        return [self] if self.sub is None else [self, self.sub]

    # -- lifecycle -------------------------------------------------------------------------------

    def start(self) -> None:
        if self.sub is not None:
            self.sub.start()
        if self._thread is not None:
            return
        self._set_status(Status.CONNECTING)
        self._thread = threading.Thread(target=self._run, name=f"camera-{self.id}", daemon=True)
        self._thread.start()

    def request_stop(self) -> None:
        for cam in self._streams():
            cam._stop.set()
            cam.slot.want()  # wake nothing in particular, but keep the intent visible

    def join(self, timeout: float) -> bool:
        """Wait for the thread(s); False (and a warning) if one is still blocked after `timeout`."""
        deadline = time.monotonic() + timeout
        stopped = True
        for cam in self._streams():
            thread = cam._thread
            if thread is None:
                continue
            thread.join(max(0.0, deadline - time.monotonic()))
            if thread.is_alive():
                log.warning("%s: capture thread still blocked after %.1fs; leaving it behind", cam.id, timeout)
                stopped = False
        return stopped

    def stop(self, timeout: float | None = None) -> bool:
        self.request_stop()
        return self.join(self.cfg.stop_timeout_sec if timeout is None else timeout)

    @property
    def alive(self) -> bool:
        return all(c._thread is not None and c._thread.is_alive() for c in self._streams())

    def disable(self) -> bool:
        """Stop capturing until `restart()` (an operator's command; not kept across a service restart).
        False if the thread is still blocked in a call at the stop deadline."""
        self.disabled = True
        return self.stop()

    def restart(self) -> bool:
        """A fresh thread and RTSP session (also how a disabled camera is enabled); False, and nothing
        started, while the old thread is still blocked in a call."""
        if any(c._thread is not None for c in self._streams()) and not self.stop():
            return False
        for cam in self._streams():
            cam._stop, cam._thread, cam.disabled = threading.Event(), None, False
        self.start()
        return True

    # -- status ----------------------------------------------------------------------------------

    def _set_status(self, status: Status, error: str = "", expect: tuple[Status, ...] = ()) -> None:
        with self._status_lock:
            if (status == self.status and error == self.error) or (expect and self.status not in expect):
                return
            previous, self.status, self.error = self.status, status, redact(error)
            if status != previous:
                self.since = self._wall()
            change = StatusChange(self.id, status, previous, self.since, self.error)
        if status != previous:
            level = logging.WARNING if status == Status.ERROR else logging.INFO
            log.log(level, "%s: %s -> %s%s", self.id, previous.value, status.value,
                    f" ({change.error})" if change.error else "")
        try:
            self._on_status(change)
        except Exception:  # a listener's bug must not kill the capture thread
            log.exception("%s: status listener failed", self.id)

    def mark_health(self, problem: str | None) -> None:
        """From the health monitor: active <-> degraded (with the problem); never while (re)connecting."""
        if problem:
            self._set_status(Status.DEGRADED, problem, expect=(Status.ACTIVE, Status.DEGRADED))
        else:
            self._set_status(Status.ACTIVE, expect=(Status.DEGRADED,))

    # -- the thread ------------------------------------------------------------------------------

    def _run(self) -> None:
        _name_os_thread(f"camera-{self.id}")
        try:
            while not self._stop.is_set():
                streamed = self._session()
                if self._stop.is_set():
                    break
                if streamed >= reconnect.HEALTHY_SEC:  # a healthy camera dropped: try again soon
                    self._failures, delay = 0, reconnect.quick_retry()
                else:
                    delay = self._backoff()
                log.info("%s: reconnecting in %.1fs", self.id, delay)
                if reconnect.wait_for_camera(self._stop, delay, self._reachable()) == "back":
                    self._failures = 0  # it came back: whatever fails next starts the backoff over
        except Exception as e:  # the only catch-all: log, mark the camera, and let stop() find it ended
            log.exception("%s: capture loop crashed", self.id)
            self._set_status(Status.ERROR, f"internal error: {type(e).__name__}")
            return
        self._set_status(Status.INACTIVE)

    def _backoff(self) -> float:
        self._failures += 1
        return reconnect.backoff(self.cfg, self._failures, self._auth_failures)

    def _reachable(self) -> reconnect.Probe | None:
        """A probe of the camera's port for the backoff wait; none where the URL may not be opened."""
        if self._port_probe is None or not self._admitted():
            return None
        return self._port_probe(self.url)

    def _session(self) -> float:
        """One connection: open, then grab until the stream fails, stalls or we are stopped; the
        seconds it streamed (0 when it did not open)."""
        if self.status != Status.ERROR:
            self._set_status(Status.CONNECTING, self.error)  # keep saying why we are reconnecting
        self.stats.reconnects += 1
        capture = self._open()
        if capture is None:
            return 0.0
        self.stats.backend, self.stats.adaptive = capture.spec.label, bool(capture.spec.receive)
        opened_at = last_frame = self._clock()
        reason = ""
        try:
            self._on_frame(capture, first=True)
            self._set_status(Status.ACTIVE)
            window_start, window_frames = self._clock(), 0
            poll = capture.spec.poll_sec
            while not self._stop.is_set():
                if poll:
                    self._pause(poll)
                if not capture.grab():
                    reason = "stream ended or stalled (no frame within the read timeout)"
                    break
                now = last_frame = self._on_frame(capture)
                window_frames += 1
                if now - window_start >= 1.0:
                    # Asked each time: adaptive decoding learns it from the first units' timestamps.
                    self.stats.fps = (capture.nominal_fps() if poll else 0.0) or round(
                        window_frames / (now - window_start), 2)
                    window_start, window_frames = now, 0
                if self._failures and now - opened_at > self.cfg.stall_timeout_sec:
                    self._failures = 0  # stable again: the next failure starts from the base delay
        finally:
            capture.release()
        if not self._stop.is_set():
            self.stats.fps = 0.0
            self._set_status(Status.CONNECTING, reason)
        return last_frame - opened_at  # up to its last frame: a stall's read timeout is not streaming

    def _pause(self, poll: float) -> None:
        """Between grabs of a source that keeps only its newest frame itself (a GStreamer appsink with
        drop=true max-buffers=1), wait until a reader wants a frame and the throttle allows one, at
        most `poll` s so liveness is still checked. Grabbing every frame there buys no freshness and
        costs a thread hand-off per frame (measured: 1.15x vs 1.09x the decode floor at 720p25)."""
        if not self.slot.wanted.is_set():
            self.slot.wanted.wait(poll)  # request_stop() sets it too
            return
        due = self._last_retrieve + self.cfg.read_throttle_sec - self._clock()
        if due > 0:
            self._stop.wait(min(poll, due))

    def _on_frame(self, capture: Capture, first: bool = False) -> float:
        """Count a grabbed frame; convert it only when a reader wants it and the throttle allows."""
        now = self._clock()
        stats = self.stats
        stats.frames += 1
        stats.last_seen = self._wall()
        if (first or self.slot.wanted.is_set()) and now - self._last_retrieve >= self.cfg.read_throttle_sec:
            glance, self.slot.glance = self.slot.glance, False
            self.slot.wanted.clear()
            image = capture.retrieve(glance=True) if glance else capture.retrieve()
            if image is None or looks_blank(image):
                stats.decode_errors += 1
                self.slot.want()  # try again on the next frame
            else:
                self._last_retrieve = now
                # A glance may get the group's keyframe, older than the frame just grabbed.
                frame = Frame(stats.frames, image, stats.last_seen - capture.behind_sec, self.slot.budget)
                stats.width, stats.height = frame.width, frame.height
                self.slot.put(frame)
        return now

    # -- readers ---------------------------------------------------------------------------------

    def snapshot(self, max_age: float | None, wait: float) -> Frame | None:
        """The newest frame, waiting up to `wait` for a new one if the slot is older than `max_age`."""
        frame = self.slot.latest()
        self.slot.want()  # keep the slot rolling while readers keep asking
        if frame is not None and (max_age is None or frame.age() <= max_age):
            return frame
        if self.status not in (Status.ACTIVE, Status.DEGRADED):
            return frame
        return self.slot.wait_newer(frame.seq if frame else 0, wait)

    def wait_after(self, seq: int, timeout: float) -> Frame | None:
        """Long-poll: the first frame with a sequence number above `seq`, or None at the deadline."""
        frame = self.slot.wait_newer(seq, timeout)
        return frame if frame is not None and frame.seq > seq else None

    def describe(self) -> dict[str, Any]:
        """Status as /status shows it (both streams, if two); never the URL's password (status.status_view)."""
        return {**status_view(self), **streams_view(self)}
