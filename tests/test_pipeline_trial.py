"""Selection by trial in the camera thread: first source that yields a frame wins, the winner is
retried first after a reconnect, and the RTSP probe narrows sources to the stream's codec or stops
early with its error. Scripted captures (pure logic; the real pipelines are in test_gstreamer.py)."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
from rtsp_server import wait_until

from rtsp2jpg.camera import Camera, Status
from rtsp2jpg.config import CaptureConfig
from rtsp2jpg.rtsp import ProbeResult


@dataclass(frozen=True)
class Spec:
    label: str
    codec: str = ""


class Capture:
    def __init__(self, spec: Spec, frames: int) -> None:
        self.spec, self.left = spec, frames

    def grab(self) -> bool:
        time.sleep(0.002)  # a frame interval, shortened
        self.left -= 1
        return self.left >= 0

    def retrieve(self) -> Any:
        return np.zeros((4, 6, 3), np.uint8)

    def release(self) -> None:
        pass


CFG = CaptureConfig(reconnect_delay_sec=0.01, reconnect_max_delay_sec=0.02, stop_timeout_sec=2.0)
SOURCES = [Spec("gstreamer/nvv4l2decoder", "h264"), Spec("gstreamer/avdec_h264", "h264"),
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

    cam, tried = run_camera(opener, probe=lambda url, timeout: ProbeResult(codec="h265", status=200),
                            until=lambda c, t: c.status == Status.ACTIVE and c.stats.backend)
    assert tried == ["gstreamer/avdec_h265"]


def test_probe_error_is_the_status_and_nothing_is_opened() -> None:
    cam, tried = run_camera(lambda spec: Capture(spec, 100_000),
                            probe=lambda url, timeout: ProbeResult(status=401, error="authentication failed (401): "
                                                                   "wrong user name or password"),
                            until=lambda c, t: c.status == Status.ERROR)
    assert tried == []
    assert cam["error"].startswith("authentication failed (401)")
