"""GStreamer driven directly (PyGObject): a pipeline ending in an appsink, pulled with real timeouts.

Why not OpenCV's GStreamer backend: in OpenCV 4.6 it has no open or read timeout, and a capture
blocked in grab() cannot be released from another thread. A camera (or the demo server) that
answers PLAY and then sends nothing kept a thread and a pipeline behind for ever, and that source
could not be tried again until the process restarted. Here every wait is bounded (`pull`), and
`close()` sets the pipeline to NULL, which stops rtspsrc's threads and closes its socket.

No cv2 here: `pull()` returns the appsink's raw picture (I420/NV12/BGR, planes packed without
row padding); opencv.py converts only the frames someone wants. No GLib main loop either: the bus
is drained on every pull, so its queue stays bounded.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from rtsp2jpg.capture import gst_buffer
from rtsp2jpg.urls import redact

log = logging.getLogger(__name__)

NO_PTS = (1 << 64) - 1  # GST_CLOCK_TIME_NONE: a buffer without a timestamp
_SLICE_SEC = 0.1  # longest single wait, so bus errors and close() are seen within this
_init_lock = threading.Lock()
# Pipelines whose stop is still running, by description (see Pipeline.close); at most one each.
_closing: dict[str, threading.Event] = {}
_closing_lock = threading.Lock()
_modules: tuple[Any, Any] | None = None


class PipelineError(RuntimeError):
    """The pipeline could not be built, failed, or gave no frame in time; the message is redacted."""


def available() -> bool:
    """True when PyGObject with GStreamer and GstApp is importable (Debian: python3-gi, gir1.2-gst-*)."""
    try:
        _gst()
    except (ImportError, ValueError):
        return False
    return True


def _gst() -> tuple[Any, Any]:
    """(Gst, GstVideo), initialised once. ImportError/ValueError when PyGObject or a typelib is missing."""
    global _modules
    with _init_lock:
        if _modules is None:
            import gi

            gi.require_version("Gst", "1.0")
            gi.require_version("GstApp", "1.0")
            gi.require_version("GstVideo", "1.0")
            from gi.repository import Gst, GstApp, GstVideo  # noqa: F401 - GstApp adds try_pull_sample

            Gst.init(None)
            _modules = (Gst, GstVideo)
        return _modules


@dataclass(frozen=True)
class RawPicture:
    """One decoded picture as the appsink gave it: `data` is (height * 3/2, width) for I420/NV12,
    (height, width, 3) for BGR."""

    data: np.ndarray
    format: str
    width: int
    height: int


class Pipeline:
    """One running pipeline and its appsink; pull from one thread, close from any."""

    def __init__(self, description: str, label: str, guarded: bool = True) -> None:
        gst, _ = _gst()
        self._gst = gst
        self.label = label
        self.description = description
        # Unguarded: a pipeline with no network element (a decoder fed by appsrc) cannot hang in
        # its stop, and its description is the same for every camera, so it is not tracked.
        self._guarded = guarded
        with _closing_lock:
            pending = _closing.get(description) if guarded else None
        if pending is not None and not pending.is_set():
            raise PipelineError(f"{label}: an earlier attempt on this stream is still stopping; not starting another")
        try:
            self._pipeline = gst.parse_launch(description)
        except Exception as e:  # GLib.Error: unknown element, bad syntax
            raise PipelineError(f"{label}: cannot build the pipeline: {redact(str(e))}") from None
        self._sink = _find_appsink(self._pipeline)
        if self._sink is None:
            self._pipeline.set_state(gst.State.NULL)
            raise PipelineError(f"{label}: the pipeline has no appsink")
        self._bus = self._pipeline.get_bus()
        self._closed = threading.Event()
        self._lock = threading.Lock()
        self.fps = 0.0
        self.failure = ""  # why the stream ended, once it has (bus ERROR or EOS)

    def start(self) -> None:
        if self._pipeline.set_state(self._gst.State.PLAYING) == self._gst.StateChangeReturn.FAILURE:
            self._drain_bus()
            raise PipelineError(f"{self.label}: {self.failure or 'the pipeline would not start'}")

    def pull(self, timeout: float) -> Any | None:
        """The next sample within `timeout` s, or None (stream ended, failed, stalled, or closed)."""
        deadline = time.monotonic() + timeout
        while not self._closed.is_set():
            if self._drain_bus():
                return None
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            sample = self._sink.try_pull_sample(int(min(left, _SLICE_SEC) * 1e9))
            if sample is not None:
                return sample
            if self._sink.is_eos():
                self.failure = self.failure or "end of stream"
                return None
        return None

    def element(self, name: str) -> Any | None:
        """The element called `name` (an appsrc to push into), None once closed."""
        with self._lock:
            return self._pipeline.get_by_name(name) if self._pipeline is not None else None

    def picture(self, sample: Any) -> RawPicture | None:
        """The sample's picture copied out of GStreamer's buffer, rows packed; None if unreadable."""
        _, video = _gst()
        caps = sample.get_caps()
        info = video.VideoInfo.new_from_caps(caps) if caps is not None else None
        buf = sample.get_buffer()
        if info is None or buf is None:
            return None
        if not self.fps and info.fps_d:
            self.fps = round(info.fps_n / info.fps_d, 2)
        # Read in place where the planes are already packed (the usual case: no copy at all); else
        # one copy out of the mapped buffer, or out of extract_dup where it cannot be mapped.
        raw = gst_buffer.mapped(buf)
        return _pack(raw if raw is not None else np.frombuffer(buf.extract_dup(0, buf.get_size()), np.uint8), info)

    def close(self, wait: float = 1.0) -> None:
        """Stop the pipeline (safe from any thread, safe twice): rtspsrc stops and closes its socket.

        Setting NULL normally takes milliseconds, but rtspsrc cannot interrupt a request still
        being answered: against a peer dripping a byte every 0.3 s it blocked as long as the drip
        lasted. So it runs in a thread of its own, waited for at most `wait` s; a stop still
        pending after that blocks new opens of the same description (`_closing`), so a hostile
        peer holds one pipeline and one thread per source, not one per retry.
        """
        self._closed.set()
        with self._lock:
            pipeline, self._pipeline = self._pipeline, None
        if pipeline is None:
            return
        if not self._guarded:
            pipeline.set_state(self._gst.State.NULL)
            return
        done = threading.Event()

        def stop() -> None:
            pipeline.set_state(self._gst.State.NULL)
            done.set()
            with _closing_lock:
                if _closing.get(self.description) is done:
                    del _closing[self.description]
                    log.info("%s: a stuck pipeline finally stopped", self.label)

        with _closing_lock:
            _closing[self.description] = done
        threading.Thread(target=stop, name=f"gst-stop-{self.label}", daemon=True).start()
        if not done.wait(wait):
            log.warning("%s: the pipeline is still stopping (a request to the camera is hanging); "
                        "no new attempt on this stream until it has", self.label)

    def _drain_bus(self) -> bool:
        """Pop every pending bus message (nothing else does: no main loop); True on ERROR or EOS."""
        types = self._gst.MessageType
        ended = False
        while True:
            msg = self._bus.pop()
            if msg is None:
                return ended
            if msg.type == types.ERROR:
                err, _debug = msg.parse_error()
                self.failure = redact(err.message if err else "stream error")
                ended = True
            elif msg.type == types.EOS:
                self.failure = self.failure or "end of stream"
                ended = True


def open_pipeline(description: str, label: str, timeout: float) -> tuple[Pipeline, Any]:
    """Start `description` and wait at most `timeout` s for its first sample: (pipeline, sample).

    PipelineError (redacted) when it fails, ends or gives no frame in time; the pipeline is then
    closed, so nothing is left behind.
    """
    pipe = Pipeline(description, label)
    try:
        pipe.start()
        sample = pipe.pull(timeout)
    except BaseException:
        pipe.close()
        raise
    if sample is None:
        why = pipe.failure or f"no frame within the open timeout ({timeout:g} s)"
        pipe.close()
        raise PipelineError(f"{label}: {why}")
    return pipe, sample


def _find_appsink(pipeline: Any) -> Any | None:
    it = pipeline.iterate_sinks()
    while True:
        ok, element = it.next()
        if ok != 1:  # Gst.IteratorResult.OK
            return None
        factory = element.get_factory()
        if factory is not None and factory.get_name() == "appsink":
            return element


def _pack(raw: np.ndarray, info: Any) -> RawPicture | None:
    """Planes of `raw` (laid out per `info`: strides, offsets) as one array without row padding:
    a view of `raw` when they already are, else a copy."""
    fmt = info.finfo.name
    w, h = info.width, info.height
    if fmt in ("BGR", "BGRx", "BGRA"):
        channels = 3 if fmt == "BGR" else 4
        rows = _rows(raw, info.offset[0], info.stride[0], w * channels, h)
        if rows is None:
            return None
        image = rows.reshape(h, w, channels)
        return RawPicture(image[:, :, :3] if channels == 4 else image, "BGR", w, h)
    if fmt == "I420":
        planes = [(0, w, h), (1, w // 2, h // 2), (2, w // 2, h // 2)]
    elif fmt == "NV12":
        planes = [(0, w, h), (1, w, h // 2)]
    else:
        return None
    size = w * h * 3 // 2
    packed_offsets, at = [], 0
    for _, row_bytes, rows_count in planes:
        packed_offsets.append(at)
        at += row_bytes * rows_count
    if (at == size <= raw.size and list(info.offset[:len(planes)]) == packed_offsets
            and list(info.stride[:len(planes)]) == [row_bytes for _, row_bytes, _ in planes]):
        return RawPicture(raw[:size].reshape(h * 3 // 2, w), fmt, w, h)
    parts = []
    for index, row_bytes, rows_count in planes:
        rows = _rows(raw, info.offset[index], info.stride[index], row_bytes, rows_count)
        if rows is None:
            return None
        parts.append(rows.reshape(-1))
    packed = np.concatenate(parts)
    if packed.size != size:
        return None
    return RawPicture(packed.reshape(h * 3 // 2, w), fmt, w, h)


def _rows(raw: np.ndarray, offset: int, stride: int, row_bytes: int, count: int) -> np.ndarray | None:
    """`count` rows of `row_bytes` starting at `offset`, `stride` apart, as a contiguous 2-D array."""
    if stride < row_bytes or offset + stride * (count - 1) + row_bytes > raw.size:
        return None
    if stride == row_bytes:
        return raw[offset:offset + row_bytes * count].reshape(count, row_bytes)
    view = np.lib.stride_tricks.as_strided(raw[offset:], shape=(count, row_bytes), strides=(stride, 1))
    return np.ascontiguousarray(view)
