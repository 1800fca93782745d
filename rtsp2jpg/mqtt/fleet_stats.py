"""The fleet view's reading of `<base>/<device>/stats` (mqtt/stats.py writes it): checked, trimmed, judged.

Anyone who may publish to the broker can write a stats message, so it is checked field by field
like the status messages (fleet.py) and only the fields below are kept. A device whose newest
stats are older than STALE_INTERVALS of its own interval is `stale`: its process or its path to
this broker (a bridge) has stopped, whatever its retained availability still says.
"""

from __future__ import annotations

import math
from typing import Any

STALE_INTERVALS = 3
MAX_CAMERAS = 256
STATUSES = ("active", "connecting", "error", "inactive", "unknown")


class Malformed(ValueError):
    """A message that does not fit the MQTT contract; it is skipped and counted."""


def number(value: Any) -> bool:
    """None or a finite, sane JSON number (not a bool)."""
    return value is None or (isinstance(value, int | float) and not isinstance(value, bool)
                             and math.isfinite(value) and abs(value) <= 1e15)


def _flags(value: Any) -> list[str] | None:
    if value is None:
        return None
    if not (isinstance(value, list) and len(value) <= 8 and all(isinstance(v, str) and len(v) <= 32 for v in value)):
        raise Malformed("stats.board.throttled flags are not a short list of names")
    return value


def parse_stats(data: Any) -> dict[str, Any]:
    """A decoded stats payload -> the fields the view keeps, else Malformed."""
    if not isinstance(data, dict):
        raise Malformed("payload is not a JSON object")
    at, interval = data.get("at"), data.get("interval_sec")
    if not (number(at) and at is not None and number(interval) and interval is not None and interval > 0):
        raise Malformed("stats.at and stats.interval_sec must be numbers")
    if not all(number(data.get(k)) for k in ("uptime_sec", "cpu_percent", "rss_bytes")):
        raise Malformed("a stats number is not a finite number")
    board = {} if data.get("board") is None else data["board"]
    if not isinstance(board, dict) or not number(board.get("temperature_c")):
        raise Malformed("stats.board is not an object with a numeric temperature_c")
    throttled = board.get("throttled")
    if throttled is not None and not isinstance(throttled, dict):
        raise Malformed("stats.board.throttled is not an object")
    cameras = {} if data.get("cameras") is None else data["cameras"]
    if not isinstance(cameras, dict) or len(cameras) > MAX_CAMERAS:
        raise Malformed("stats.cameras is not an object of at most 256 cameras")
    kept = {}
    for cid, cam in cameras.items():
        if not (isinstance(cam, dict) and cam.get("status") in STATUSES and number(cam.get("fps"))
                and number(cam.get("frame_age_sec"))):
            raise Malformed("a stats camera entry does not fit the contract")
        kept[cid] = {"status": cam["status"], "fps": cam.get("fps"), "frame_age_sec": cam.get("frame_age_sec")}
    return {"at": at, "interval_sec": interval, "uptime_sec": data.get("uptime_sec"),
            "cpu_percent": data.get("cpu_percent"), "rss_bytes": data.get("rss_bytes"),
            "temperature_c": board.get("temperature_c"),
            "throttled": _flags((throttled or {}).get("now")), "cameras": kept}


def health(stats: dict[str, Any] | None, now: float) -> dict[str, Any] | None:
    """What `fleet` shows of a device's stats, with `stale` judged against `now`; None without stats."""
    if not stats:
        return None
    age = max(0.0, now - stats["at"])
    return {"at": stats["at"], "age_sec": round(age, 1), "stale": age > STALE_INTERVALS * stats["interval_sec"],
            **{k: stats[k] for k in ("interval_sec", "uptime_sec", "cpu_percent", "rss_bytes", "temperature_c",
                                     "throttled")}}


TROUBLES = ("offline", "unknown", "camera error", "stale", "throttled", "camera not active")


def severity(troubles: list[str]) -> int:
    """Sort key of a device: the rank of its worst trouble; all well sorts last."""
    return TROUBLES.index(troubles[0]) if troubles else len(TROUBLES)


def trouble(device: dict[str, Any]) -> list[str]:
    """Why a device needs a look, worst first (empty: all well). `fleet` sorts by this."""
    found = []
    if device["availability"] != "online":
        found.append(device["availability"])
    if any(c["status"] == "error" for c in device["cameras"]):
        found.append("camera error")
    stats = device.get("stats")
    if stats and stats["stale"]:
        found.append("stale")
    if stats and stats["throttled"]:
        found.append("throttled")
    if any(c["status"] in ("connecting", "unknown") for c in device["cameras"]):
        found.append("camera not active")
    return found
