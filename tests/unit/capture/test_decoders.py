"""The pure pipeline builder (decoders.gst_pipelines) for every board, with fake element sets.

Hardware decoder elements (nvv4l2decoder, v4l2h264dec, nvh264dec, vah264dec, vaapih264dec) cannot
run on the CI machine: these tests only assert the strings built for them, against the chains the
vendors document:
- NVIDIA Jetson, "Accelerated GStreamer" (L4T developer guide, docs.nvidia.com/jetson): decode with
  `nvv4l2decoder`, leave NVMM memory with `nvvidconv` into `video/x-raw` (e.g. I420);
  DeepStream "Gst-nvvideo4linux2": `skip-frames` 2 = decode_key (keyframes only).
- Raspberry Pi 4: GStreamer video4linux2 plugin, `h264parse ! v4l2h264dec ! v4l2convert` (the
  stateful V4L2 decoder; v4l2convert is the Pi's hardware converter out of its buffers).
- NVIDIA desktop GPUs: GStreamer nvcodec plugin, `h264parse ! nvh264dec` (system-memory NV12
  when downstream asks for video/x-raw).
- Intel/AMD: GStreamer va plugin `vah264dec`, gstreamer-vaapi `vaapih264dec` (NV12).
The software chain (avdec_*) is additionally parsed by the real GStreamer in test_gstreamer.py.
"""

from __future__ import annotations

import re

import pytest

from rtsp2jpg.capture.chains import CHAINS, ELEMENTS, gst_pipelines, keyframes_wanted, quote
from rtsp2jpg.config import CaptureConfig

URL = "rtsp://viewer:s3cret@192.168.1.10:554/stream1"
BASE = {"rtspsrc", "appsink", "identity", "rtph264depay", "h264parse", "rtph265depay", "h265parse",
        "avdec_h264", "avdec_h265"}
BOARDS = {
    "jetson": ("jetson", BASE | {"nvv4l2decoder", "nvvidconv"}),
    "pi4": ("rpi4", BASE | {"v4l2h264dec", "v4l2convert"}),
    # Pi 5: the v4l2 plugin is installed (so the element exists) but the SoC has no H.264 block.
    "pi5": ("rpi5", BASE | {"v4l2h264dec", "v4l2convert", "v4l2slh265dec"}),
    "nvidia": ("generic", BASE | {"nvh264dec", "nvh265dec"}),
    "vaapi": ("generic", BASE | {"vah264dec", "vah265dec", "vaapih264dec", "vaapih265dec"}),
    "x86": ("generic", BASE),
}
SINK = "video/x-raw,format={fmt} ! appsink drop=true max-buffers=1 sync=false"
SRC = ('rtspsrc location="rtsp://192.168.1.10:554/stream1" latency=0 protocols=tcp tcp-timeout=10000000 '
       'user-id="viewer" user-pw="s3cret"')


def build(board: str, **cfg: object) -> list:
    kind, elements = BOARDS[board]
    return gst_pipelines(URL, CaptureConfig(**cfg), frozenset(elements), kind)  # type: ignore[arg-type]


def steps(description: str) -> list[str]:
    """Split a launch string at `!` outside double quotes (what gst_parse_launch does)."""
    parts, cur, quoted, escaped = [], "", False, False
    for ch in description:
        if escaped:
            cur, escaped = cur + ch, False
        elif ch == "\\":
            cur, escaped = cur + ch, True
        elif ch == '"':
            cur, quoted = cur + ch, not quoted
        elif ch == "!" and not quoted:
            parts.append(cur.strip())
            cur = ""
        else:
            cur += ch
    assert not quoted, "unbalanced quotes"
    return parts + [cur.strip()]


def test_jetson_uses_nvv4l2decoder_with_nvvidconv() -> None:
    first = build("jetson", codec="h264")[0]
    assert first.label == "gstreamer/nvv4l2decoder"
    assert first.description == (f"{SRC} ! rtph264depay ! h264parse ! nvv4l2decoder ! nvvidconv ! "
                                 f"{SINK.format(fmt='I420')}")
    assert [p.label for p in build("jetson", codec="h264")] == ["gstreamer/nvv4l2decoder", "gstreamer/avdec_h264"]
    assert build("jetson", codec="h265")[0].description.endswith(
        "rtph265depay ! h265parse ! nvv4l2decoder ! nvvidconv ! " + SINK.format(fmt="I420"))


def test_pi4_uses_v4l2h264dec_with_v4l2convert_and_software_for_h265() -> None:
    first = build("pi4", codec="h264")[0]
    assert first.description == (f"{SRC} ! rtph264depay ! h264parse ! v4l2h264dec ! v4l2convert ! "
                                 f"{SINK.format(fmt='I420')}")
    assert [p.label for p in build("pi4", codec="h265")] == ["gstreamer/avdec_h265"]


def test_pi5_has_no_h264_hardware_and_ends_on_software() -> None:
    assert [p.label for p in build("pi5", codec="h264")] == ["gstreamer/avdec_h264"]
    assert [p.label for p in build("pi5", codec="h265")] == ["gstreamer/v4l2slh265dec", "gstreamer/avdec_h265"]


def test_nvidia_desktop_uses_nvcodec_nv12() -> None:
    first = build("nvidia", codec="h264")[0]
    assert first.description == f"{SRC} ! rtph264depay ! h264parse ! nvh264dec ! {SINK.format(fmt='NV12')}"
    assert first.format == "NV12" and first.hardware
    assert build("nvidia", codec="h265")[0].label == "gstreamer/nvh265dec"


