"""Device stats: a retained `<base>/<device>/stats` message every `mqtt.stats_interval_sec`.

A fleet operator wants more than up/down: is the process eating the CPU, is the board hot or
throttling, which camera stopped delivering frames. One small retained message per interval
answers that (bounded: one entry per camera, the board's zones capped), and `rtsp2jpg fleet`
calls a device whose last stats are older than three intervals stale.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

from rtsp2jpg.process.board_health import board_health, process_usage

log = logging.getLogger(__name__)

POLL_SEC = 1.0  # how soon a (re)connect is noticed, so stats are back right after it


def camera_stats(cam: Any, now: float) -> dict[str, Any]:
    """One camera's entry: status, measured fps and the age of its newest frame (None before one)."""
    seen = cam.stats.last_seen
    return {"status": cam.status.value, "fps": cam.stats.fps,
            "frame_age_sec": round(max(0.0, now - seen), 3) if seen else None}


def stats_payload(*, now: float, started_at: float, interval: float, cpu_percent: float | None,
                  rss_bytes: int | None, board: dict[str, Any], cameras: Iterable[Any]) -> dict[str, Any]:
    """The stats message: no URL, no name, nothing a camera or a request wrote (ids are slugs/hex)."""
    return {"at": round(now, 3), "interval_sec": interval, "uptime_sec": round(max(0.0, now - started_at), 1),
            "cpu_percent": cpu_percent, "rss_bytes": rss_bytes, "board": board,
            "cameras": {cam.id: camera_stats(cam, now) for cam in cameras}}


class StatsTimer:
    """Owns the `mqtt-stats` thread: publishes at every interval and right after every (re)connect."""

    def __init__(self, interval: float, started_at: float, cameras: Callable[[], Iterable[Any]],
                 ready: Callable[[], bool], publish: Callable[[dict[str, Any]], bool],
                 health: Callable[[], dict[str, Any]] = board_health,
                 usage: Callable[[], tuple[float, int | None]] = process_usage,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.interval, self.started_at = interval, started_at
        self._cameras, self._ready, self._publish = cameras, ready, publish
        self._health, self._usage, self._clock = health, usage, clock
        self._last: tuple[float, float] | None = None  # (clock, cpu seconds) of the previous sample
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.published = 0

    def start(self) -> None:
        if self.interval > 0 and self._thread is None:
            self._thread = threading.Thread(target=self._run, name="mqtt-stats", daemon=True)
            self._thread.start()

    def stop(self, timeout: float) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(max(0.0, timeout))

    def sample(self) -> dict[str, Any]:
        """Measure now; CPU is the share of one core since the previous sample (None the first time)."""
        now_clock, (cpu, rss) = self._clock(), self._usage()
        percent = None
        if self._last is not None and now_clock > self._last[0]:
            percent = round(100.0 * (cpu - self._last[1]) / (now_clock - self._last[0]), 1)
        self._last = (now_clock, cpu)
        return stats_payload(now=time.time(), started_at=self.started_at, interval=self.interval,
                             cpu_percent=percent, rss_bytes=rss, board=self._health(), cameras=self._cameras())

    def _run(self) -> None:
        self.sample()  # the CPU baseline, so the first message already has a share
        was_ready, due = False, self._clock()
        while not self._stop.wait(POLL_SEC):
            ready = self._ready()
            if ready and (not was_ready or self._clock() >= due):
                try:
                    if self._publish(self.sample()):
                        self.published += 1
                        due = self._clock() + self.interval
                except Exception:  # a bug in one sample must not end the stats
                    log.exception("stats sample failed")
                    due = self._clock() + self.interval
            was_ready = ready
