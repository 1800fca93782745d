"""sources.candidates(): order and fallbacks over capabilities (pure: nothing is opened here)."""

from __future__ import annotations

from rtsp2jpg.capture.chains import ELEMENTS
from rtsp2jpg.capture.sources import Capabilities, candidates, parse_build_info
from rtsp2jpg.config import CaptureConfig

URL = "rtsp://127.0.0.1:8554/cam"
SOFT = frozenset({"rtspsrc", "appsink", "identity", "rtph264depay", "h264parse", "rtph265depay", "h265parse",
                  "avdec_h264", "avdec_h265"})


def caps(gstreamer: bool = True, ffmpeg: bool = True, elements: frozenset[str] = SOFT, board: str = "generic"):
    return Capabilities("4.6.0", "cv2.so", {"ffmpeg": ffmpeg, "gstreamer": gstreamer},
                        elements=elements if gstreamer else frozenset(), board=board)


def labels(cfg: CaptureConfig, c: Capabilities, prefer: str = "default") -> list[str]:
    return [s.label for s in candidates(URL, cfg, c, prefer)]


def test_build_info_no_means_no() -> None:
    text = """
  Video I/O:
    DC1394:                      NO
    FFMPEG:                      YES
      avcodec:                   YES (59.37.100)
    GStreamer:                   NO
    v4l/v4l2:                    YES (linux/videodev2.h)
"""
    assert parse_build_info(text) == {"ffmpeg": True, "gstreamer": False}
    assert parse_build_info("    GStreamer:                   YES (1.22.0)\n    FFMPEG: NO") == {
        "ffmpeg": False, "gstreamer": True}


def test_auto_without_hardware_tries_ffmpeg_then_software_gstreamer() -> None:
    assert labels(CaptureConfig(), caps()) == ["ffmpeg", "gstreamer/avdec_h264", "gstreamer/avdec_h265"]
    assert labels(CaptureConfig(codec="h265"), caps()) == ["ffmpeg", "gstreamer/avdec_h265"]
    # Keyframe-only decoding is GStreamer's alone: then software GStreamer comes before FFmpeg.
    assert labels(CaptureConfig(codec="h264", keyframes_only=True), caps()) == ["gstreamer/avdec_h264", "ffmpeg"]


def test_software_and_gstreamer_pin_gstreamer_first() -> None:
    assert labels(CaptureConfig(decoder="software"), caps()) == [
        "gstreamer/avdec_h264", "gstreamer/avdec_h265", "ffmpeg"]
    assert labels(CaptureConfig(decoder="gstreamer", codec="h265"), caps()) == ["gstreamer/avdec_h265", "ffmpeg"]


def test_pip_opencv_without_gstreamer_is_ffmpeg_only() -> None:
    assert labels(CaptureConfig(), caps(gstreamer=False)) == ["ffmpeg"]


def test_pinned_element_missing_falls_back_to_ffmpeg() -> None:
    assert labels(CaptureConfig(decoder="nvv4l2decoder"), caps()) == ["ffmpeg"]


def test_jetson_pinned_hardware_then_ffmpeg() -> None:
    c = caps(elements=SOFT | {"nvv4l2decoder", "nvvidconv"}, board="jetson")
    assert labels(CaptureConfig(decoder="nvv4l2decoder", codec="h264"), c) == ["gstreamer/nvv4l2decoder", "ffmpeg"]
    assert labels(CaptureConfig(codec="h264"), c) == ["gstreamer/nvv4l2decoder", "ffmpeg", "gstreamer/avdec_h264"]


def test_prefer_and_decoder_ffmpeg() -> None:
    assert labels(CaptureConfig(codec="h264"), caps(), "ffmpeg") == ["ffmpeg", "gstreamer/avdec_h264"]
    assert labels(CaptureConfig(codec="h264"), caps(), "gstreamer") == ["gstreamer/avdec_h264", "ffmpeg"]
    assert labels(CaptureConfig(decoder="ffmpeg"), caps(), "gstreamer") == ["ffmpeg"]


def test_gstreamer_sources_carry_codec_and_raw_format() -> None:
    specs = candidates(URL, CaptureConfig(decoder="gstreamer"), caps())
    assert [(s.codec, s.pixel_format) for s in specs] == [("h264", "I420"), ("h265", "I420"), ("", "BGR")]
    assert "s3cret" not in repr(candidates("rtsp://u:s3cret@h/x", CaptureConfig(decoder="gstreamer"), caps())[0])


def test_every_table_element_is_probed() -> None:
    assert {"nvv4l2decoder", "nvvidconv", "v4l2convert", "vaapih264dec", "avdec_h265", "identity"} <= set(ELEMENTS)


def test_rtsps_skips_ffmpeg_while_certificates_are_verified() -> None:
    """FFmpeg's RTSP demuxer never checks a certificate: with tls_verify (the default) it is not tried
    for rtsps://, and rtspsrc validates; tls_verify false lets both in, rtspsrc validating nothing."""
    url = "rtsps://127.0.0.1:322/cam"
    verified = candidates(url, CaptureConfig(codec="h264"), caps())
    assert [s.label for s in verified] == ["gstreamer/avdec_h264"]
    assert "tls-validation-flags" not in verified[0].target
    assert candidates(url, CaptureConfig(decoder="ffmpeg"), caps()) == []
    trusting = candidates(url, CaptureConfig(codec="h264", tls_verify=False), caps())
    assert [s.label for s in trusting] == ["ffmpeg", "gstreamer/avdec_h264"]
    assert "tls-validation-flags=0" in trusting[1].target
    plain = candidates(URL, CaptureConfig(codec="h264", tls_verify=False), caps())
    assert "tls-validation-flags" not in plain[1].target  # plain RTSP has no certificate to skip


def test_adaptive_software_chains_decode_with_libavcodec_where_it_loads() -> None:
    """`decoder: auto|software` on adaptive decoding: libavcodec driven directly takes avdec's place;
    the receive half (rtspsrc's, for a camera our client cannot take) stays as it was."""
    jetson = SOFT | {"nvv4l2decoder", "nvvidconv"}
    lavc = Capabilities("4.6.0", "cv2.so", {"ffmpeg": True, "gstreamer": True}, elements=jetson, board="jetson",
                        direct_gstreamer=True, lavc=True)
    got = candidates(URL, CaptureConfig(), lavc)
    assert [(s.label, s.lavc) for s in got] == [
        ("gstreamer/nvv4l2decoder", ""), ("gstreamer/nvv4l2decoder", ""),  # the board's decoder stays GStreamer's
        ("libavcodec/h264", "h264"), ("libavcodec/h265", "h265"), ("ffmpeg", "")]
    assert "avdec_h264" in got[2].decode and got[2].receive  # GStreamer's decoder if libavcodec fails to open
    # Naming GStreamer or the element keeps GStreamer's decoder; so do keyframe-only and decode: always.
    for cfg in (CaptureConfig(decoder="gstreamer"), CaptureConfig(decoder="avdec_h264"),
                CaptureConfig(keyframes_only=True), CaptureConfig(decode="always")):
        assert all(not s.lavc and not s.label.startswith("libavcodec") for s in candidates(URL, cfg, lavc)), cfg
    # Without it (no libavcodec of a known version), the same chains as before.
    assert not any(s.lavc for s in candidates(URL, CaptureConfig(), caps()))
