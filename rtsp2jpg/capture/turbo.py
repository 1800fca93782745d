"""JPEG straight from the decoder's I420 planes, through libturbojpeg (ctypes; no cv2 here).

A decoded picture is YUV; OpenCV's path converts it to BGR (1.3 ms at 720p) only for libjpeg to
convert it back to YCbCr inside imencode (3.4 ms): 4.7 ms of CPU per encode, and a 2.8 MB BGR copy
kept per camera. TurboJPEG's tjCompressFromYUV takes the planes as they are (2.0 ms; same PSNR,
41.3 dB at q80 on the 720p demo frame; tests/unit/capture/test_pictures.py holds it to OpenCV's).
Hand-written rather than PyTurboJPEG: three C functions, and on a device the library comes from
the distribution (libturbojpeg0), with no wheel to build.

The planes must be full range (JFIF); video is limited range (16-235), which the caller expands
first (opencv.py: a lookup table, 0.4 ms). Without the library, `available()` is False and every
encode takes OpenCV's path.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import threading
from typing import Any

log = logging.getLogger(__name__)

LIBRARY_NAMES = ("libturbojpeg.so.0", "turbojpeg")
TJSAMP_420 = 2  # tjCompressFromYUV's subsampling of an I420 buffer
_lib: Any = None
_loaded = False
_load_lock = threading.Lock()
_local = threading.local()  # a tjhandle is not thread-safe: one per thread


def _load() -> Any:
    global _lib, _loaded
    with _load_lock:
        if _loaded:
            return _lib
        _loaded = True
        for name in LIBRARY_NAMES:
            path = name if name.endswith(".0") else ctypes.util.find_library(name)
            if not path:
                continue
            try:
                lib = ctypes.CDLL(path)  # CDLL: every call releases the GIL while libjpeg works
            except OSError:
                continue
            lib.tjInitCompress.restype = ctypes.c_void_p
            lib.tjInitCompress.argtypes = []
            lib.tjCompressFromYUV.restype = ctypes.c_int
            lib.tjCompressFromYUV.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int, ctypes.c_int,
                                              ctypes.c_int, ctypes.c_int, ctypes.POINTER(ctypes.c_void_p),
                                              ctypes.POINTER(ctypes.c_ulong), ctypes.c_int, ctypes.c_int]
            lib.tjDestroy.restype = ctypes.c_int
            lib.tjDestroy.argtypes = [ctypes.c_void_p]
            lib.tjFree.restype = None
            lib.tjFree.argtypes = [ctypes.c_void_p]
            lib.tjGetErrorStr2.restype = ctypes.c_char_p
            lib.tjGetErrorStr2.argtypes = [ctypes.c_void_p]
            _lib = lib
            break
        if _lib is None:
            log.debug("libturbojpeg not found: JPEGs are encoded from BGR by OpenCV")
        return _lib


def available() -> bool:
    """True when libturbojpeg could be loaded (checked once)."""
    return _load() is not None


class _Handle:
    """A thread's tjhandle, destroyed when the thread ends (its threading.local entry goes then):
    MJPEG viewers and other short-lived threads encode too, not only the fixed HTTP workers."""

    __slots__ = ("_lib", "value")

    def __init__(self, lib: Any) -> None:
        self._lib = lib
        self.value = lib.tjInitCompress()
        if not self.value:
            raise RuntimeError("tjInitCompress failed")

    def __del__(self) -> None:
        self._lib.tjDestroy(self.value)


def _handle(lib: Any) -> int:
    handle = getattr(_local, "handle", None)
    if handle is None:
        handle = _local.handle = _Handle(lib)
    return int(handle.value)


def encode_i420(planes: Any, width: int, height: int, quality: int) -> bytes:
    """A baseline JPEG (4:2:0) of full-range I420 `planes`: a C-contiguous uint8 array of
    width * height * 3/2 bytes, Y then U then V, rows packed (even width and height)."""
    lib = _load()
    if lib is None:
        raise RuntimeError("libturbojpeg is not available")
    if width % 2 or height % 2 or planes.nbytes != width * height * 3 // 2 or not planes.flags.c_contiguous:
        raise ValueError(f"not packed I420 of {width}x{height}")
    handle = _handle(lib)
    out, size = ctypes.c_void_p(), ctypes.c_ulong(0)
    if lib.tjCompressFromYUV(handle, planes.ctypes.data, width, 1, height, TJSAMP_420,
                             ctypes.byref(out), ctypes.byref(size), int(quality), 0) != 0:
        message = (lib.tjGetErrorStr2(handle) or b"").decode("ascii", "replace")
        if out:
            lib.tjFree(out)
        raise ValueError(f"tjCompressFromYUV failed: {message}")
    try:
        return ctypes.string_at(out, size.value)
    finally:
        lib.tjFree(out)
