"""FrameSlot: the newest frame of one camera, written by its thread, read by HTTP and MQTT.

The camera thread decodes every frame but takes one only when a reader asked for something
newer than the slot holds (`wanted`), kept in the decoder's YUV where the source gives YUV (BGR is
made only for what needs it: see Frame.image); JPEG encoding happens in the reader, once per
(frame, quality, output size), shared by every reader of that frame. Encodings are cached in one
process-wide EncodeBudget: a few per frame and a byte budget in all, so no stream of distinct
`?q=&width=&height=` requests can grow memory (1,000 of them on one pinned frame grew RSS by 104 MB).
"""

from __future__ import annotations

import threading
import time
import weakref
from collections import OrderedDict, deque
from collections.abc import Callable
from itertools import count
from typing import Any, Protocol

from rtsp2jpg.capture import exif
from rtsp2jpg.capture.view import Picture, View, crop_rotate, transformed_size

Encoder = Callable[..., bytes]  # (BGR image or Planes, quality, width, height[, fmt=, stamp=]) -> bytes
Key = tuple[Any, ...]  # (format, quality, output width, output height, rotate, crop, stamp)

PER_FRAME = 4  # encodings kept per frame: the default size plus a few thumbnails
DEFAULT_BUDGET_BYTES = 32 * 1024 * 1024


def fit_size(w: int, h: int, width: int = 0, height: int = 0) -> tuple[int, int]:
    """The output size of a (w, h) image asked to fit `width` x `height` (0 = any), keeping the
    aspect ratio and never enlarging: a request above the frame is the frame's own size."""
    if not (width or height):
        return w, h
    scale = min(width / w if width else 1e9, height / h if height else 1e9)
    if scale >= 1.0:
        return w, h
    return max(1, round(w * scale)), max(1, round(h * scale))


class Planes(Protocol):
    """A picture in the decoder's YUV layout (opencv.YuvPicture): half the bytes of BGR, and a plain
    JPEG is encoded from it without converting (turbo.py). BGR is made on demand, never kept."""

    width: int
    height: int

    def bgr(self) -> Any: ...
    def grey(self) -> Any: ...


Pixels = Any  # a BGR ndarray (height, width, 3), or Planes


def bgr_of(pixels: Pixels) -> Any:
    """The picture as BGR: converted from Planes on each call (1.3 ms at 720p), a BGR image as it is."""
    return pixels.bgr() if hasattr(pixels, "bgr") else pixels


def grey_of(pixels: Pixels) -> Any:
    """Something to measure grey levels on: the Y plane of Planes, a BGR image as it is."""
    return pixels.grey() if hasattr(pixels, "grey") else pixels


def size_of(pixels: Pixels) -> tuple[int, int]:
    """(width, height) of Planes or of a BGR image."""
    if hasattr(pixels, "bgr"):
        return pixels.width, pixels.height
    height, width = pixels.shape[:2]
    return width, height


def looks_blank(image: Pixels) -> bool:
    """FFmpeg conceals what it cannot decode (no keyframe yet, garbled references) as flat mid-grey.

    Such a frame is a decode error, not a picture: never cache it. A sparse sample keeps this cheap
    (~3,600 pixels of a 640x360 frame); a real scene has far more texture and sensor noise.
    """
    sample = grey_of(image)[::8, ::8]
    return float(sample.std()) < 2.0 and abs(float(sample.mean()) - 128.0) < 12.0


