"""libavcodec driven directly (capture/lavc.py) on access units from the real demo RTSP server.

Units come from our own RTSP client (receivers.RtspReceiver), as in the service. The picture's
time code proves which frame came out; garbage, truncated units and a closed decoder must give no
picture and no crash, and the decoder must recover at the next keyframe.
"""

from __future__ import annotations

import threading
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rtsp2jpg.capture import lavc
from rtsp2jpg.capture import opencv as pipeline
from rtsp2jpg.capture.frames import bgr_of
from rtsp2jpg.capture.gop import Unit
from rtsp2jpg.capture.receivers import RtspReceiver
from rtsp2jpg.demo.timecode import decode_stamp

pytestmark = pytest.mark.skipif(not lavc.available(), reason="needs libavcodec (libavcodec59 on Debian 12)")


def _group(url: str, count: int = 30) -> list[Unit]:
    """A keyframe and the units after it, as the service's receiver gives them."""
    rx = RtspReceiver(url, 10.0, "test")
    rx.start()
    try:
        units: list[Unit] = []
        while len(units) < count:
            got = rx.units(5.0)
            assert got is not None, rx.failure
            units += [u for u in got if units or u.key]  # from the first keyframe on
        return units[:count]
    finally:
        rx.close()


@pytest.fixture(scope="module")
def groups(_rtsp_session) -> dict[str, list[Unit]]:
    return {codec: _group(_rtsp_session.url(mount)) for codec, mount in (("h264", "cam"), ("h265", "hevc"))}


def _stamp(picture: lavc.RawPicture) -> float | None:
    return decode_stamp(bgr_of(pipeline.YuvPicture(picture.data, picture.format)))


@pytest.mark.parametrize("codec", ["h264", "h265"])
def test_a_group_of_pictures_decodes_to_its_newest_picture(groups, codec: str) -> None:
    units = groups[codec]
    dec = lavc.Decoder(codec, "test")
    try:
        first = dec.decode(units[:1])
        assert first is not None, "a keyframe alone gives its picture (the demo stream has no B-frames)"
        key = dec.picture(first)
        assert key is not None and (key.width, key.height) == (640, 360) and key.format == "I420"
        newest = dec.decode(units[1:])
        assert newest is not None and dec.picture(first) is None  # a sample is only good while newest
        picture = dec.picture(newest)
        assert picture is not None
        # The time codes of the two pictures are as far apart as the units' timestamps say.
        span = (units[-1].pts - units[0].pts) / 1e9
        assert abs((_stamp(picture) - _stamp(key)) - span) < 0.3, (span, _stamp(picture), _stamp(key))
        assert not dec.failure
    finally:
        dec.close()


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(junk=st.lists(st.binary(max_size=4096), max_size=6), cut=st.integers(min_value=0, max_value=100))
def test_garbage_and_truncated_units_give_no_picture_and_the_next_keyframe_recovers(groups, junk, cut) -> None:
    units = groups["h264"]
    dec = lavc.Decoder("h264", "test")
    try:
        key = units[0].data
        broken = [Unit(data, False, len(data), None) for data in junk]
        broken.append(Unit(key[:len(key) * cut // 100], True, 0, None))  # a keyframe cut short
        dec.decode(broken)
        assert not dec.failure  # damaged input is skipped, not fatal
        sample = dec.decode(units)
        assert sample is not None and not dec.failure
        picture = dec.picture(sample)
        assert picture is not None and _stamp(picture) is not None
    finally:
        dec.close()


def test_close_from_another_thread_while_decoding_and_twice(groups) -> None:
    units = groups["h264"] * 4
    dec = lavc.Decoder("h264", "test")
    closer = threading.Timer(0.01, dec.close)
    closer.start()
    deadline = time.monotonic() + 10
    while not dec.failure and time.monotonic() < deadline:
        dec.decode(units)  # closed under it: stops with a failure, never touches the freed decoder
    closer.join()
    assert dec.failure == "closed" and dec.decode(units[:1]) is None and dec.picture(1) is None
    dec.close()


def test_a_codec_it_does_not_know_is_refused_clearly() -> None:
    with pytest.raises(lavc.DecoderError, match="cannot decode mjpeg"):
        lavc.Decoder("mjpeg", "test")
