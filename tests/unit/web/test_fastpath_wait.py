"""fastpath.FastSnapshots when the slot's frame is too old to serve: it waits for the next frame itself
when the full route would wait without a long-poll slot, and leaves everything else to Bottle. And
answer_now, asked on Waitress's I/O thread: yes only for an answer already encoded, never a wait or
an encode there.

Pure logic with a stand-in camera (a slot frame of a chosen age, a next frame handed over by the
wait): which of the two answers is a routing decision, and the real service cannot be made to hold
a stale frame on cue. The answers themselves are checked against the real service in
tests/integration/web/test_fastpath.py."""

from __future__ import annotations

import threading
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


def _fast(cam: _Camera, fallbacks: list[int] | None = None, encodes: list[int] | None = None) -> FastSnapshots:
    def fallback(environ, start_response):
        if fallbacks is not None:
            fallbacks.append(1)
        start_response("503 Service Unavailable", [])
        return [b""]

    def encode(image, q, w=0, h=0, **_):
        if encodes is not None:
            encodes.append(int(image[0, 0, 0]))
        return b"\xff\xd8jpeg%d" % image[0, 0, 0]

    return FastSnapshots(fallback, lambda _id: cam, encode, Trust(), "", False, None, long_poll_timeout=10.0)


def _environ(host: str = "127.0.0.1") -> dict:
    return {"REQUEST_METHOD": "GET", "PATH_INFO": "/snapshot/cam", "HTTP_HOST": host}


def _answer(fast: FastSnapshots, environ: dict) -> tuple[str, list[tuple[str, str]], bytes]:
    answered: list = []
    body = b"".join(fast(environ, lambda status, headers: answered.extend([status, headers])))
    return answered[0], answered[1], body


def _call(cam: _Camera) -> tuple[str, list[tuple[str, str]], bytes, int]:
    fallbacks: list[int] = []
    return (*_answer(_fast(cam, fallbacks), _environ()), len(fallbacks))


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


def test_answer_now_says_yes_only_to_an_answer_already_encoded_and_gives_that_one() -> None:
    cam, encodes, fallbacks = _Camera(_frame(1, 0.01), _frame(2, 0.0)), [], []
    fast = _fast(cam, fallbacks, encodes)
    assert not fast.answer_now(_environ())  # frame 1 is not encoded yet: that is a worker's job
    assert encodes == []
    first = _answer(fast, _environ())  # a worker encodes it
    prepared = _environ()
    assert fast.answer_now(prepared)
    assert _answer(fast, prepared) == first and encodes == [1] and fallbacks == []
    cam.slot_frame = _frame(3, 0.0)  # a newer frame: not at hand until encoded
    assert not fast.answer_now(_environ()) and encodes == [1]


def test_answer_now_never_waits_and_keeps_every_refusal() -> None:
    cam = _Camera(_frame(1, 0.01), _frame(2, 0.0))
    fast = _fast(cam)
    _answer(fast, _environ())
    assert not fast.answer_now(_environ("evil.example"))  # the Host rule (421 through Bottle)
    assert not fast.answer_now({**_environ(), "QUERY_STRING": "width=10"})
    assert not fast.answer_now({**_environ(), "REQUEST_METHOD": "HEAD"})
    assert not fast.answer_now({**_environ(), "HTTP_IF_NONE_MATCH": "x"})
    cam.slot_frame = _frame(1, 0.5)  # too old: the full path would wait for the next frame
    assert not fast.answer_now(_environ()) and cam.waits == []


def test_answer_now_gives_the_previous_answer_while_a_worker_encodes_the_new_frame() -> None:
    cam, started, release = _Camera(_frame(1, 0.01), _frame(2, 0.0)), threading.Event(), threading.Event()

    def slow_encode(image, q, w=0, h=0, **_):
        if image[0, 0, 0] == 3:
            started.set()
            release.wait(10)
        return b"\xff\xd8jpeg%d" % image[0, 0, 0]

    fast = FastSnapshots(lambda e, s: [b""], lambda _id: cam, slow_encode, Trust(), "", False, None, 10.0)
    first = _answer(fast, _environ())
    cam.slot_frame = _frame(3, 0.0)
    assert not fast.answer_now(_environ())  # nobody encodes frame 3 yet: a worker must
    worker = threading.Thread(target=_answer, args=(fast, _environ()))
    worker.start()
    try:
        assert started.wait(10)
        prepared = _environ()
        assert fast.answer_now(prepared)
        assert _answer(fast, prepared) == first  # frame 1's answer, still fresh
    finally:
        release.set()
        worker.join(10)