class EncodeBudget:
    """The JPEG cache of every frame of every camera: LRU per frame (`per_frame` entries) and LRU
    across frames (`max_bytes` in all). One per Service, handed to each camera's FrameSlot.

    Only readers take its lock, briefly, never while encoding. A frame that dies (replaced in its
    slot) takes its entries with it: its weakref callback queues its token on a deque, which needs no
    lock, so the camera thread that dropped the frame never waits here; the next reader drains it.
    """

    def __init__(self, max_bytes: int = DEFAULT_BUDGET_BYTES, per_frame: int = PER_FRAME) -> None:
        self.max_bytes = max_bytes
        self.per_frame = max(1, per_frame)
        self.bytes = 0
        self._lock = threading.Lock()
        self._lru: OrderedDict[tuple[int, Key], int] = OrderedDict()  # (token, key) -> size, oldest first
        self._frames: dict[int, OrderedDict[Key, bytes]] = {}  # token -> that frame's encodings
        self._refs: dict[int, weakref.ref[Frame]] = {}
        self._dead: deque[int] = deque()
        self._tokens = count(1)

    def get(self, frame: Frame, key: Key) -> bytes | None:
        token = frame._token
        if token is None:
            return None
        with self._lock:
            self._drain()
            entries = self._frames.get(token)
            data = None if entries is None else entries.get(key)
            if entries is not None and data is not None:
                entries.move_to_end(key)
                self._lru.move_to_end((token, key))
            return data

    def put(self, frame: Frame, key: Key, data: bytes) -> None:
        """Cache `data` unless it alone exceeds the budget; evict the least recently used to fit."""
        size = len(data)
        with self._lock:
            self._drain()
            if size > self.max_bytes:
                return  # served, not cached: one oversized encoding must not flush everything else
            token = frame._token
            if token is None:
                token = frame._token = next(self._tokens)
                self._refs[token] = weakref.ref(frame, lambda _ref, t=token: self._dead.append(t))
            entries = self._frames.setdefault(token, OrderedDict())
            if key in entries:
                return
            entries[key] = data
            self._lru[(token, key)] = size
            self.bytes += size
            while len(entries) > self.per_frame:
                self._evict(token, next(iter(entries)))
            while self.bytes > self.max_bytes:
                self._evict(*next(iter(self._lru)))

    def entries(self) -> int:
        with self._lock:
            self._drain()
            return len(self._lru)

    def _evict(self, token: int, key: Key) -> None:
        self.bytes -= self._lru.pop((token, key))
        entries = self._frames[token]
        del entries[key]
        if not entries:
            del self._frames[token]

    def _drain(self) -> None:
        """Forget the entries of frames that died (called with the lock held)."""
        while self._dead:
            token = self._dead.popleft()
            self._refs.pop(token, None)
            for key in list(self._frames.get(token, ())):
                self._evict(token, key)