def test_vaapi_prefers_va_then_vaapi_then_software() -> None:
    labels = [p.label for p in build("vaapi", codec="h264")]
    assert labels == ["gstreamer/vah264dec", "gstreamer/vaapih264dec", "gstreamer/avdec_h264"]
    assert build("vaapi", codec="h264")[1].description == (
        f"{SRC} ! rtph264depay ! h264parse ! vaapih264dec ! {SINK.format(fmt='NV12')}")


def test_plain_x86_is_software_with_one_thread_and_raw_i420() -> None:
    (only,) = build("x86", codec="h264")
    assert only.description == (f"{SRC} ! rtph264depay ! h264parse ! avdec_h264 max-threads=1 output-corrupt=false ! "
                                f"{SINK.format(fmt='I420')}")
    assert "videoconvert" not in only.description and "BGR" not in only.description  # conversion on retrieve


def test_codec_auto_lists_h264_then_h265() -> None:
    assert [(p.codec, p.label) for p in build("x86")] == [("h264", "gstreamer/avdec_h264"),
                                                         ("h265", "gstreamer/avdec_h265")]


def test_nvvidconv_missing_means_no_jetson_chain() -> None:
    kind, elements = BOARDS["jetson"]
    got = gst_pipelines(URL, CaptureConfig(codec="h264"), frozenset(elements - {"nvvidconv"}), kind)
    assert [p.label for p in got] == ["gstreamer/avdec_h264"]


def test_jetson_element_on_another_board_is_not_used() -> None:
    _, elements = BOARDS["jetson"]
    assert [p.label for p in gst_pipelines(URL, CaptureConfig(codec="h264"), frozenset(elements), "generic")] == [
        "gstreamer/avdec_h264"]


@pytest.mark.parametrize(("decoder", "expected"), [
    ("auto", ["gstreamer/nvv4l2decoder", "gstreamer/avdec_h264"]),
    ("gstreamer", ["gstreamer/nvv4l2decoder", "gstreamer/avdec_h264"]),
    ("software", ["gstreamer/avdec_h264"]),
    ("nvv4l2decoder", ["gstreamer/nvv4l2decoder"]),
    ("avdec_h264", ["gstreamer/avdec_h264"]),
    ("vah264dec", []),  # pinned but missing: no GStreamer candidate (pipeline.candidates adds FFmpeg)
    ("ffmpeg", []),
])
def test_decoder_setting_narrows_candidates(decoder: str, expected: list[str]) -> None:
    assert [p.label for p in build("jetson", codec="h264", decoder=decoder)] == expected


def test_keyframes_only_uses_the_decoder_property_or_drops_delta_units() -> None:
    jetson = build("jetson", codec="h264", keyframes_only=True)
    assert "nvv4l2decoder skip-frames=2 ! nvvidconv" in jetson[0].description
    assert "identity" not in jetson[0].description
    soft = jetson[1].description
    assert "h264parse ! identity drop-buffer-flags=delta-unit ! avdec_h264 max-threads=1 output-corrupt=false" in soft
    assert all(p.keyframes_only for p in jetson)


def test_long_read_throttle_implies_keyframes_only() -> None:
    assert not keyframes_wanted(CaptureConfig(read_throttle_sec=1.0))
    assert keyframes_wanted(CaptureConfig(read_throttle_sec=10.0))
    assert "drop-buffer-flags=delta-unit" in build("x86", codec="h264", read_throttle_sec=10.0)[0].description


def test_udp_transport() -> None:
    assert " protocols=udp " in build("x86", codec="h264", transport="udp")[0].description


def test_no_gstreamer_plumbing_no_candidates() -> None:
    assert gst_pipelines(URL, CaptureConfig(), frozenset({"avdec_h264"}), "generic") == []


def test_table_elements_are_plain_names() -> None:
    assert all(re.fullmatch(r"[a-z0-9_]+", e) for e in ELEMENTS)
    assert {c.codec for c in CHAINS} == {"h264", "h265"}


def test_quote_escapes_backslash_and_quote_and_refuses_control_characters() -> None:
    assert quote('a"b\\c!d e') == '"a\\"b\\\\c!d e"'
    with pytest.raises(ValueError):
        quote("line\nbreak")


HOSTILE = [
    'rtsp://h/x" ! filesrc location=/etc/passwd ! fakesink "',
    "rtsp://h/x ! filesrc location=/etc/passwd",
    "rtsp://h/x!filesrc",
    "rtsp://h/x\nfilesrc",
    "file:///etc/passwd",
    "rtsp://h/x'",
    "rtsp://h/x\\",
]


@pytest.mark.parametrize("url", HOSTILE)
def test_unvalidatable_urls_never_reach_a_pipeline(url: str) -> None:
    assert gst_pipelines(url, CaptureConfig(), frozenset(BOARDS["x86"][1]), "generic") == []


@pytest.mark.parametrize("url", [
    "rtsp://h/x?location=/etc/passwd",
    "rtsp://h/filesrc/location=x",
    "rtsp://us%22er:p%22%20%21%20filesrc%20location%3D%2Fetc%2Fpasswd%5C@h:554/x",
    "rtsp://h:554/a%22b%21c",
])
def test_valid_but_tricky_urls_keep_the_pipeline_shape(url: str) -> None:
    (p,) = gst_pipelines(url, CaptureConfig(codec="h264"), frozenset(BOARDS["x86"][1]), "generic")
    names = [s.split()[0] for s in steps(p.description)]
    assert names == ["rtspsrc", "rtph264depay", "h264parse", "avdec_h264", "video/x-raw,format=I420", "appsink"]


def test_credentials_with_control_characters_give_no_gstreamer_candidate() -> None:
    url = "rtsp://user:pa%0Ass@h/x"
    assert gst_pipelines(url, CaptureConfig(), frozenset(BOARDS["x86"][1]), "generic") == []
