"""The camera thread's logic with a scripted capture (pure logic: the real stream is in test_service.py)."""

from __future__ import annotations

import threading
import time
from typing import Any

import numpy as np
import pytest

from rtsp2jpg.capture.camera import Camera, Status, StatusChange
from rtsp2jpg.capture.frames import Frame
from rtsp2jpg.capture.sources import SourceSpec
from rtsp2jpg.config import CaptureConfig
from tests.support.rtsp_server import wait_until


def Spec(label: str) -> SourceSpec:  # noqa: N802 - reads like the class it stands for
    return SourceSpec(label, "ffmpeg", "rtsp://h/x")


class ScriptedCapture:
    """grab() follows a script of True/False; `gate` lets a test release frames one at a time."""
    behind_sec = 0.0

    def __init__(self, spec: Spec, frames: int, gate: threading.Semaphore | None = None) -> None:
        self.spec = spec
        self.left = frames
        self.gate = gate
        self.retrieved = 0
        self.released = threading.Event()

    def grab(self) -> bool:
        if self.gate is not None and not self.gate.acquire(timeout=5):
            return False
        if self.left <= 0:
            return False
        self.left -= 1
        time.sleep(0.001)  # a frame interval, shortened
        return True

    def retrieve(self, glance: bool = False) -> Any:
        self.retrieved += 1
        return np.zeros((4, 6, 3), np.uint8)

    def nominal_fps(self) -> float:
        return 0.0

    def release(self) -> None:
        self.released.set()


def make_camera(opener: Any, **cfg: Any) -> tuple[Camera, list[StatusChange]]:
    changes: list[StatusChange] = []
    defaults = {"reconnect_delay_sec": 0.01, "reconnect_max_delay_sec": 0.05, "stop_timeout_sec": 2.0}
    camera = Camera("cam1", "", "rtsp://u:pw@h/x", CaptureConfig(**{**defaults, **cfg}), [Spec("a"), Spec("b")],
                    open_source=opener, on_status=changes.append)
    return camera, changes


def test_falls_back_to_next_source_and_reports_its_label() -> None:
    gate = threading.Semaphore(0)

    def opener(spec: Spec) -> ScriptedCapture:
        if spec.label == "a":
            raise RuntimeError("a: could not open rtsp://u:pw@h/x")
        return ScriptedCapture(spec, 1000, gate)

    cam, changes = make_camera(opener)
    cam.start()
    gate.release(3)
    assert wait_until(lambda: cam.status == Status.ACTIVE, 5)
    assert cam.describe()["backend"] == "b"
    assert cam.describe()["width"] == 6 and cam.describe()["height"] == 4
    cam.request_stop()
    gate.release(1)  # the thread notices the stop at its next frame
    assert cam.stop() is True
    assert [c.status for c in changes] == [Status.CONNECTING, Status.ACTIVE, Status.INACTIVE]
    assert changes[1].previous == Status.CONNECTING


def test_converts_only_when_a_reader_wants_a_frame() -> None:
    gate = threading.Semaphore(0)
    captures: list[ScriptedCapture] = []

    def opener(spec: Spec) -> ScriptedCapture:
        captures.append(ScriptedCapture(spec, 1000, gate))
        return captures[-1]

    cam, _ = make_camera(opener)
    cam.start()
    gate.release(50)
    assert wait_until(lambda: cam.stats.frames >= 50, 5)
    assert captures[0].retrieved == 1  # only the first frame, so the slot is never empty
    first = cam.slot.latest()
    assert first is not None
    reader = threading.Thread(target=lambda: cam.snapshot(max_age=0.0, wait=5))
    reader.start()
    assert wait_until(lambda: cam.slot.wanted.is_set(), 5)
    gate.release(1)
    reader.join(5)
    latest = cam.slot.latest()
    assert latest is not None and latest.seq > first.seq
    assert captures[0].retrieved == 2
    cam.request_stop()
    gate.release(1)
    assert cam.stop()