class Frame:
    """One converted frame; immutable. Its JPEG encodings live in the EncodeBudget it was made with."""

    __slots__ = ("seq", "pixels", "captured_at", "width", "height", "picture", "_budget", "_token", "_lock",
                 "__weakref__")

    def __init__(self, seq: int, image: Pixels, captured_at: float, budget: EncodeBudget | None = None,
                 picture: Picture | None = None) -> None:
        self.seq = seq
        self.pixels = image  # BGR, or Planes: what the camera retrieved, as it came
        self.captured_at = captured_at  # epoch seconds when the frame was grabbed
        self.picture = picture  # the camera's settings: id for EXIF, name and default of the time stamp
        self.width, self.height = size_of(image)
        self._budget = budget if budget is not None else EncodeBudget()
        self._token: int | None = None  # set by the budget on the first cached encoding
        # Per-frame lock: two readers of the same frame wait for one encode instead of doing two.
        # The camera thread never takes it (nor the budget's), so capture never waits for a reader.
        self._lock = threading.Lock()

    @property
    def image(self) -> Any:
        """The picture as BGR: converted on each call from Planes (1.3 ms at 720p), so a frame never
        holds both; the few users (masks, health checks, transforms) take it once per frame."""
        return bgr_of(self.pixels)

    def jpeg(self, encode: Encoder, quality: int, width: int = 0, height: int = 0) -> bytes:
        """The JPEG at `quality`, fitted into width x height, with the camera's default time stamp."""
        stamp = self.picture is not None and self.picture.timestamp
        return self.encode(encode, View("jpeg", quality, width, height, stamp=stamp))

    def encode(self, encode: Encoder, view: View) -> bytes:
        """The frame rendered as `view` asks. Keyed by the output size, so every request at or above
        the frame's size shares the one full-size encoding."""
        data = self._encoded(encode, view, wait=True)
        assert data is not None
        return data

    def try_encode(self, encode: Encoder, view: View) -> bytes | None:
        """As encode(), but None at once while another reader is encoding this frame: under a flood
        every reader of a new frame parked ~5 ms behind its one encode (8 workers idle 10-20% of the
        time, bench/snapshot_http.py); the caller may serve the previous, still fresh, frame instead."""
        return self._encoded(encode, view, wait=False)

    def encoding(self) -> bool:
        """True while a reader is encoding this frame (try_encode would say None)."""
        return self._lock.locked()

    def _encoded(self, encode: Encoder, view: View, wait: bool) -> bytes | None:
        w, h = transformed_size(self.width, self.height, view.crop, view.rotate)
        out_w, out_h = fit_size(w, h, view.width, view.height)
        key = (view.fmt, 0 if view.fmt == "png" else view.quality, out_w, out_h, view.rotate, view.crop,
               view.stamp)
        data = self._budget.get(self, key)
        if data is None:
            if not self._lock.acquire(blocking=wait):
                return None
            try:
                data = self._budget.get(self, key)
                if data is None:
                    data = self._render(encode, view, (w, h) == (out_w, out_h))
                    self._budget.put(self, key, data)
            finally:
                self._lock.release()
        return data

    def _render(self, encode: Encoder, view: View, full: bool) -> bytes:
        # Planes go to the encoder as they are (it encodes plain JPEGs from them directly).
        image = crop_rotate(self.image, view.crop, view.rotate) if view.crop or view.rotate else self.pixels
        # The encoder fits the size itself (opencv.encode_jpeg uses fit_size too).
        width, height = (0, 0) if full else (view.width, view.height)
        if view.fmt != "jpeg" or view.stamp:
            data = encode(image, view.quality, width, height, fmt=view.fmt,
                          stamp=self.stamp_text() if view.stamp else "")
        else:
            data = encode(image, view.quality, width, height)
        if view.fmt != "jpeg":
            return data
        # Every JPEG says when it was captured and by which camera (EXIF), so a saved one proves its age.
        return exif.insert(data, self.captured_at, self.picture.camera_id if self.picture is not None else "")

    def stamp_text(self) -> str:
        """What `?timestamp=1` draws: the capture time (local, ms) and the camera's name."""
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(self.captured_at))
        ms = int(self.captured_at * 1000) % 1000
        name = exif.sanitize(self.picture.name) if self.picture is not None else ""  # Hershey fonts: ASCII
        return f"{when}.{ms:03d} {name}".strip()

    def age(self, now: float | None = None) -> float:
        return (time.time() if now is None else now) - self.captured_at


class FrameSlot:
    """Latest Frame of a camera. Locks guard pointer swaps only."""

    def __init__(self, budget: EncodeBudget | None = None, picture: Picture | None = None) -> None:
        self._cond = threading.Condition()
        self._frame: Frame | None = None
        self.wanted = threading.Event()  # a reader wants a frame newer than the slot's
        self.glance = False  # the wanted frame is only for a health check (see want)
        # Shared by every camera of a Service; a slot made alone (tests, tools) gets its own.
        self.budget = budget if budget is not None else EncodeBudget()
        self.picture = picture

    def put(self, frame: Frame) -> None:
        """Store `frame` as the newest; with privacy masks, crop or rotation set, the stored frame is
        the prepared one (masks filled first), so no reader ever gets the camera's raw pixels."""
        picture = self.picture
        if picture is not None:
            image = picture.prepare(frame.image) if picture.changes_pixels else frame.pixels
            frame = Frame(frame.seq, image, frame.captured_at, frame._budget, picture)
        with self._cond:
            self._frame = frame
            self._cond.notify_all()

    def latest(self) -> Frame | None:
        return self._frame

    def want(self, glance: bool = False) -> None:
        """Ask the camera thread for a newer frame. A `glance` (the image-health check) is not a
        reader: with adaptive decoding it does not keep the decoder running afterwards."""
        self.glance = glance and (self.glance or not self.wanted.is_set())
        if not self.wanted.is_set():  # set() takes a lock and notifies even when already set: every request
            self.wanted.set()

    def wait_newer(self, than_seq: int, timeout: float) -> Frame | None:
        """Ask for a frame newer than `than_seq` and wait up to `timeout`; the newest frame either way."""
        self.want()
        with self._cond:
            self._cond.wait_for(lambda: self._frame is not None and self._frame.seq > than_seq, timeout)
            return self._frame

    def clear(self) -> None:
        with self._cond:
            self._frame = None
            self._cond.notify_all()
