"""libavcodec's H.264/H.265 decoder driven directly (ctypes), for adaptive decoding's software path.

Why not GStreamer's avdec_h264, which is the same decoder: gst-libav links libavfilter and, through
it, ~20 MB of libraries no camera uses (flite's voices, libplacebo, vulkan, pocketsphinx), all
mapped in by the first camera, and each appsrc ! parse ! avdec ! appsink pipeline cost 13.8 MB per
720p camera where this costs 8.6 (bench/memory.py). Access units come from receivers.py already
whole (Annex B, parameter sets before every keyframe), so no parser is needed either: one unit is
one packet.

Hand-written rather than PyAV: about fifteen C functions, and on a device libavcodec comes from the
distribution (OpenCV and GStreamer link it already), with no wheel to build against it. Only
fields at the start of AVFrame and AVPacket are read or written; they have not moved since FFmpeg 4
(libavcodec 58), and other major versions are refused (`available()` is then False).

Every call releases the GIL (ctypes.CDLL) while the decoder works; one thread decodes (a frame of
delay per thread saved, and cameras decode in parallel anyway: DESIGN 9).
"""

from __future__ import annotations

import ctypes
import logging
import re
import threading
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from rtsp2jpg.capture.gst import RawPicture

log = logging.getLogger(__name__)

CODEC_IDS = {"h264": 27, "h265": 173}  # AV_CODEC_ID_H264, AV_CODEC_ID_HEVC
SUPPORTED_MAJORS = range(58, 63)  # FFmpeg 4 to 8: the AVFrame/AVPacket fields below are the same
# AVFrame: uint8_t *data[8]; int linesize[8]; uint8_t **extended_data; int width, height, nb_samples, format
_F_LINESIZE, _F_WIDTH, _F_HEIGHT, _F_FORMAT = 64, 104, 108, 116
# AVPacket: AVBufferRef *buf; int64_t pts, dts; uint8_t *data; int size
_P_PTS, _P_DATA = 8, 24
# AV_PIX_FMT_YUV420P, and YUVJ420P (the same planes, full range: JPEG cameras' MJPEG-style H.264)
I420_FORMATS = {0: "I420", 12: "I420"}
_EAGAIN = -11
_INVALIDDATA = -0x41444E49  # AVERROR_INVALIDDATA, FFERRTAG('I','N','D','A')
_NOPTS = -0x8000000000000000  # AV_NOPTS_VALUE

_libs: tuple[Any, Any] | None = None
_loaded = False
_load_lock = threading.Lock()


def _bind(lib: Any, name: str, restype: Any, *argtypes: Any) -> None:
    fn = getattr(lib, name)
    fn.restype, fn.argtypes = restype, list(argtypes)


def _open_pair() -> tuple[Any, Any] | None:
    """libavcodec and its libavutil (major - 2) by soname, the one OpenCV or GStreamer already mapped
    first: no second copy, and no `ldconfig -p` subprocess (ctypes.util.find_library) at start."""
    try:
        maps = Path("/proc/self/maps").read_text()
    except OSError:
        maps = ""
    mapped = [int(m) for m in re.findall(r"libavcodec\.so\.(\d+)", maps) if int(m) in SUPPORTED_MAJORS]
    for major in dict.fromkeys(mapped + sorted(SUPPORTED_MAJORS, reverse=True)):
        try:
            return ctypes.CDLL(f"libavcodec.so.{major}"), ctypes.CDLL(f"libavutil.so.{major - 2}")
        except OSError:
            continue
    return None