def test_stream_loss_reconnects_with_backoff_and_no_password_in_errors() -> None:
    opened: list[ScriptedCapture] = []

    def opener(spec: Spec) -> ScriptedCapture:
        if spec.label == "a":
            raise RuntimeError("a: 401 for rtsp://u:pw@h/x")
        opened.append(ScriptedCapture(spec, 3 if len(opened) < 2 else 10_000))
        return opened[-1]

    cam, changes = make_camera(opener)
    cam.start()
    assert wait_until(lambda: len(opened) >= 3 and cam.status == Status.ACTIVE, 5)
    cam.stop()
    assert all(c.released.is_set() for c in opened)
    statuses = [c.status for c in changes]
    assert statuses.count(Status.ACTIVE) >= 3
    assert Status.CONNECTING in statuses[2:]
    assert all("pw" not in c.error for c in changes)
    assert cam.describe()["reconnects"] >= 2


def test_unopenable_camera_goes_error_and_backoff_grows() -> None:
    attempts: list[float] = []

    def opener(spec: Spec) -> ScriptedCapture:
        attempts.append(time.monotonic())
        raise RuntimeError(f"{spec.label}: could not open rtsp://u:pw@h/x")

    cam, changes = make_camera(opener, reconnect_delay_sec=0.02, reconnect_max_delay_sec=0.16)
    cam.start()
    assert wait_until(lambda: len(attempts) >= 12, 10)
    cam.stop()
    assert cam.status == Status.INACTIVE
    errors = [c for c in changes if c.status == Status.ERROR]
    assert len(errors) == 1, "retrying while in error must not re-publish the same transition"
    assert "could not open" in errors[0].error and "pw" not in errors[0].error
    assert "***" in errors[0].error
    delays = [b - a for a, b in zip(attempts[1::2], attempts[3::2], strict=False)]
    assert max(delays) <= 0.16 * 1.2 + 0.5  # capped


def test_backoff_is_exponential_with_jitter_and_capped() -> None:
    cam, _ = make_camera(lambda s: None, reconnect_delay_sec=1.0, reconnect_max_delay_sec=10.0)
    delays = [cam._backoff() for _ in range(8)]
    for n, d in enumerate(delays):
        expected = min(10.0, 2.0**n)
        assert expected * 0.8 <= d <= expected * 1.2


def test_wait_after_returns_none_at_deadline_and_frame_when_newer() -> None:
    cam, _ = make_camera(lambda s: None)
    assert cam.wait_after(0, 0.05) is None
    cam.slot.put(Frame(5, np.zeros((2, 2, 3), np.uint8), 0.0))
    frame = cam.wait_after(4, 0.05)
    assert frame is not None and frame.seq == 5
    assert cam.wait_after(5, 0.05) is None


def test_frame_encodes_once_per_key() -> None:
    calls: list[tuple[int, int, int]] = []

    def encode(image: Any, q: int, w: int, h: int) -> bytes:
        calls.append((q, w, h))
        return b"jpeg%d" % q

    frame = Frame(1, np.zeros((2, 2, 3), np.uint8), 0.0)
    threads = [threading.Thread(target=frame.jpeg, args=(encode, 80)) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert frame.jpeg(encode, 50) == b"jpeg50"
    assert sorted(calls) == [(50, 0, 0), (80, 0, 0)]


@pytest.mark.parametrize("listener_fails", [True])
def test_listener_failure_does_not_kill_the_thread(listener_fails: bool) -> None:
    def bad_listener(change: StatusChange) -> None:
        raise ValueError("boom")

    cam = Camera("c", "", "rtsp://h/x", CaptureConfig(stop_timeout_sec=2), [Spec("a")],
                 open_source=lambda s: ScriptedCapture(s, 10_000), on_status=bad_listener)
    cam.start()
    assert wait_until(lambda: cam.stats.frames > 10, 5)
    assert cam.alive
    assert cam.stop()
