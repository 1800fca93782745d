"""HTTP clients the benchmarks drive the service with: a paced poller and an `after=` long-poller.

Both keep one persistent connection and record when each response arrived; bodies are kept only
when asked (freshness decodes them after the run, so decoding never competes with the service).
"""

from __future__ import annotations

import http.client
import threading
import time
from dataclasses import dataclass


@dataclass
class Sample:
    sent: float  # epoch seconds
    received: float
    status: int
    seq: int
    frame_ts: float  # X-Frame-Timestamp: when the service grabbed the frame
    body: bytes


class _Loop(threading.Thread):
    def __init__(self, port: int, keep_bodies: bool) -> None:
        super().__init__(daemon=True, name=type(self).__name__)
        self.port = port
        self.keep_bodies = keep_bodies
        self.samples: list[Sample] = []
        self.errors = 0
        self.stop_event = threading.Event()
        self._conn: http.client.HTTPConnection | None = None

    def fetch(self, path: str, timeout: float = 15.0) -> Sample | None:
        sent = time.time()
        try:
            if self._conn is None:
                self._conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
            self._conn.request("GET", path)
            resp = self._conn.getresponse()
            body = resp.read()
        except (OSError, http.client.HTTPException):
            self.errors += 1
            if self._conn is not None:
                self._conn.close()
            self._conn = None
            return None
        sample = Sample(sent, time.time(), resp.status, int(resp.getheader("X-Frame-Seq") or 0),
                        float(resp.getheader("X-Frame-Timestamp") or 0), body if self.keep_bodies else b"")
        self.samples.append(sample)
        return sample

    def stop(self, timeout: float = 20.0) -> None:
        self.stop_event.set()
        self.join(timeout)
        if self._conn is not None:
            self._conn.close()


class Poller(_Loop):
    """GET `path` `rate` times a second on a fixed schedule (a slow response delays, never bunches)."""

    def __init__(self, port: int, path: str, rate: float, keep_bodies: bool = False) -> None:
        super().__init__(port, keep_bodies)
        self.path, self.rate = path, rate

    def run(self) -> None:
        period = 1.0 / self.rate
        due = time.monotonic()
        while not self.stop_event.is_set():
            self.fetch(self.path)
            due += period
            delay = due - time.monotonic()
            if delay < 0:
                due = time.monotonic()
            elif self.stop_event.wait(delay):
                break


class LongPoller(_Loop):
    """GET `path?after=<last seq>` in a loop: every frame the camera converts, as soon as it exists."""

    def __init__(self, port: int, path: str, keep_bodies: bool = False) -> None:
        super().__init__(port, keep_bodies)
        self.path = path

    def run(self) -> None:
        seq = 0
        while not self.stop_event.is_set():
            sample = self.fetch(f"{self.path}?after={seq}")
            if sample is None:
                if self.stop_event.wait(0.1):
                    break
            elif sample.status == 200:
                seq = sample.seq
