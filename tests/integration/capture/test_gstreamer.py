"""GStreamer capture for real: Debian's OpenCV (built with GStreamer), software decoding of the demo
server's H.264 and H.265 mounts, through the service and through open_source() directly."""

from __future__ import annotations

import dataclasses
import time

import cv2
import numpy as np
import pytest

from rtsp2jpg.capture import opencv as pipeline
from rtsp2jpg.capture import sources
from rtsp2jpg.capture.camera import Camera, Status
from rtsp2jpg.capture.frames import bgr_of
from rtsp2jpg.config import CaptureConfig
from rtsp2jpg.demo.timecode import decode_stamp
from tests.support.rtsp_server import wait_until

CAPS = pipeline.capabilities()
pytestmark = pytest.mark.skipif(not CAPS.backends["gstreamer"] or "avdec_h264" not in CAPS.elements,
                                reason="needs OpenCV with GStreamer and gst-libav (Debian python3-opencv)")
# decoder: software puts GStreamer first (auto tries FFmpeg before software GStreamer).
FAST = {"reconnect_delay_sec": 0.5, "reconnect_max_delay_sec": 2, "open_timeout_sec": 5, "stall_timeout_sec": 3,
        "decoder": "software"}


def decode(body: bytes) -> np.ndarray:
    image = cv2.imdecode(np.frombuffer(body, np.uint8), cv2.IMREAD_COLOR)
    assert image is not None, "not a JPEG"
    return image


def active(svc, camera_id: str, timeout: float = 30) -> dict:
    assert wait_until(lambda: svc.status(camera_id)["status"] == "active", timeout), svc.status(camera_id)
    return svc.status(camera_id)


def test_h264_and_h265_decode_in_software_codec_found_by_trial(service_factory, rtsp) -> None:
    svc = service_factory({"capture": FAST, "cameras": [{"id": "avc", "url": rtsp.url("cam")}]})
    active(svc, "avc")
    # The second camera starts once the first is up: the demo server stumbles over simultaneous
    # connects (DESIGN 9), and each camera with codec auto adds a DESCRIBE of its own.
    hevc = svc.post("/register", {"rtsp_url": rtsp.url("hevc"), "name": "hevc"}).json()["id"]
    software = "libavcodec/{}" if CAPS.lavc else "gstreamer/avdec_{}"  # adaptive decoding's software path
    labels = {"avc": software.format("h264"), hevc: software.format("h265")}
    for camera_id, label in labels.items():
        status = active(svc, camera_id)
        assert status["backend"] == label, svc.log()[-4000:]
        assert (status["width"], status["height"]) == (640, 360)
        r = svc.get(f"/snapshot/{camera_id}?max_age=1")
        assert r.status == 200
        stamp = decode_stamp(decode(r.body))
        assert stamp is not None and time.time() - stamp < 2.0  # the frame is recent and correctly coloured
    assert f"{hevc}: using {labels[hevc]}" in svc.log()


def test_health_reports_backends_decoders_and_board(service_factory) -> None:
    svc = service_factory({})
    health = svc.get("/health").json()
    assert health["backends_built"] == {"ffmpeg": True, "gstreamer": True}
    assert health["decoders"]["avdec_h264"] is True and health["decoders"]["nvv4l2decoder"] is False
    assert health["board"] in ("generic", "rpi4", "rpi5", "rpi", "jetson")
    assert "cv2" in svc.log()  # cv2.__file__ is logged once at start


def test_pinned_missing_element_falls_back_to_ffmpeg(service_factory, rtsp) -> None:
    svc = service_factory({"capture": FAST, "cameras": [
        {"id": "cam", "url": rtsp.url("cam"), "decoder": "nvv4l2decoder"}]})
    assert active(svc, "cam")["backend"] == "ffmpeg"
    assert svc.get("/snapshot/cam").status == 200


def test_prefer_ffmpeg_from_register(service_factory, rtsp) -> None:
    svc = service_factory({"capture": {**FAST, "codec": "h264"}})
    token = svc.post("/register", {"rtsp_url": rtsp.url("cam"), "prefer": "ffmpeg"}).json()["token"]
    assert active(svc, token)["backend"] == "ffmpeg"


