"""gst_buffer.mapped: a real GstBuffer (libgstreamer, PyGObject) read in place, and unmapped exactly
when the last view of it goes; then Pipeline.picture on a real decoder, in place."""

from __future__ import annotations

import gc

import numpy as np
import pytest

from rtsp2jpg.capture import gst, gst_buffer

pytestmark = pytest.mark.skipif(not gst.available(), reason="needs PyGObject with GStreamer (python3-gi)")


def _buffer(data: bytes):  # noqa: ANN202 - a Gst.Buffer
    from gi.repository import Gst

    gst._gst()
    return Gst.Buffer.new_wrapped(data)


def test_mapped_is_the_buffer_itself_read_only(monkeypatch) -> None:
    data = bytes(range(256)) * 40
    buf = _buffer(data)
    unmaps = []
    real = gst_buffer._unmap
    monkeypatch.setattr(gst_buffer, "_unmap", lambda *a: (unmaps.append(1), real(*a)))
    array = gst_buffer.mapped(buf)
    assert array is not None and array.tobytes() == data == buf.extract_dup(0, buf.get_size())
    with pytest.raises(ValueError):
        array[0] = 1  # a decoder's reference picture must never be written by a reader
    view = array[100:200].reshape(10, 10)
    del array
    gc.collect()
    assert unmaps == []  # the view still reads the mapping
    assert view[0, 0] == 100
    del view
    gc.collect()
    assert unmaps == [1]


def test_each_mapping_is_released_once() -> None:
    """Many maps of many buffers: none left mapped (GStreamer counts maps; an unbalanced unmap aborts)."""
    for n in range(200):
        buf = _buffer(bytes([n % 256]) * 4096)
        a, b = gst_buffer.mapped(buf), gst_buffer.mapped(buf)
        assert a is not None and b is not None and int(a[0]) == int(b[-1]) == n % 256
        del a, b
    gc.collect()


def test_picture_of_a_decoded_frame_is_read_in_place(monkeypatch) -> None:
    """A real decoder's I420 output, 64x48 (packed planes): Pipeline.picture gives a view of the
    buffer, equal to a copy taken with extract_dup."""
    desc = ("videotestsrc num-buffers=3 pattern=ball ! video/x-raw,format=I420,width=64,height=48 ! "
            "x264enc tune=zerolatency ! h264parse ! avdec_h264 ! video/x-raw,format=I420 ! appsink sync=false")
    try:
        pipe, sample = gst.open_pipeline(desc, "test", 10)
    except gst.PipelineError as e:
        pytest.skip(f"x264enc/avdec_h264 missing: {e}")
    maps = []
    real = gst_buffer.mapped
    monkeypatch.setattr(gst_buffer, "mapped", lambda buf: maps.append(real(buf)) or maps[-1])
    try:
        picture = pipe.picture(sample)
        buf = sample.get_buffer()
        assert picture is not None and picture.format == "I420" and picture.data.shape == (72, 64)
        assert np.array_equal(picture.data.reshape(-1), np.frombuffer(buf.extract_dup(0, buf.get_size()), np.uint8))
        assert not picture.data.flags.writeable
        assert len(maps) == 1 and maps[0] is not None and np.shares_memory(picture.data, maps[0])  # no copy
    finally:
        pipe.close()
