"""fastpath.FastSnapshots when the slot's frame is too old to serve: it waits for the next frame itself
when the full route would wait without a long-poll slot, and leaves everything else to Bottle.

Pure logic with a stand-in camera (a slot frame of a chosen age, a next frame handed over by the
wait): which of the two answers is a routing decision, and the real service cannot be made to hold
a stale frame on cue. The answers themselves are checked against the real service in
tests/integration/web/test_fastpath.py."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from types import SimpleNamespace

import numpy as np

from rtsp2jpg.capture.frames import Frame
from rtsp2jpg.web.api import UNCOUNTED_WAIT_SEC
from rtsp2jpg.web.fastpath import FastSnapshots
from rtsp2jpg.web.trust import Trust


@dataclass
class _Camera:
    """The parts of capture.Camera the fast path reads."""

    slot_frame: Frame | None
    next_frame: Frame | None
    fps: float = 25.0
    throttle: float = 0.0
    waits: list[float] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.cfg = SimpleNamespace(read_throttle_sec=self.throttle, jpeg_quality=80)
        self.stats = SimpleNamespace(fps=self.fps)
        self.slot = SimpleNamespace(picture=None)
        self.sub = None

    def snapshot(self, max_age: float | None, wait: float) -> Frame | None:
        frame = self.slot_frame
        if frame is not None and max_age is not None and frame.age() > max_age and wait > 0:
            self.waits.append(wait)
            return self.next_frame
        return frame


def _frame(seq: int, age: float) -> Frame:
    return Frame(seq, np.full((8, 8, 3), seq, np.uint8), time.time() - age)


def _call(cam: _Camera) -> tuple[str, list[tuple[str, str]], bytes, int]:
    fallbacks = []

    def fallback(environ, start_response):
        fallbacks.append(1)
        start_response("503 Service Unavailable", [])
        return [b""]

    fast = FastSnapshots(fallback, lambda _id: cam, lambda image, q, w=0, h=0, **_: b"\xff\xd8jpeg%d" % image[0, 0, 0],
                         Trust(), "", False, None, long_poll_timeout=10.0)
    answered: list = []
    body = b"".join(fast({"REQUEST_METHOD": "GET", "PATH_INFO": "/snapshot/cam", "HTTP_HOST": "127.0.0.1"},
                         lambda status, headers: answered.extend([status, headers])))
    return answered[0], answered[1], body, len(fallbacks)


def test_a_fresh_frame_is_served_without_waiting() -> None:
    cam = _Camera(_frame(1, 0.01), _frame(2, 0.0))
    status, headers, body, fallbacks = _call(cam)
    assert (status, fallbacks, cam.waits) == ("200 OK", 0, [])
    assert dict(headers)["X-Frame-Seq"] == "1" and body.startswith(b"\xff\xd8")


def test_a_stale_frame_is_waited_for_here_not_in_bottle() -> None:
    cam = _Camera(_frame(1, 0.5), _frame(2, 0.0))
    status, headers, _, fallbacks = _call(cam)
    assert (status, fallbacks) == ("200 OK", 0)
    assert dict(headers)["X-Frame-Seq"] == "2"  # the next frame, not the stale one
    assert cam.waits and 0 < cam.waits[0] <= UNCOUNTED_WAIT_SEC


def test_a_wait_that_needs_a_long_poll_slot_goes_to_bottle() -> None:
    """A throttled camera, or a slow stream (3 frame intervals > UNCOUNTED_WAIT_SEC): api.snapshot
    counts such waits against the long-poll budget, which only it holds."""
    for cam in (_Camera(_frame(1, 2.0), _frame(2, 0.0), throttle=1.0), _Camera(_frame(1, 1.0), _frame(2, 0.0), fps=5)):
        status, _, _, fallbacks = _call(cam)
        assert (status, fallbacks, cam.waits) == ("503 Service Unavailable", 1, [])


def test_no_frame_after_the_wait_goes_to_bottle() -> None:
    cam = _Camera(_frame(1, 0.5), None)
    status, _, _, fallbacks = _call(cam)
    assert (status, fallbacks) == ("503 Service Unavailable", 1)