def test_keyframes_only_camera(service_factory, rtsp) -> None:
    svc = service_factory({"capture": FAST, "cameras": [
        {"id": "cam", "url": rtsp.url("cam"), "keyframes_only": True, "codec": "h264"}]})
    status = active(svc, "cam")
    assert status["backend"] == "gstreamer/avdec_h264"
    assert decode_stamp(decode(svc.get("/snapshot/cam").body)) is not None
    # the demo sends a keyframe every 2 s: far fewer than 25 frames per second get through
    assert wait_until(lambda: svc.status("cam")["frames"] >= 2, 10)
    assert svc.status("cam")["fps"] < 5  # keyframe-only sources are not polled: fps is counted


def test_broken_candidate_fails_and_the_next_one_is_chosen(rtsp) -> None:
    """Trial with real pipelines: a deliberately broken element, then an H.265 chain on an H.264
    stream (opens nothing), then the right one."""
    good = sources.candidates(rtsp.url("cam"), CaptureConfig(codec="h264", **FAST), CAPS)[0]
    hevc = sources.candidates(rtsp.url("cam"), CaptureConfig(codec="h265", **FAST), CAPS)[0]
    broken = dataclasses.replace(good, label="gstreamer/broken", lavc="",
                                 target=good.target.replace("avdec_h264", "avdec_h264_no_such_element"),
                                 decode=good.decode.replace("avdec_h264", "avdec_h264_no_such_element"))
    cam = Camera("trial", "", rtsp.url("cam"), CaptureConfig(**FAST), [broken, hevc, good],
                 open_source=pipeline.open_source, on_status=lambda change: None)
    cam.start()
    try:
        assert wait_until(lambda: cam.status == Status.ACTIVE, 30), cam.describe()
        assert cam.describe()["backend"] == good.label
    finally:
        assert cam.stop(10)


def test_capture_retrieves_yuv_planes_and_makes_bgr_on_demand(rtsp) -> None:
    spec = sources.candidates(rtsp.url("cam"), CaptureConfig(codec="h264", **FAST), CAPS)[0]
    assert spec.pixel_format == "I420" and "BGR" not in spec.target
    capture = pipeline.open_source(spec)
    try:
        assert capture.grab()
        picture = capture.retrieve()
    finally:
        capture.release()
    assert isinstance(picture, pipeline.YuvPicture) and picture.format == "I420"
    assert (picture.width, picture.height) == (640, 360) and picture.data.shape == (540, 640)
    image = picture.bgr()
    assert image.shape == (360, 640, 3)
    assert decode_stamp(image) is not None and decode_stamp(picture.grey()) == decode_stamp(image)


def test_a_grab_after_a_pause_gives_the_newest_frame_not_a_held_one(rtsp) -> None:
    """Like the service between readers: grab a few times without retrieving, pause, grab, retrieve.
    The picture must be the stream's newest (an early version kept the first unretrieved frame, and
    1 snapshot/s got frames 0.79 s old)."""
    spec = sources.candidates(rtsp.url("cam"), CaptureConfig(codec="h264", **FAST), CAPS)[0]
    capture = pipeline.open_source(spec)
    try:
        for _ in range(3):
            assert capture.grab()
        time.sleep(1.0)
        assert capture.grab()
        image = capture.retrieve()
        retrieved_at = time.time()
    finally:
        capture.release()
    stamp = decode_stamp(bgr_of(image))
    assert stamp is not None and retrieved_at - stamp < 0.3, retrieved_at - stamp


def test_hostile_urls_parse_to_the_same_elements() -> None:
    """What GStreamer itself makes of the launch strings: the same six elements, whatever the URL."""
    import gi

    gi.require_version("Gst", "1.0")
    from gi.repository import Gst

    Gst.init(None)
    urls = ["rtsp://h/x?location=/etc/passwd", "rtsp://h/filesrc/location=x",
            "rtsp://us%22er:p%22%20%21%20filesrc%20location%3D%2Fetc%2Fpasswd%5C@h:554/x"]
    for url in urls:
        (spec,) = [s for s in sources.candidates(url, CaptureConfig(codec="h264"), CAPS) if s.backend == "gstreamer"]
        bin_ = Gst.parse_launch(spec.target)
        names = sorted(e.get_factory().get_name() for e in bin_.children)
        assert names == sorted(["rtspsrc", "rtph264depay", "h264parse", "avdec_h264", "capsfilter", "appsink"])
        src = next(e for e in bin_.children if e.get_factory().get_name() == "rtspsrc")
        assert "@" not in src.get_property("location")
        if "us%22er" in url:
            assert src.get_property("user-id") == 'us"er'
            assert src.get_property("user-pw") == 'p" ! filesrc location=/etc/passwd\\'
