"""Demand-adaptive decoding, the pure part: the compressed pictures since the last keyframe, and
whether anyone reads often enough to keep the decoder running.

A camera nobody reads does not need its pictures decoded; it needs to be able to produce the
newest one quickly when asked. Keeping the access units since the last keyframe (a 2 s group of
pictures of 720p is ~0.5-2 MB) is enough: decoding them at full speed gives the newest picture.
No GStreamer here (gst_demand.py drives it), so the policy is unit-tested without a stream.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from itertools import pairwise
from typing import Any

log = logging.getLogger(__name__)

# Bounds of one camera's buffer: a 4 s keyframe interval at 8 Mbit/s is ~4 MB and 100-240 units.
MAX_UNITS = 1000
MAX_BYTES = 16 * 1024 * 1024
# Keep decoding for this long after a read until the keyframe interval is measured, and clamp it:
# a 10 s interval would otherwise keep the decoder busy for 10 s after every read.
DEFAULT_HOLD_SEC = 2.0
MIN_HOLD_SEC, MAX_HOLD_SEC = 1.0, 10.0
# Skip decoding ahead only when the next keyframe is due at least this long before the next read.
AHEAD_MARGIN_SEC = 0.1


@dataclass(frozen=True)
class Unit:
    """One access unit (a compressed picture) as the depayloader gave it; `data` is opaque here."""

    data: Any
    key: bool
    size: int
    pts: int | None  # presentation time in ns, None when the stream gave none
    arrived: float = 0.0  # monotonic seconds when it was received


class GopBuffer:
    """The units since the last keyframe, and how many of them the decoder already has.

    `pending()` hands out only units the decoder has not seen, so continuous decoding and a burst
    after an idle spell share one path: the decoder always continues from where it stopped, and a
    new keyframe restarts it. Bounded by `max_units` and `max_bytes`; a group of pictures that
    outgrows them is dropped until the next keyframe (logged once per overflow).
    """

    def __init__(self, max_units: int = MAX_UNITS, max_bytes: int = MAX_BYTES) -> None:
        self.max_units = max_units
        self.max_bytes = max_bytes
        self._units: list[Unit] = []
        self._sent = 0  # units of the current group already handed to the decoder
        self.bytes = 0
        self.overflows = 0
        self._overflowed = False

    def __len__(self) -> int:
        return len(self._units)

    @property
    def started(self) -> bool:
        """True once a keyframe has arrived (before it, nothing can be decoded)."""
        return bool(self._units)

    def add(self, unit: Unit) -> bool:
        """Keep `unit`; True when it starts a new group of pictures (a keyframe)."""
        if unit.key:
            self._units, self._sent, self.bytes, self._overflowed = [unit], 0, unit.size, False
            return True
        if not self._units or self._overflowed:
            return False  # joined mid-group or over the bounds: useless until the next keyframe
        if len(self._units) >= self.max_units or self.bytes + unit.size > self.max_bytes:
            self.overflows += 1
            self._overflowed = True
            log.warning("group of pictures over %d units / %d bytes: waiting for the next keyframe",
                        self.max_units, self.max_bytes)
            self._units, self._sent, self.bytes = [], 0, 0
            return False
        self._units.append(unit)
        self.bytes += unit.size
        return False

    def pending(self, keyframe_only: bool = False) -> list[Unit]:
        """The units the decoder has not had yet (marked as had); with `keyframe_only`, the group's
        keyframe alone if the decoder has not had it, else nothing."""
        end = min(1, len(self._units)) if keyframe_only else len(self._units)
        out = self._units[self._sent:end]
        self._sent = max(self._sent, end)
        return out

    def keyframe_age(self) -> float:
        """Seconds between the group's keyframe and its newest picture: by their timestamps where the
        stream has them (units arrive in batches), else by when they were received."""
        if not self._units:
            return 0.0
        key = self._units[0]
        stamps = [u.pts for u in self._units if u.pts is not None]
        if key.pts is not None and stamps:
            return max(0.0, (max(stamps) - key.pts) / 1e9)
        return max(0.0, self._units[-1].arrived - key.arrived)


class Demand:
    """Decode continuously while someone reads at least once per hold (the keyframe interval, measured).

    Someone polling less often gets a burst decode of the buffered group per request instead: at 1
    request per 10 s on a 2 s interval that is on average one second of pictures decoded per ten
    seconds of stream. One read alone does not start continuous decoding, a second within the hold
    does: holding after every read kept the decoder busy for a keyframe interval per request of a
    10 s poller (measured: 0.47x the decode floor).
    """

    def __init__(self, clock: Callable[[], float], hold_sec: float | None = None) -> None:
        self._clock = clock
        self._fixed = hold_sec
        self.hold_sec = hold_sec if hold_sec is not None else DEFAULT_HOLD_SEC
        self._last_read = -1e18
        self._read_gap: float | None = None  # between the last two reads
        self._steady = False  # the last two reads were within a hold of each other
        self._last_key: float | None = None
        self._key_interval: float | None = None  # measured, MIN_HOLD_SEC or more

    def read(self) -> None:
        now = self._clock()
        self._steady = now - self._last_read < self.hold_sec
        self._read_gap = now - self._last_read if self._steady else None
        self._last_read = now

    def keyframe(self, arrived: float | None = None) -> None:
        """A keyframe arrived (at `arrived`, monotonic, if the caller knows better than now): the
        interval since the previous one becomes the hold (1-10 s)."""
        now = self._clock() if arrived is None else arrived
        # Intervals under MIN_HOLD_SEC are not a group of pictures (a stream's first units, a forced
        # keyframe): taking them would shorten the hold until the next real keyframe lengthened it.
        if self._last_key is not None and now - self._last_key >= MIN_HOLD_SEC:
            self._key_interval = now - self._last_key
            if self._fixed is None:
                self.hold_sec = min(MAX_HOLD_SEC, self._key_interval)
        self._last_key = now

    def continuous(self) -> bool:
        return self._steady and self._clock() - self._last_read < self.hold_sec

    def ahead(self) -> bool:
        """Whether decoding pictures as they arrive pays: not once the next keyframe is due before the
        next read is (the read then decodes from that keyframe, and what comes before it is never
        seen). A poller every 1 s on a 2 s keyframe interval skips a quarter of the pictures on average;
        a read that comes early after all gets a burst of the pictures since the last read."""
        if self._key_interval is None or self._last_key is None or self._read_gap is None:
            return True
        return self._last_key + self._key_interval + AHEAD_MARGIN_SEC > self._last_read + self._read_gap


class Target:
    """Which decoded picture a burst waits for: the newest pushed, or with B-frames (reordered
    timestamps) the newest except the last unit, which the decoder holds until the next one."""

    def __init__(self) -> None:
        self._max: int | None = None  # the highest timestamp pushed so far
        self.reordered = False

    def after(self, units: list[Unit]) -> int | None:
        """Record `units` as pushed; the timestamp whose picture completes them (None: unknown)."""
        before_last = self._max
        for i, unit in enumerate(units):
            if unit.pts is None:
                continue
            if self._max is not None and unit.pts < self._max and not unit.key:
                self.reordered = True
            if i < len(units) - 1:
                before_last = unit.pts if before_last is None else max(before_last, unit.pts)
            self._max = unit.pts if self._max is None else max(self._max, unit.pts)
        return before_last if self.reordered else self._max


FPS_UNITS = 16  # the timestamps of this many units give a stream's frame rate


def frame_rate(stamps: list[int]) -> float:
    """Frames per second from `stamps` (presentation times in ns of consecutive units, in decode
    order); 0.0 until there are FPS_UNITS. The median gap between them sorted: B-frames reorder the
    units, so the first ones in decode order may skip a picture or two, and a camera's clock jitters."""
    if len(stamps) < FPS_UNITS:
        return 0.0
    ordered = sorted(set(stamps))
    gaps = sorted(b - a for a, b in pairwise(ordered))
    return round(1e9 / gaps[len(gaps) // 2], 2) if gaps else 0.0
