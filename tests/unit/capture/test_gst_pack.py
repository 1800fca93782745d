"""gst._pack: a picture's planes out of GStreamer's layout (strides, offsets) without row padding,
in place when they are packed already. Pure numpy, no GStreamer: `info` is a stand-in with the
fields of GstVideo.VideoInfo that _pack reads."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from rtsp2jpg.capture.gst import _pack


@dataclass
class _Format:
    name: str


@dataclass
class _Info:
    finfo: _Format
    width: int
    height: int
    offset: list[int]
    stride: list[int]


def _layout(fmt: str, w: int, h: int, pad: int) -> tuple[bytes, _Info, np.ndarray]:
    """A buffer with `pad` junk bytes after every row, and the packed picture it holds."""
    rng = np.random.default_rng(w * 1000 + h + pad)
    planes = {"I420": [(w, h), (w // 2, h // 2), (w // 2, h // 2)], "NV12": [(w, h), (w, h // 2)],
              "BGR": [(w * 3, h)]}[fmt]
    data, offsets, strides, packed = b"", [], [], []
    for row_bytes, rows in planes:
        plane = rng.integers(0, 256, (rows, row_bytes), dtype=np.uint8)
        padded = np.concatenate([plane, np.full((rows, pad), 7, np.uint8)], axis=1)
        offsets.append(len(data))
        strides.append(row_bytes + pad)
        data += padded.tobytes()
        packed.append(plane.reshape(-1))
    expected = np.concatenate(packed)
    expected = expected.reshape(h, w, 3) if fmt == "BGR" else expected.reshape(h * 3 // 2, w)
    return data, _Info(_Format(fmt), w, h, offsets, strides), expected


@settings(max_examples=60, deadline=None)
@given(fmt=st.sampled_from(["I420", "NV12", "BGR"]), w=st.integers(1, 40).map(lambda n: n * 2),
       h=st.integers(1, 30).map(lambda n: n * 2), pad=st.sampled_from([0, 1, 3, 16]))
def test_pack_removes_row_padding_for_any_layout(fmt: str, w: int, h: int, pad: int) -> None:
    data, info, expected = _layout(fmt, w, h, pad)
    raw = np.frombuffer(data, np.uint8)
    picture = _pack(raw, info)
    assert picture is not None and picture.format == fmt and (picture.width, picture.height) == (w, h)
    assert np.array_equal(picture.data, expected)
    assert picture.data.flags["C_CONTIGUOUS"]
    # Packed planes are the buffer itself (no copy); padded rows are copied out.
    assert np.shares_memory(picture.data, raw) == (pad == 0)


def test_pack_copies_planes_that_are_packed_but_out_of_order() -> None:
    """Strides without padding are not enough: V before U (offsets swapped) must not be read as U, V."""
    data, info, expected = _layout("I420", 16, 8, 0)
    w, h = 16, 8
    y, u, v = data[:w * h], data[w * h:w * h + w * h // 4], data[w * h + w * h // 4:]
    swapped = y + v + u
    info.offset = [0, w * h + w * h // 4, w * h]
    picture = _pack(np.frombuffer(swapped, np.uint8), info)
    assert picture is not None and np.array_equal(picture.data, expected)


def test_pack_refuses_a_short_buffer_and_unknown_formats() -> None:
    data, info, _ = _layout("I420", 64, 36, 4)
    assert _pack(np.frombuffer(data[:-5], np.uint8), info) is None  # V's last row (32 bytes + 4 of padding)
    info.finfo = _Format("YUY2")
    assert _pack(np.frombuffer(data, np.uint8), info) is None
    packed, info, _ = _layout("NV12", 64, 36, 0)
    assert _pack(np.frombuffer(packed[:-1], np.uint8), info) is None  # packed, but one byte short
