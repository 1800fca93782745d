"""Which stream answers a request (capture/streams.py): pure logic over the streams' picture sizes."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rtsp2jpg.capture import streams
from rtsp2jpg.capture.status import Stats, Status


def camera(main: tuple[int, int] = (1920, 1080), sub: tuple[int, int] | None = (640, 360)) -> SimpleNamespace:
    def stream(cid: str, size: tuple[int, int]) -> SimpleNamespace:
        frame = SimpleNamespace(width=size[0], height=size[1]) if size[0] else None
        return SimpleNamespace(id=cid, url=f"rtsp://u:pw@h/{cid}", status=Status.ACTIVE, error="",
                               stats=Stats(width=size[0], height=size[1]), sub=None,
                               slot=SimpleNamespace(latest=lambda: frame))

    cam = stream("cam", main)
    cam.sub = stream("cam.sub", sub) if sub else None
    return cam


def test_no_size_is_the_main_stream_and_a_small_size_the_sub_stream() -> None:
    cam = camera()
    assert streams.pick(cam, None) is cam
    assert streams.pick(cam, None, width=320) is cam.sub
    assert streams.pick(cam, None, width=640, height=360) is cam.sub
    assert streams.pick(cam, None, width=641) is cam
    assert streams.pick(cam, None, height=361) is cam


def test_crop_and_rotation_count_against_the_sub_stream() -> None:
    cam = camera()
    assert streams.pick(cam, None, width=320, crop=(0, 0, 0.5, 1)) is cam.sub  # 320 wide after the crop
    assert streams.pick(cam, None, width=321, crop=(0, 0, 0.5, 1)) is cam
    assert streams.pick(cam, None, width=360, rotate=90) is cam.sub  # 360x640 upright
    assert streams.pick(cam, None, width=400, rotate=90) is cam


def test_the_sub_streams_stored_picture_counts_after_the_cameras_own_rotation() -> None:
    cam = camera(sub=(360, 640))  # the slot holds pictures the camera's `rotate: 90` has turned
    assert streams.pick(cam, None, width=360) is cam.sub
    assert streams.pick(cam, None, width=400) is cam


def test_a_named_stream_wins_and_sub_needs_one() -> None:
    cam = camera()
    assert streams.pick(cam, "main", width=100) is cam
    assert streams.pick(cam, "sub") is cam.sub
    single = camera(sub=None)
    assert streams.pick(single, None, width=100) is single
    assert streams.pick(single, "main") is single
    with pytest.raises(LookupError, match="no sub stream"):
        streams.pick(single, "sub")


def test_a_sub_stream_without_a_picture_or_down_sends_requests_to_main() -> None:
    cam = camera(sub=(0, 0))
    assert streams.pick(cam, None, width=10) is cam
    cam = camera()
    cam.sub.status = Status.CONNECTING  # its last picture's size is still known, but it is old
    assert streams.pick(cam, None, width=10) is cam
    assert streams.pick(cam, "sub") is cam.sub  # asked for by name: the caller gets what the sub stream has


@given(st.integers(0, 4000), st.integers(0, 4000))
def test_the_answer_is_the_smallest_stream_that_satisfies_the_size(width: int, height: int) -> None:
    cam = camera()
    got = streams.pick(cam, None, width, height)
    fits = width <= 640 and height <= 360 and (width or height)
    assert got is (cam.sub if fits else cam)


def test_views_show_both_streams_without_passwords() -> None:
    cam = camera()
    view = streams.streams_view(cam)["streams"]
    assert (view["main"]["width"], view["sub"]["width"]) == (1920, 640)
    assert streams.urls_view(cam) == {"streams": {"main": "rtsp://u:***@h/cam", "sub": "rtsp://u:***@h/cam.sub"}}
    assert streams.streams_view(camera(sub=None)) == {} == streams.urls_view(camera(sub=None))


def test_parse_stream_refuses_anything_else() -> None:
    assert streams.parse_stream("sub") == "sub"
    for bad in ("SUB", "main ", "third", ""):
        with pytest.raises(ValueError, match="must be one of main, sub"):
            streams.parse_stream(bad)
