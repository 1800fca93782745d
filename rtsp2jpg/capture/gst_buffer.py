"""A decoded GstBuffer read in place: its memory as a read-only numpy array, mapped while any view lives.

Why: `Gst.Buffer.extract_dup` made two full copies of every picture (GLib's, then PyGObject's bytes),
and packing the planes a third, with the GIL held; under a snapshot flood that was 10% of the
GIL-held samples. With the service's fixed mmap threshold (process/malloc.py) each of those
1.4 MB copies was also a fresh mapping, paid for in page faults on every frame. `Gst.Buffer.map`
would do this, but its `data` is a buffer only with gst-python's overrides (not a dependency);
without them it is a list of ints. So libgstreamer's gst_buffer_map is called through ctypes.

Holding a decoder's buffer is safe: the decoder only reads its reference pictures, GStreamer's
video pools grow rather than block when downstream keeps buffers (checked: 60 held, no stall),
and the array is read-only, so no reader can write into a picture the decoder still predicts from.
"""

from __future__ import annotations

import ctypes
import logging
import threading
import weakref
from typing import Any

import numpy as np

log = logging.getLogger(__name__)

_MAP_READ = 1  # GST_MAP_READ


class _MapInfo(ctypes.Structure):
    """GstMapInfo (gst/gstmemory.h), stable since GStreamer 1.0."""

    _fields_ = [("memory", ctypes.c_void_p), ("flags", ctypes.c_int), ("data", ctypes.c_void_p),
                ("size", ctypes.c_size_t), ("maxsize", ctypes.c_size_t), ("user_data", ctypes.c_void_p * 4),
                ("_gst_reserved", ctypes.c_void_p * 4)]


_lock = threading.Lock()
_lib: Any = None  # libgstreamer through ctypes; False once it could not be loaded


def _gst_lib() -> Any | None:
    global _lib
    with _lock:
        if _lib is None:
            try:
                lib = ctypes.CDLL("libgstreamer-1.0.so.0")
                lib.gst_buffer_map.argtypes = [ctypes.c_void_p, ctypes.POINTER(_MapInfo), ctypes.c_int]
                lib.gst_buffer_map.restype = ctypes.c_int
                lib.gst_buffer_unmap.argtypes = [ctypes.c_void_p, ctypes.POINTER(_MapInfo)]
                lib.gst_buffer_unmap.restype = None
                lib.gst_buffer_get_size.argtypes = [ctypes.c_void_p]
                lib.gst_buffer_get_size.restype = ctypes.c_size_t
                _lib = lib
            except (OSError, AttributeError):
                log.debug("libgstreamer not loadable by ctypes; decoded pictures are copied out instead")
                _lib = False
        return _lib or None


def _unmap(lib: Any, buf: Any, info: _MapInfo) -> None:
    lib.gst_buffer_unmap(hash(buf), ctypes.byref(info))  # `buf` kept the GstBuffer alive until here


def mapped(buf: Any) -> np.ndarray | None:
    """The bytes of `buf` (a Gst.Buffer) as a read-only uint8 array without a copy; the buffer stays
    mapped and referenced until that array and every view of it are gone. None where the buffer
    cannot be mapped this way (the caller copies it out instead)."""
    lib = _gst_lib()
    if lib is None:
        return None
    # PyGObject hashes a boxed value by its C pointer (pygboxed.c; NVIDIA's DeepStream bindings
    # take GstBuffer pointers the same way). Checked against the buffer's own size before mapping.
    ptr = hash(buf)
    if ptr == 0 or lib.gst_buffer_get_size(ptr) != buf.get_size():
        return None
    info = _MapInfo()
    if not lib.gst_buffer_map(ptr, ctypes.byref(info), _MAP_READ):
        return None
    if not info.data or info.size == 0:
        lib.gst_buffer_unmap(ptr, ctypes.byref(info))
        return None
    memory = (ctypes.c_uint8 * info.size).from_address(info.data)
    weakref.finalize(memory, _unmap, lib, buf, info).atexit = False  # never into GStreamer at exit
    array = np.frombuffer(memory, np.uint8)
    array.flags.writeable = False
    return array
