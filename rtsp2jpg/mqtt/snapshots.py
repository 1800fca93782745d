"""Snapshotter: one thread publishes every camera's periodic and requested MQTT snapshots.

It reads each camera's FrameSlot (the frame the capture thread already decoded) and encodes it
through the frame's shared JPEG cache, so a snapshot never costs a second decode, and an HTTP
client asking for the same (quality, size) gets the same bytes for free.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

log = logging.getLogger(__name__)

ARM_AHEAD_SEC = 0.3  # ask the camera thread for a fresh frame this long before a snapshot is due
FRESH_SEC = 0.5  # a slot frame older than this at due time is refreshed (waiting at most WAIT_SEC)
WAIT_SEC = 0.5
REQUEST_WAIT_SEC = 1.0
IDLE_SEC = 1.0


class Snapshotter:
    """Owns the snapshot thread; `publish(camera_id, jpeg)` hands bytes to the MQTT publisher."""

    def __init__(self, cameras: Callable[[], list[Any]], interval_for: Callable[[str], float],
                 encode: Callable[..., bytes], quality: int, width: int,
                 publish: Callable[[str, bytes], bool], clock: Callable[[], float] = time.monotonic) -> None:
        self._cameras, self._interval_for = cameras, interval_for
        self._encode, self._quality, self._width = encode, quality, width
        self._publish, self._clock = publish, clock
        self._due: dict[str, float] = {}
        self._armed: set[str] = set()
        self._last_seq: dict[str, int] = {}
        self._requested: set[str] = set()
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.published = 0  # counters for /health and tests; written by the thread only
        self.last_size = 0

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="mqtt-snapshots", daemon=True)
            self._thread.start()

    def stop(self, timeout: float) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(max(0.0, timeout))
            if self._thread.is_alive():
                log.warning("snapshot thread still busy after %.1fs; leaving it behind", timeout)

    def request(self, camera_id: str) -> None:
        """On-demand snapshot (called on paho's thread): record it and wake ours; no work here."""
        with self._lock:
            self._requested.add(camera_id)
        self._wake.set()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                delay = self._tick()
            except Exception:  # one bad frame or camera must not end snapshots for all of them
                log.exception("snapshot tick failed")
                delay = 1.0
            self._wake.wait(delay)
            self._wake.clear()

    def _tick(self) -> float:
        """Serve requests, then periodic snapshots that are due; returns seconds until the next one."""
        with self._lock:
            requested, self._requested = self._requested, set()
        cameras = {cam.id: cam for cam in self._cameras()}
        for camera_id in requested:
            cam = cameras.get(camera_id)
            if cam is not None:
                self._send(cam, cam.feed.snapshot(FRESH_SEC, REQUEST_WAIT_SEC), force=True)
        now = self._clock()
        next_in = IDLE_SEC  # also how soon a newly registered camera gets its first snapshot
        for camera_id in list(self._due):
            if camera_id not in cameras:
                self._forget(camera_id)
        for cam in cameras.values():
            interval = self._interval_for(cam.id)
            if interval <= 0:
                self._forget(cam.id)
                continue
            due = self._due.setdefault(cam.id, now)
            if now >= due:
                self._send(cam, cam.feed.snapshot(FRESH_SEC, WAIT_SEC))
                self._armed.discard(cam.id)
                now = self._clock()
                due = due + interval if due + interval > now else now + interval
                self._due[cam.id] = due
            elif now >= due - ARM_AHEAD_SEC and cam.id not in self._armed:
                cam.feed.slot.want()  # the capture thread converts its next frame, ready when we are due
                self._armed.add(cam.id)
            wake_at = due - ARM_AHEAD_SEC if cam.id not in self._armed else due
            next_in = min(next_in, max(0.0, wake_at - now))
        return next_in

    def _forget(self, camera_id: str) -> None:
        self._due.pop(camera_id, None)
        self._armed.discard(camera_id)
        self._last_seq.pop(camera_id, None)

    def _send(self, cam: Any, frame: Any, force: bool = False) -> None:
        """Publish the frame unless it is the one already sent (a camera that is down repeats itself)."""
        if frame is None or (not force and self._last_seq.get(cam.id) == frame.seq):
            return
        jpeg = frame.jpeg(self._encode, self._quality, self._width, 0)
        if self._publish(cam.id, jpeg):
            self._last_seq[cam.id] = frame.seq
            self.published += 1
            self.last_size = len(jpeg)
