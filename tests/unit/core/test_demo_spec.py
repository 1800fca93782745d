"""The demo server's stream grammar (demo/spec.py): camera-like options parse, bad ones say why,
and each option reaches the encoder pipeline (pure: no GStreamer here; the streams themselves are
tested in tests/integration/capture/test_field_streams.py)."""

from __future__ import annotations

import pytest

from rtsp2jpg.demo.spec import StreamSpec


def test_options_parse_and_old_specs_keep_their_meaning() -> None:
    assert StreamSpec.parse("cam=640x360@25") == StreamSpec("cam", 640, 360, 25)
    spec = StreamSpec.parse("c=1280x720@25:h264:static,gop=4,bframes=2,bitrate=4000,audio=aac,resize=640x360,"
                            "resize_sec=3")
    assert (spec.mode, spec.gop_sec, spec.bframes, spec.bitrate, spec.audio, spec.resize, spec.resize_sec) == \
        ("static", 4, 2, 4000, "aac", (640, 360), 3)
    assert spec.sizes() == [(1280, 720), (640, 360)] and spec.bitrate_kbps == 4000


@pytest.mark.parametrize("bad", ["c=640x360@25,gop=0", "c=640x360@25,bframes=9", "c=640x360@25,audio=mp3",
                                 "c=640x360@25,resize=641x360", "c=640x360@25,resize=64x64", "c=640x360@25,nope=1",
                                 "c=640x360@25,gop=2,gop=3", "c=640x360@25:frozen,bframes=2", "c=640x360@25,gop=x"])
def test_bad_options_are_refused(bad: str) -> None:
    with pytest.raises(ValueError, match="bad stream"):
        StreamSpec.parse(bad)


def test_options_reach_the_encoder() -> None:
    plain = StreamSpec.parse("c=640x360@25").launch()
    assert "tune=zerolatency" in plain and "key-int-max=50" in plain and "pay1" not in plain
    avc = StreamSpec.parse("c=640x360@10,bframes=2,gop=4,audio=aac").launch()
    assert "bframes=2" in avc and "profile=high" in avc and "tune=zerolatency" not in avc
    assert "key-int-max=40" in avc and "avenc_aac" in avc and "rtpmp4gpay name=pay1" in avc
    hevc = StreamSpec.parse("c=640x360@25:h265,bframes=2,audio=pcma").launch()
    assert 'option-string="bframes=2:' in hevc and "zerolatency" not in hevc
    assert "rate=8000" in hevc and "rtppcmapay name=pay1" in hevc
