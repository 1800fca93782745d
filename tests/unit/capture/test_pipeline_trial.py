"""Selection by trial in the camera thread: first source that yields a frame wins, the winner is
retried first after a reconnect, and the RTSP probe narrows sources to the stream's codec or stops
early with its error. Scripted captures (pure logic; the real pipelines are in test_gstreamer.py)."""

from __future__ import annotations

import threading
import time
from typing import Any

import numpy as np

from rtsp2jpg.capture.camera import Camera, Status
from rtsp2jpg.capture.rtsp import ProbeResult
from rtsp2jpg.capture.sources import SourceSpec
from rtsp2jpg.config import CaptureConfig
from tests.support.rtsp_server import wait_until


def Spec(label: str, codec: str = "", hardware: bool = False) -> SourceSpec:  # noqa: N802
    return SourceSpec(label, label.partition("/")[0], "rtsp://h/x", codec=codec, hardware=hardware)


class Capture:
    behind_sec = 0.0
    def __init__(self, spec: Spec, frames: int) -> None:
        self.spec, self.left = spec, frames

    def grab(self) -> bool:
        time.sleep(0.002)  # a frame interval, shortened
        self.left -= 1
        return self.left >= 0

    def retrieve(self, glance: bool = False) -> Any:
        return np.zeros((4, 6, 3), np.uint8)

    def nominal_fps(self) -> float:
        return 0.0

    def release(self) -> None:
        pass


CFG = CaptureConfig(reconnect_delay_sec=0.01, reconnect_max_delay_sec=0.02, stop_timeout_sec=2.0)
SOURCES = [Spec("gstreamer/nvv4l2decoder", "h264", True), Spec("gstreamer/avdec_h264", "h264"),
           Spec("gstreamer/avdec_h265", "h265"), Spec("ffmpeg")]


def run_camera(opener, probe=None, until=None) -> tuple[dict, list[str]]:
    tried: list[str] = []
    lock = threading.Lock()

    def open_source(spec: Spec) -> Capture:
        with lock:
            tried.append(spec.label)
        return opener(spec)

    cam = Camera("c1", "", "rtsp://h/x", CFG, SOURCES, open_source=open_source, on_status=lambda c: None,
                 probe=probe)
    cam.start()
    assert wait_until(lambda: until(cam, tried), 10), (tried, cam.describe())
    seen = cam.describe()
    cam.stop()
    return seen, tried


def test_first_source_with_a_frame_wins_and_is_retried_first_after_reconnect() -> None:
    def opener(spec: Spec) -> Capture:
        if spec.label == "gstreamer/nvv4l2decoder":
            raise RuntimeError("gstreamer/nvv4l2decoder: could not open the stream")
        if spec.label == "gstreamer/avdec_h264":
            return Capture(spec, 3)  # delivers a few frames, then the stream "ends"
        return Capture(spec, 0)

    cam, tried = run_camera(opener, until=lambda c, t: t.count("gstreamer/avdec_h264") >= 3)
    first_avdec = tried.index("gstreamer/avdec_h264")
    assert tried[:first_avdec + 1] == ["gstreamer/nvv4l2decoder", "gstreamer/avdec_h264"]
    # after the first session the winner is opened first, the failing hardware candidate not before it
    assert tried[first_avdec + 1] == "gstreamer/avdec_h264"
    assert cam["backend"] == "gstreamer/avdec_h264"


def test_opened_but_no_frame_falls_through_to_ffmpeg() -> None:
    def opener(spec: Spec) -> Capture:
        return Capture(spec, 100_000 if spec.label == "ffmpeg" else 0)

    cam, tried = run_camera(opener, until=lambda c, t: c.status == Status.ACTIVE and c.stats.backend)
    assert tried == [s.label for s in SOURCES]
    assert cam["backend"] == "ffmpeg"


def test_probe_codec_skips_other_codec_chains() -> None:
    def opener(spec: Spec) -> Capture:
        return Capture(spec, 100_000 if spec.label == "gstreamer/avdec_h265" else 0)

    cam, tried = run_camera(opener, probe=lambda url, timeout, **_: ProbeResult(codec="h265", status=200),
                            until=lambda c, t: c.status == Status.ACTIVE and c.stats.backend)
    assert tried == ["gstreamer/avdec_h265"]


def test_no_probe_before_software_only_trials() -> None:
    probes: list[str] = []

    def probe(url: str, timeout: float, **_: object) -> ProbeResult:
        probes.append(url)
        return ProbeResult(status=401, error="authentication failed (401): wrong user name or password")

    tried: list[str] = []

    def opener(spec: Spec) -> Capture:
        tried.append(spec.label)
        raise RuntimeError(f"{spec.label}: could not open the stream")

    cam = Camera("c1", "", "rtsp://h/x", CFG, [s for s in SOURCES if "nvv4l2" not in s.label],
                 open_source=opener, on_status=lambda c: None, probe=probe)
    cam.start()
    assert wait_until(lambda: cam.status == Status.ERROR, 10)
    error = cam.describe()["error"]
    cam.stop()
    assert tried[:3] == ["gstreamer/avdec_h264", "gstreamer/avdec_h265", "ffmpeg"]
    assert probes == [] and "could not open" in error  # software trials are cheap: no DESCRIBE first


def test_probe_error_is_the_status_and_nothing_is_opened() -> None:
    cam, tried = run_camera(lambda spec: Capture(spec, 100_000),
                            probe=lambda url, timeout, **_: ProbeResult(
                                status=401, error="authentication failed (401): wrong user name or password"),
                            until=lambda c, t: c.status == Status.ERROR)
    assert tried == []
    assert cam["error"].startswith("authentication failed (401)")


def PolledSpec(poll_sec: float = 0.1) -> SourceSpec:  # noqa: N802
    return SourceSpec("gstreamer/avdec_h264", "gstreamer", "fake ! appsink", poll_sec=poll_sec)


def test_self_draining_source_is_polled_not_grabbed_every_frame() -> None:
    """An appsink that keeps only its newest frame needs no per-frame grab: idle, the camera grabs
    every poll_sec; a reader's request is served at once."""
    captures: list[Capture] = []

    def opener(spec: Any) -> Capture:
        captures.append(Capture(spec, 1_000_000))
        return captures[-1]

    cam = Camera("c1", "", "rtsp://h/x", CFG, [PolledSpec()], open_source=opener, on_status=lambda c: None)
    cam.start()
    try:
        assert wait_until(lambda: cam.status == Status.ACTIVE, 5)
        start = cam.stats.frames
        time.sleep(1.0)
        idle_grabs = cam.stats.frames - start
        assert 3 <= idle_grabs <= 15  # ~10 at poll 0.1 s; a per-frame loop here would make ~500
    finally:
        cam.stop()


def test_polled_source_wakes_for_a_reader() -> None:
    """With a poll interval far beyond the reader's wait, a fresh frame still arrives: the request
    itself wakes the camera thread."""
    cam = Camera("c1", "", "rtsp://h/x", CFG, [PolledSpec(poll_sec=60.0)],
                 open_source=lambda spec: Capture(spec, 1_000_000), on_status=lambda c: None)
    cam.start()
    try:
        assert wait_until(lambda: cam.slot.latest() is not None, 5)
        for _ in range(3):
            before = cam.slot.latest()
            frame = cam.snapshot(max_age=0.0, wait=5.0)
            assert frame is not None and frame.seq > before.seq
    finally:
        cam.stop()
