"""Demand-adaptive decoding against the real demo RTSP server (capture/gst_demand.py).

An unread camera keeps receiving (the group of pictures since the last keyframe grows and is cut
at each keyframe) but hands nothing to the decoder; the next read decodes the buffered pictures
and gets the newest one, as its time code proves. Frequent reads decode as frames arrive, and
`decode: always` keeps the single decoding pipeline. CPU figures are in bench/adaptive.py.
"""

from __future__ import annotations

import time

import pytest

from rtsp2jpg.capture import gst_demand, lavc, sources
from rtsp2jpg.capture import opencv as pipeline
from rtsp2jpg.capture.frames import bgr_of
from rtsp2jpg.config import CaptureConfig
from rtsp2jpg.demo.timecode import decode_stamp

CAPS = pipeline.capabilities()
pytestmark = pytest.mark.skipif(not CAPS.direct_gstreamer or "avdec_h264" not in CAPS.elements,
                                reason="needs GStreamer through PyGObject and gst-libav")
CFG = {"codec": "h264", "open_timeout_sec": 10, "stall_timeout_sec": 5}
# `software` decodes with libavcodec driven directly (lavc.py) where it loads, `gstreamer` keeps the
# chain's avdec element behind an appsrc: both decoders behind DemandPipeline, the same behaviour.
DECODERS = ["software", "gstreamer"]


def _open(url: str, decoder: str, **cfg):
    spec = sources.candidates(url, CaptureConfig(**{**CFG, "decoder": decoder, **cfg}), CAPS)[0]
    assert spec.lavc == (spec.codec if decoder == "software" and CAPS.lavc else ""), spec.lavc
    cap = pipeline.open_source(spec)
    assert isinstance(cap._pipe._dec, lavc.Decoder if spec.lavc else gst_demand.GstDecoder)
    return cap


def _idle(cap, seconds: float) -> None:
    """What the camera thread does while nobody reads: a grab every 0.25 s, no retrieve."""
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        assert cap.grab()
        time.sleep(0.25)


def _until_idle(cap) -> None:
    """Grab without reading until the hold after the last read has run out (it follows the
    measured keyframe interval, so it may change meanwhile), then a second more."""
    deadline = time.monotonic() + 15
    while cap._pipe.demand.continuous():
        assert time.monotonic() < deadline, "the decoder kept running with nobody reading"
        _idle(cap, 0.25)
    _idle(cap, 1.0)


@pytest.mark.parametrize("decoder", DECODERS)
def test_an_unread_camera_decodes_nothing_and_a_read_gets_the_newest_picture(rtsp, decoder: str) -> None:
    cap = _open(rtsp.url("cam"), decoder)
    try:
        pipe = cap._pipe
        assert isinstance(pipe, gst_demand.DemandPipeline)
        assert cap.grab() and cap.retrieve() is not None  # the open's own picture
        _until_idle(cap)
        pushed, seen = pipe.pushed, len(pipe.gop)
        _idle(cap, 1.0)
        assert pipe.pushed == pushed, "an unread camera handed pictures to the decoder"
        assert cap.nominal_fps() == 25.0  # from the units' timestamps: known while nobody reads too
        assert len(pipe.gop) != seen, "no access units were received while idle"
        assert cap.grab()
        asked = time.time()
        image = bgr_of(cap.retrieve())
        assert image is not None and image.shape[:2] == (360, 640)
        stamp = decode_stamp(image)
        assert stamp is not None
        # The newest picture, not the buffered keyframe (up to 2 s old): generous for a loaded machine.
        assert asked - stamp < 0.5, f"picture {asked - stamp:.3f} s old"
        assert pipe.pushed > pushed and not pipe.demand.continuous()  # one read: a burst, no more
        time.sleep(0.3)
        assert cap.grab() and cap.retrieve() is not None
        assert pipe.demand.continuous()  # a second read within the keyframe interval keeps it decoding
    finally:
        cap.release()


@pytest.mark.parametrize("decoder", DECODERS)
def test_frequent_reads_decode_as_pictures_arrive_and_a_glance_does_not_count(rtsp, decoder: str) -> None:
    cap = _open(rtsp.url("cam"), decoder)
    try:
        pipe = cap._pipe
        assert cap.grab() and cap.retrieve() is not None  # the open's own picture
        for _ in range(8):
            time.sleep(0.2)
            before = pipe.pushed
            assert cap.grab() and cap.retrieve() is not None
            assert pipe.pushed > before
        _until_idle(cap)
        newest_at = time.time()
        before = pipe.pushed
        assert cap.grab()
        image = bgr_of(cap.retrieve(glance=True))  # the health check's read: the group's keyframe alone
        assert image is not None and not pipe.demand.continuous()
        if pipe.pushed == before + 1:  # the keyframe had not been decoded: it is behind the newest unit
            assert cap.behind_sec > 0.1
            # Its time code says how old it is, and behind_sec says the same (the camera stamps with it).
            assert abs((newest_at - decode_stamp(image)) - cap.behind_sec) < 0.3, cap.behind_sec
        else:  # the idle spell ended just after a keyframe that was already decoded: the rest was
            assert pipe.pushed > before and cap.behind_sec == 0.0
    finally:
        cap.release()


def test_decode_always_keeps_one_pipeline_decoding_every_frame(rtsp) -> None:
    spec = sources.candidates(rtsp.url("cam"), CaptureConfig(**CFG, decoder="software", decode="always"), CAPS)[0]
    assert not spec.decode and not spec.receive
    cap = pipeline.open_source(spec)
    try:
        assert not isinstance(cap._pipe, gst_demand.DemandPipeline)
        assert cap.grab() and cap.retrieve() is not None
    finally:
        cap.release()


@pytest.mark.parametrize("decoder", DECODERS)
def test_adaptive_decoding_works_for_h265(rtsp, decoder: str) -> None:
    cap = _open(rtsp.url("hevc"), decoder, codec="h265")
    try:
        assert isinstance(cap._pipe, gst_demand.DemandPipeline)
        assert cap.grab() and cap.retrieve() is not None
        _until_idle(cap)
        assert cap.grab()
        image = bgr_of(cap.retrieve())
        assert image is not None and decode_stamp(image) is not None
    finally:
        cap.release()
