"""HealthMonitor: thread `health` checks every camera's newest frame each health.interval_sec.

Readers drive conversion (a camera nobody reads converts no frames), so the monitor asks each slot
for a fresh frame and checks it on its next round: at most one conversion per camera per interval.
It never touches the capture thread; it reads the slot and sets active <-> degraded on the camera.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from rtsp2jpg.capture.camera import Camera
from rtsp2jpg.capture.health import HealthCheck
from rtsp2jpg.capture.status import Status
from rtsp2jpg.config import HealthConfig

log = logging.getLogger(__name__)


class HealthMonitor:
    """Owns its thread and stop event; `stop()` is idempotent. `check_all()` runs one round (tests)."""

    def __init__(self, cameras: Callable[[], list[Camera]], cfg: HealthConfig,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._cameras, self.cfg, self._clock = cameras, cfg, clock
        self._checks: dict[str, tuple[HealthCheck, int]] = {}  # camera id -> (its check, last frame seq)
        self.problems: dict[str, str] = {}  # camera id -> the current problem (for /metrics)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self.cfg.enabled and self._thread is None:
            self._thread = threading.Thread(target=self._run, name="health", daemon=True)
            self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive():
                log.warning("health monitor still running after %.1fs", timeout)

    def _run(self) -> None:
        while not self._stop.wait(self.cfg.interval_sec):
            try:
                self.check_all()
            except Exception:  # a bug here must not end the checks of every camera for good
                log.exception("health check failed")

    def check_all(self) -> None:
        cams = self._cameras()
        ids = {c.id for c in cams}
        for gone in set(self._checks) - ids:  # bounded by the cameras that exist
            self._checks.pop(gone, None)
            self.problems.pop(gone, None)
        for cam in cams:
            self.check(cam)

    def check(self, cam: Camera) -> None:
        check, seen = self._checks.get(cam.id) or (HealthCheck(self.cfg), -1)
        if cam.status not in (Status.ACTIVE, Status.DEGRADED):
            check.reset()  # a new session starts afresh
            self._checks[cam.id] = (check, -1)
            self.problems.pop(cam.id, None)
            return
        slot = cam.feed.slot  # the sub stream, if any: a small picture, decoded anyway
        frame = slot.latest()
        slot.want(glance=True)  # a fresh frame for the next round, without keeping the decoder busy
        if frame is None or frame.seq == seen:
            self._checks[cam.id] = (check, seen)
            return
        self._checks[cam.id] = (check, frame.seq)
        problem = check.evaluate(frame.image, self._clock())
        if problem:
            self.problems[cam.id] = problem
        else:
            self.problems.pop(cam.id, None)
        cam.mark_health(problem)
