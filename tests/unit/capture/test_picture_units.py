"""Privacy masks, crop and rotation as pure functions: polygons rasterise to what they outline,
bad input is a ValueError (never anything else), and the encode cache stays bounded."""

from __future__ import annotations

import json

import numpy as np
from hypothesis import example, given, settings
from hypothesis import strategies as st

from rtsp2jpg.capture.frames import EncodeBudget, Frame, FrameSlot
from rtsp2jpg.capture.masks import MAX_POLYGONS, parse_polygons, rasterise
from rtsp2jpg.capture.view import (
    Picture,
    View,
    crop_rotate,
    parse_crop,
    parse_rotate,
    parse_settings,
    transformed_size,
)

fractions = st.floats(0, 1, allow_nan=False)
json_values = st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=5),
                           lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=5), inner,
                                                                                        max_size=3), max_leaves=30)


@given(json_values)
@example(float("inf"))  # JSON 1e999: int(inf) raised OverflowError (a 500 on POST /register)
def test_parsers_raise_only_value_error(raw):
    for parse in (parse_polygons, parse_crop, parse_rotate):
        try:
            parse(raw)
        except ValueError:
            pass


@given(st.text(max_size=40))
def test_crop_from_any_query_string_is_valid_or_a_value_error(raw):
    try:
        crop = parse_crop(raw)
    except ValueError:
        return
    if crop:
        x, y, w, h = crop
        assert 0 <= x and 0 <= y and w > 0 and h > 0 and x + w <= 1.0001 and y + h <= 1.0001


@settings(max_examples=60, deadline=None)
@given(x0=fractions, y0=fractions, x1=fractions, y1=fractions,
       w=st.integers(8, 200), h=st.integers(8, 200))
def test_a_rectangle_covers_at_least_its_pixels(x0, y0, x1, y1, w, h):
    xa, xb, ya, yb = min(x0, x1), max(x0, x1), min(y0, y1), max(y0, y1)
    (poly,) = parse_polygons([[[xa, ya], [xb, ya], [xb, yb], [xa, yb]]])
    mask = rasterise((poly,), w, h)
    # every pixel whose area lies inside the rectangle is masked ...
    cols = (np.arange(w) >= xa * w) & (np.arange(w) + 1 <= xb * w)
    rows = (np.arange(h) >= ya * h) & (np.arange(h) + 1 <= yb * h)
    assert mask[np.ix_(rows, cols)].all()
    # ... and nothing a pixel away from it
    far_cols = (np.arange(w) + 1 < xa * w - 1) | (np.arange(w) > xb * w + 1)
    far_rows = (np.arange(h) + 1 < ya * h - 1) | (np.arange(h) > yb * h + 1)
    assert not mask[far_rows, :].any() and not mask[:, far_cols].any()


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(fractions, fractions), min_size=3, max_size=12), st.integers(16, 120))
def test_masked_pixels_are_black_and_the_rest_untouched(points, size):
    polys = parse_polygons([[list(p) for p in points]])
    image = np.full((size, size + 7, 3), 200, np.uint8)
    out = Picture("cam", "", polys).prepare(image.copy())
    mask = rasterise(polys, size + 7, size)
    assert (out[mask] == 0).all() and (out[~mask] == 200).all()


def test_polygon_limits_and_messages():
    square = [[0, 0], [1, 0], [1, 1], [0, 1]]
    assert len(parse_polygons([square] * MAX_POLYGONS)) == MAX_POLYGONS
    for bad, word in [([square] * (MAX_POLYGONS + 1), "at most"), ([[[0, 0], [1, 1]]], "polygon 0"),
                      ([square, [[0, 0], [1, 0], [0.5, 1.5]]], "polygon 1, point 2"),
                      ([[[0, 0], [1, 0], [float("nan"), 1]]], "point 2"), ("x", "list")]:
        try:
            parse_polygons(bad)
        except ValueError as e:
            assert word in str(e)
        else:
            raise AssertionError(bad)


def test_settings_round_trip_through_json():
    s = parse_settings({"privacy_masks": [[[0, 0], [1, 0], [0, 1]]], "rotate": "90", "crop": "0,0,0.5,1"})
    picture = Picture.from_settings("cam", "", s)
    assert Picture.from_json("cam", "", json.dumps(picture.settings())).settings() == picture.settings()
    # A damaged registry row fails closed: the whole picture is masked.
    broken = Picture.from_json("cam", "", "{not json")
    assert (broken.prepare(np.full((4, 4, 3), 9, np.uint8)) == 0).all()


@given(st.sampled_from((0, 90, 180, 270)), st.one_of(st.just(()), st.tuples(
    st.floats(0, 0.5), st.floats(0, 0.5), st.floats(0.01, 0.5), st.floats(0.01, 0.5))))
def test_transformed_size_is_the_size_of_the_transformed_image(rotate, crop):
    image = np.zeros((90, 160, 3), np.uint8)
    crop = parse_crop(list(crop)) if crop else ()
    out = crop_rotate(image, crop, rotate)
    assert out.shape[1::-1] == transformed_size(160, 90, crop, rotate)


def test_rotation_is_clockwise():
    image = np.zeros((2, 3), np.uint8)
    image[0, 0] = 1  # top left
    assert crop_rotate(image, (), 90)[0, -1] == 1  # goes top right


def test_slot_masks_every_frame_and_the_cache_stays_bounded():
    calls = []

    def encode(image, quality, width, height, **kw):
        calls.append(kw)
        return bytes([int(image.max())]) * 100

    budget = EncodeBudget(max_bytes=10_000, per_frame=4)
    slot = FrameSlot(budget, Picture("cam", "", parse_polygons([[[0, 0], [1, 0], [1, 1], [0, 1]]])))
    slot.put(Frame(1, np.full((20, 30, 3), 255, np.uint8), 0.0, budget))
    frame = slot.latest()
    assert frame is not None and frame.picture is not None and frame.image.max() == 0
    for i in range(200):  # distinct views: rotations, crops, formats, sizes
        view = View(fmt=("jpeg", "webp", "png")[i % 3], quality=1 + i % 100, width=1 + i % 30,
                    rotate=(0, 90, 180, 270)[i % 4], crop=parse_crop(f"0,0,{0.1 + i / 400:.4f},1"))
        assert frame.encode(encode, view) == b"\x00" * 100
    assert budget.entries() <= 4 and budget.bytes <= 10_000
    assert frame.encode(encode, View(quality=85)) == frame.encode(encode, View(quality=85))


def test_masks_cost_a_fraction_of_a_millisecond_per_frame():
    import time

    picture = Picture("cam", "", parse_polygons([[[0, 0], [0.5, 0], [0.5, 0.5], [0, 0.5]],
                                                 [[0.6, 0.6], [0.9, 0.7], [0.8, 0.95]]]))
    image = np.random.default_rng(0).integers(0, 255, (720, 1280, 3), np.uint8)
    start = time.perf_counter()
    picture.prepare(image)  # the first frame of a size rasterises the mask
    first = time.perf_counter() - start
    start = time.perf_counter()
    for _ in range(50):
        picture.prepare(image)
    per = (time.perf_counter() - start) / 50
    print(f"MEASURE privacy masks at 720p: first frame {first * 1000:.1f} ms, then {per * 1000:.2f} ms per frame")
    assert per < 0.005
