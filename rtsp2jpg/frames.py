"""FrameSlot: the newest frame of one camera, written by its thread, read by HTTP and MQTT.

The camera thread decodes every frame but converts one only when a reader asked for something
newer than the slot holds (`wanted`); JPEG encoding happens in the reader, once per
(frame, quality, size), shared by every reader of that frame.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

Encoder = Callable[[Any, int, int, int], bytes]


class Frame:
    """One converted frame plus its JPEG encodings; immutable except for the encoding cache."""

    __slots__ = ("seq", "image", "captured_at", "width", "height", "_jpegs", "_lock")

    def __init__(self, seq: int, image: Any, captured_at: float) -> None:
        self.seq = seq
        self.image = image
        self.captured_at = captured_at  # epoch seconds when the frame was grabbed
        self.height, self.width = image.shape[:2]
        self._jpegs: dict[tuple[int, int, int], bytes] = {}
        # Per-frame lock: two readers of the same frame wait for one encode instead of doing two.
        # The camera thread never takes it, so capture never waits for a reader.
        self._lock = threading.Lock()

    def jpeg(self, encode: Encoder, quality: int, width: int = 0, height: int = 0) -> bytes:
        key = (quality, width, height)
        data = self._jpegs.get(key)
        if data is None:
            with self._lock:
                data = self._jpegs.get(key)
                if data is None:
                    data = encode(self.image, quality, width, height)
                    self._jpegs[key] = data
        return data

    def age(self, now: float | None = None) -> float:
        return (time.time() if now is None else now) - self.captured_at


class FrameSlot:
    """Latest Frame of a camera. Locks guard pointer swaps only."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._frame: Frame | None = None
        self.wanted = threading.Event()  # a reader wants a frame newer than the slot's

    def put(self, frame: Frame) -> None:
        with self._cond:
            self._frame = frame
            self._cond.notify_all()

    def latest(self) -> Frame | None:
        return self._frame

    def want(self) -> None:
        self.wanted.set()

    def wait_newer(self, than_seq: int, timeout: float) -> Frame | None:
        """Ask for a frame newer than `than_seq` and wait up to `timeout`; the newest frame either way."""
        self.wanted.set()
        with self._cond:
            self._cond.wait_for(lambda: self._frame is not None and self._frame.seq > than_seq, timeout)
            return self._frame

    def clear(self) -> None:
        with self._cond:
            self._frame = None
            self._cond.notify_all()