def _load() -> tuple[Any, Any] | None:
    """(libavcodec, libavutil), loaded once; None when missing or of an unknown major version."""
    global _libs, _loaded
    with _load_lock:
        if _loaded:
            return _libs
        _loaded = True
        found = _open_pair()
        if found is None:
            log.debug("libavcodec not found: software decoding goes through GStreamer's avdec")
            return None
        codec, util = found
        p, vp = ctypes.c_void_p, ctypes.POINTER(ctypes.c_void_p)
        _bind(codec, "avcodec_version", ctypes.c_uint)
        major = codec.avcodec_version() >> 16
        if major not in SUPPORTED_MAJORS:
            log.info("libavcodec %d is not one this build knows: software decoding goes through GStreamer", major)
            return None
        _bind(codec, "avcodec_find_decoder", p, ctypes.c_int)
        _bind(codec, "avcodec_alloc_context3", p, p)
        _bind(codec, "avcodec_open2", ctypes.c_int, p, p, p)
        _bind(codec, "avcodec_free_context", None, vp)
        _bind(codec, "avcodec_send_packet", ctypes.c_int, p, p)
        _bind(codec, "avcodec_receive_frame", ctypes.c_int, p, p)
        _bind(codec, "av_packet_alloc", p)
        _bind(codec, "av_new_packet", ctypes.c_int, p, ctypes.c_int)
        _bind(codec, "av_packet_unref", None, p)
        _bind(codec, "av_packet_free", None, vp)
        _bind(util, "av_frame_alloc", p)
        _bind(util, "av_frame_unref", None, p)
        _bind(util, "av_frame_move_ref", None, p, p)
        _bind(util, "av_frame_free", None, vp)
        _bind(util, "av_opt_set", ctypes.c_int, p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_int)
        _bind(util, "av_strerror", ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_size_t)
        _libs = (codec, util)
        return _libs


def available() -> bool:
    """True when a libavcodec of a known major version could be loaded (checked once)."""
    return _load() is not None


class DecoderError(RuntimeError):
    """The decoder could not be set up, or failed in a way feeding it more will not mend."""


def _error(util: Any, code: int) -> str:
    text = ctypes.create_string_buffer(128)
    util.av_strerror(code, text, len(text))
    return text.value.decode("ascii", "replace") or f"error {code}"


class Decoder:
    """One camera's libavcodec decoder: `decode()` units in, the newest picture out.

    decode and picture from one thread, close from any (a lock keeps close from freeing the decoder
    under a running call). A sample is the number of the newest decoded picture: `picture()` copies
    it out only if nothing newer replaced it.
    """

    def __init__(self, codec: str, label: str) -> None:
        self._lock = threading.Lock()
        self._ctx = self._frame = self._newest = self._packet = None
        libs = _load()
        if libs is None or codec not in CODEC_IDS:
            raise DecoderError(f"{label}: libavcodec cannot decode {codec or 'this stream'} here")
        self._codec, self._util = libs
        self.label = label
        self.failure = ""
        self.invalid = 0  # units the decoder rejected as invalid data (skipped, not fatal)
        self._count = 0  # pictures decoded; the current one is the sample
        found = self._codec.avcodec_find_decoder(CODEC_IDS[codec])
        ctx = self._codec.avcodec_alloc_context3(found) if found else None
        if not ctx:
            raise DecoderError(f"{label}: this libavcodec has no {codec} decoder")
        self._ctx = ctypes.c_void_p(ctx)
        # One thread (see above); no grey concealment pictures from a stream joined between keyframes.
        for key, value in ((b"threads", b"1"), (b"flags", b"-output_corrupt")):
            self._util.av_opt_set(self._ctx, key, value, 0)
        code = self._codec.avcodec_open2(self._ctx, found, None)
        self._frame = ctypes.c_void_p(self._util.av_frame_alloc())
        self._newest = ctypes.c_void_p(self._util.av_frame_alloc())
        self._packet = ctypes.c_void_p(self._codec.av_packet_alloc())
        if code < 0 or not (self._frame and self._newest and self._packet):
            self.close()
            raise DecoderError(f"{label}: cannot open the {codec} decoder: {_error(self._util, code)}")

    def start(self) -> None:
        """Nothing to start (the seam gst_demand.Decoder has it for GStreamer's pipeline)."""

    def set_caps(self, caps: Any) -> None:
        """Nothing to tell: the parameter sets in the stream say the size and profile."""

    def decode(self, units: Iterable[Any], timeout: float = 0.0) -> int | None:
        """Decode `units` (gop.Units of Annex B bytes, or Gst.Buffers) in order: the newest picture
        they completed, None if none (a decoder holding a picture back for B-frames gives it with
        the next unit). `failure` is set when the decoder cannot go on."""
        before = self._count
        for unit in units:
            data = _bytes(unit.data)
            # An empty packet is libavcodec's "end of stream": the decoder would take nothing more.
            if data and not self._send(data, unit.pts):
                return None
        return self._count if self._count != before else None

    def picture(self, sample: Any) -> RawPicture | None:
        """The newest picture as packed I420 (a copy: the decoder reuses its buffers); None when
        `sample` is no longer the newest or its layout is not 4:2:0 8-bit."""
        with self._lock:
            if sample != self._count or not self._newest:
                return None
            return _copy_i420(self._newest.value)

    def close(self, wait: float = 1.0) -> None:
        """Free the decoder (safe twice, safe from any thread)."""
        with self._lock:
            if self._ctx:
                self._codec.avcodec_free_context(ctypes.byref(self._ctx))
            for frame in (self._frame, self._newest):
                if frame:
                    self._util.av_frame_free(ctypes.byref(frame))
            if self._packet:
                self._codec.av_packet_free(ctypes.byref(self._packet))
            self._ctx = self._frame = self._newest = self._packet = None

    def __del__(self) -> None:
        self.close()

    # -- internals ---------------------------------------------------------------------------------

    def _send(self, data: bytes, pts: int | None) -> bool:
        """One access unit in, every picture it completes out (the newest kept); False on failure."""
        with self._lock:
            if not self._ctx:
                self.failure = "closed"
                return False
            pkt = self._packet.value
            if self._codec.av_new_packet(pkt, len(data)) < 0:
                self.failure = "out of memory"
                return False
            ctypes.memmove(ctypes.c_void_p.from_address(pkt + _P_DATA).value, data, len(data))
            ctypes.c_int64.from_address(pkt + _P_PTS).value = pts if pts is not None else _NOPTS
            code = self._codec.avcodec_send_packet(self._ctx, pkt)
            self._codec.av_packet_unref(pkt)
            if code == _INVALIDDATA:
                self.invalid += 1  # a damaged unit: the decoder conceals it or waits for a keyframe
            elif code < 0 and code != _EAGAIN:
                self.failure = f"decoder: {_error(self._util, code)}"
                return False
            while (code := self._codec.avcodec_receive_frame(self._ctx, self._frame)) >= 0:
                self._util.av_frame_unref(self._newest)
                self._util.av_frame_move_ref(self._newest, self._frame)
                self._count += 1
            if code not in (_EAGAIN, _INVALIDDATA):
                self.failure = f"decoder: {_error(self._util, code)}"
                return False
            return True


