"""Image health: is a camera that delivers frames delivering a useful picture?

Three problems a stream's status cannot show: a uniform picture (covered lens, night without IR,
a black stream), a frozen one (a hung encoder repeating one picture while the stream runs) and a
sudden scene change (a moved or tampered camera). `HealthCheck.evaluate()` looks at one frame every
few seconds (health.interval_sec) and answers the problem or None. Pure numpy, no cv2.

No false alarm on a live static scene: "uniform" needs the spread of a block thumbnail below a
threshold (sensor noise and any texture exceed it); "frozen" needs the full picture bit-identical
(crc32 of every pixel) across frozen_sec, which a live sensor's noise or a ticking clock breaks;
"scene change" needs most blocks of the thumbnail to change at once, well beyond noise, and the new
view to hold at the next check.
"""

from __future__ import annotations

import zlib

import numpy as np

from rtsp2jpg.config import HealthConfig

GRID = (9, 16)  # thumbnail rows x columns: block means, so noise averages out


def thumbnail(image: np.ndarray) -> np.ndarray:
    """GRID block means of the picture's grey levels, from a sparse sample (cheap at any size)."""
    grey = image if image.ndim == 2 else image[..., :3]
    rows, cols = GRID
    h, w = grey.shape[:2]
    step = max(1, min(h // (rows * 4), w // (cols * 4)))  # ~4x4 samples per block at least
    sample = grey[::step, ::step].astype(np.float32)
    if sample.ndim == 3:
        sample = sample.mean(axis=2)
    sh, sw = (sample.shape[0] // rows) * rows, (sample.shape[1] // cols) * cols
    if sh == 0 or sw == 0:
        return np.full(GRID, float(sample.mean()), np.float32)
    return sample[:sh, :sw].reshape(rows, sh // rows, cols, sw // cols).mean(axis=(1, 3))


def fingerprint(image: np.ndarray) -> int:
    """crc32 of every pixel: equal only for a bit-identical picture (~1 ms per MB)."""
    return zlib.crc32(np.ascontiguousarray(image).data)


def _changed(thumb: np.ndarray, other: np.ndarray, delta: float) -> float:
    """The fraction of thumbnail blocks that differ by more than `delta` grey levels."""
    return float((np.abs(thumb - other) > delta).mean())


class HealthCheck:
    """One camera's image health; fed one frame per check by the health monitor."""

    def __init__(self, limits: HealthConfig) -> None:
        self.limits = limits
        self._thumb: np.ndarray | None = None
        self._print: int | None = None
        self._same_since: float | None = None
        self._scene_until = -1.0
        self._scene_at = 0.0
        # (thumbnail before, fraction changed) of a change the last check saw, until the next says
        # whether the new view settled (a moved camera) or keeps changing (a pan, traffic, the demo)
        self._change: tuple[np.ndarray, float] | None = None

    def reset(self) -> None:
        """Forget the past (after a reconnect: the stream starts afresh)."""
        self.__init__(self.limits)  # type: ignore[misc]

    def evaluate(self, image: np.ndarray, now: float) -> str | None:
        """The picture's problem (a sentence) or None; `now` in seconds (monotonic)."""
        lim = self.limits
        thumb = thumbnail(image)
        fp = fingerprint(image)
        if fp != self._print:
            self._print, self._same_since = fp, now
        previous, self._thumb = self._thumb, thumb
        spread = float(thumb.std())
        if spread < lim.uniform_std:
            return f"uniform picture (mean {float(thumb.mean()):.0f}, spread {spread:.1f}): covered lens or no light?"
        if self._same_since is not None and now - self._same_since >= lim.frozen_sec:
            return f"frozen picture: identical for {now - self._same_since:.0f} s while frames arrive"
        if previous is not None:
            changed = _changed(thumb, previous, lim.scene_delta)
            change, self._change = self._change, None
            # Reported once the new view holds: like the last check's picture, unlike the one before
            # the change. A scene that keeps moving (a pan, a truck passing the lens) does not.
            if change is not None and changed < lim.scene_change / 2 \
                    and _changed(thumb, change[0], lim.scene_delta) >= lim.scene_change:
                self._scene_until, self._scene_at = now + lim.scene_hold_sec, change[1]
            if changed >= lim.scene_change:
                self._change = (previous, changed)
        if now < self._scene_until:
            return f"sudden scene change ({self._scene_at:.0%} of the picture): moved or tampered camera?"
        return None
