"""The EXIF segment parses back (with a small TIFF reader written here: no imaging library needed)
to the capture time, sub-seconds, offset and the sanitized camera id, for any time and any id."""

from __future__ import annotations

import time

import cv2
import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from rtsp2jpg.capture import exif
from rtsp2jpg.capture.frames import Frame
from rtsp2jpg.capture.opencv import encode_jpeg
from rtsp2jpg.capture.view import Picture
from tests.support.exif_reader import read_exif, text

JPEG = encode_jpeg(np.full((16, 16, 3), 90, np.uint8), 80)


@given(st.floats(0, 2**32, allow_nan=False), st.text(max_size=100), st.integers(-12 * 60, 14 * 60))
def test_exif_parses_back(captured_at, camera_id, offset_min):
    gmtoff = offset_min * 60
    data = exif.insert(JPEG, captured_at, camera_id)
    tags = read_exif(data)
    when, subsec, offset = exif.capture_fields(captured_at, gmtoff)
    assert len(when) == 19 and len(subsec) == 3 and len(offset) == 6
    seconds = int(captured_at // 1)
    local = time.strftime("%Y:%m:%d %H:%M:%S", time.localtime(seconds))
    assert text(tags[exif.TAG_DATETIME_ORIGINAL]) == local
    assert text(tags[exif.TAG_SUBSEC_TIME_ORIGINAL]) == f"{min(999, round((captured_at - seconds) * 1000)):03d}"
    assert text(tags[exif.TAG_OFFSET_TIME_ORIGINAL]) == exif.capture_fields(captured_at)[2]
    name = exif.sanitize(camera_id)
    assert (text(tags[exif.TAG_DESCRIPTION]) if name else "") == name
    assert len(name) <= exif.MAX_ID and all(" " <= c <= "~" for c in name)
    assert cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR).shape == (16, 16, 3)


def test_offset_of_a_fixed_zone():
    assert exif.capture_fields(0.25, 5 * 3600 + 1800) == ("1970:01:01 05:30:00", "250", "+05:30")
    assert exif.capture_fields(0.0, -3600)[2] == "-01:00"


def test_every_frame_jpeg_carries_exif_and_non_jpeg_is_left_alone():
    frame = Frame(1, np.zeros((32, 48, 3), np.uint8), 1_700_000_000.5, picture=Picture("front-door\n\u00e9"))
    tags = read_exif(frame.jpeg(encode_jpeg, 70, 24))
    assert text(tags[exif.TAG_DESCRIPTION]) == "front-door__"
    assert text(tags[exif.TAG_SUBSEC_TIME_ORIGINAL]) == "500"
    assert exif.insert(b"RIFF....", 1.0, "x") == b"RIFF...."


def test_exif_costs_microseconds():
    image = np.random.default_rng(0).integers(0, 255, (720, 1280, 3), np.uint8)
    jpeg = encode_jpeg(image, 85)
    start = time.perf_counter()
    for _ in range(200):
        exif.insert(jpeg, 1_700_000_000.123, "front-door")
    per = (time.perf_counter() - start) / 200
    print(f"MEASURE EXIF insert into a {len(jpeg)} byte 720p JPEG: {per * 1e6:.0f} us")
    assert per < 0.005