def _bytes(data: Any) -> bytes:
    """Our RTSP client's units are bytes; rtspsrc's are Gst.Buffers (copied out once here)."""
    return data if isinstance(data, (bytes, bytearray)) else data.extract_dup(0, data.get_size())


def _copy_i420(frame: int) -> RawPicture | None:
    """AVFrame `frame`'s three planes (rows `linesize` apart) packed into one (h * 3/2, w) array."""
    fmt = I420_FORMATS.get(ctypes.c_int.from_address(frame + _F_FORMAT).value)
    w = ctypes.c_int.from_address(frame + _F_WIDTH).value
    h = ctypes.c_int.from_address(frame + _F_HEIGHT).value
    if fmt is None or w <= 0 or h <= 0 or w % 2 or h % 2:
        return None
    data = (ctypes.c_void_p * 3).from_address(frame)
    strides = (ctypes.c_int * 3).from_address(frame + _F_LINESIZE)
    out = np.empty((h * 3 // 2, w), np.uint8)
    flat, at = out.reshape(-1), 0
    for plane, (row_bytes, rows) in enumerate(((w, h), (w // 2, h // 2), (w // 2, h // 2))):
        stride = strides[plane]
        if not data[plane] or stride < row_bytes:
            return None
        src = np.ctypeslib.as_array((ctypes.c_uint8 * (stride * (rows - 1) + row_bytes)).from_address(data[plane]))
        view = np.lib.stride_tricks.as_strided(src, shape=(rows, row_bytes), strides=(stride, 1))
        flat[at:at + row_bytes * rows].reshape(rows, row_bytes)[:] = view
        at += row_bytes * rows
    return RawPicture(out, fmt, w, h)
