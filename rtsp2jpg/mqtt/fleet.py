"""`rtsp2jpg fleet`'s model: every device and camera from the broker's retained topics (reader.py reads them).

It subscribes to `<base>/+/availability`, `<base>/+/state`, `<base>/+/stats` and
`<base>/+/cameras/+/status` (never the snapshots), then publishes a marker to itself: the broker
replays retained messages before it delivers the marker, so the marker says "you have the whole
fleet". Devices are listed trouble first (fleet_stats.trouble), then by id. Exit 1 when any camera
is in `error` or any device is `offline` or stale (stats older than three of its intervals); 4 when
the broker cannot be read (as `cameras` for a service); 5 when all that could be read is fine but
malformed messages were skipped.

Anyone who may publish to the broker writes what this prints: every message is checked against the
contract (types, sizes, finite numbers) and skipped if it does not fit, and every printed cell has
its control characters (terminal escapes, bidi overrides) shown as `\x1b`-style escapes.
"""

from __future__ import annotations

import json
import math
import threading
import time
import unicodedata
from dataclasses import dataclass, field
from typing import Any

from rtsp2jpg.mqtt.fleet_stats import Malformed, health, number, parse_stats, severity, trouble

MAX_PAYLOAD = 65536  # a status or state payload is well under 1 KiB
STATUSES = ("active", "degraded", "connecting", "error", "inactive", "unknown")
_NUMBER_FIELDS = ("since", "last_seen", "fps", "width", "height")
_TEXT_FIELDS = ("status", "previous", "error", "backend")
QUIET_SEC = 2.0  # no marker (publishing denied) and nothing new for this long: the replay is over
CAMERA_FIELDS = ("status", "previous", "since", "last_seen", "error", "backend", "fps", "width", "height")


@dataclass
class Device:
    availability: str = "unknown"
    state: dict[str, Any] = field(default_factory=dict)
    cameras: dict[str, dict[str, Any]] = field(default_factory=dict)
    stats: dict[str, Any] | None = None


class Fleet:
    """The retained view, updated from messages (paho's thread) and read by the printer."""

    def __init__(self, base_topic: str) -> None:
        self.base = base_topic.rstrip("/")
        self.devices: dict[str, Device] = {}
        self.lock = threading.Lock()
        self.version = 0  # bumped on every change; --watch prints when it moves
        self.malformed = 0  # messages skipped because they do not fit the contract

    def apply(self, topic: str, payload: bytes) -> None:
        """One retained message; an empty payload deletes (a camera was unregistered).

        A message that does not fit the contract changes nothing and is counted in `malformed`.
        """
        try:
            self._apply(topic, payload)
        except (Malformed, ValueError, TypeError, RecursionError, OverflowError):
            with self.lock:
                self.malformed += 1
                self.version += 1

    def _apply(self, topic: str, payload: bytes) -> None:
        if not topic.startswith(self.base + "/"):
            return
        parts = topic[len(self.base) + 1:].split("/")
        if len(payload) > MAX_PAYLOAD:
            raise Malformed("payload too large")
        if len(parts) == 2 and parts[1] == "availability":
            text = payload.decode("utf-8")
            if text not in ("online", "offline", ""):
                raise Malformed("availability is neither online nor offline")
            with self.lock:
                self._device(parts[0]).availability = text or "unknown"
        elif len(parts) == 2 and parts[1] == "state":
            state = _state(payload) if payload else {}
            with self.lock:
                self._device(parts[0]).state = state
        elif len(parts) == 2 and parts[1] == "stats":
            stats = parse_stats(_object(payload)) if payload else None
            with self.lock:
                self._device(parts[0]).stats = stats
        elif len(parts) == 4 and parts[1] == "cameras" and parts[3] == "status":
            status = _status(payload) if payload else None
            with self.lock:
                cameras = self._device(parts[0]).cameras
                if status is not None:
                    cameras[parts[2]] = status
                else:
                    cameras.pop(parts[2], None)
        else:
            return
        with self.lock:
            self.version += 1

    def _device(self, device_id: str) -> Device:
        return self.devices.setdefault(device_id, Device())

    def view(self, now: float | None = None) -> dict[str, Any]:
        """The JSON document `--json` prints; also what the table is made from. Trouble first."""
        now = time.time() if now is None else now
        with self.lock:
            devices = []
            for device_id in sorted(self.devices):
                dev = self.devices[device_id]
                ids = set(dev.cameras) | set(dev.state.get("cameras") or [])
                ages = (dev.stats or {}).get("cameras", {})
                cameras = [{"id": cid, **{k: dev.cameras.get(cid, {}).get(k) for k in CAMERA_FIELDS},
                            "frame_age_sec": ages.get(cid, {}).get("frame_age_sec")} for cid in sorted(ids)]
                for cam in cameras:
                    cam["status"] = cam["status"] or "unknown"
                entry = {"device": device_id, "availability": dev.availability,
                         "version": dev.state.get("version"), "hostname": dev.state.get("hostname"),
                         "started_at": dev.state.get("started_at"), "cameras": cameras,
                         "stats": health(dev.stats, now)}
                devices.append({**entry, "trouble": trouble(entry)})
            malformed = self.malformed
        devices.sort(key=lambda d: severity(d["trouble"]))  # stable: the worst first, then by id
        cams = [c for d in devices for c in d["cameras"]]
        summary = {"devices": len(devices), "offline": sum(d["availability"] == "offline" for d in devices),
                   "stale": sum(bool(d["stats"] and d["stats"]["stale"]) for d in devices), "cameras": len(cams)}
        for status in STATUSES:
            summary[status] = sum(c["status"] == status for c in cams)
        ok = summary["offline"] == 0 and summary["error"] == 0 and summary["stale"] == 0
        return {"ok": ok, "summary": summary, "devices": devices, "malformed": malformed}


def _object(payload: bytes) -> dict[str, Any]:
    data = json.loads(payload.decode("utf-8"))  # ValueError/RecursionError: counted by apply()
    if not isinstance(data, dict):
        raise Malformed("payload is not a JSON object")
    return data


def _status(payload: bytes) -> dict[str, Any]:
    """`.../cameras/<id>/status` as the contract says (topics.status_payload), else Malformed."""
    data = _object(payload)
    if data.get("status") not in STATUSES:
        raise Malformed("unknown camera status")
    if not all(data.get(k) is None or isinstance(data.get(k), str) for k in _TEXT_FIELDS):
        raise Malformed("a text field is not text")
    if not all(number(data.get(k)) for k in _NUMBER_FIELDS):
        raise Malformed("a number field is not a finite number")
    return {k: data.get(k) for k in CAMERA_FIELDS}


def _state(payload: bytes) -> dict[str, Any]:
    """`.../state` (topics.state_payload), else Malformed."""
    data = _object(payload)
    cameras = data.get("cameras")
    if cameras is not None and not (isinstance(cameras, list) and all(isinstance(c, str) for c in cameras)):
        raise Malformed("state.cameras is not a list of ids")
    if not all(data.get(k) is None or isinstance(data.get(k), str) for k in ("version", "hostname")):
        raise Malformed("a text field is not text")
    if not number(data.get("started_at")):
        raise Malformed("state.started_at is not a finite number")
    return {k: data.get(k) for k in ("version", "hostname", "started_at", "cameras")}


_INVISIBLE = {"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"}  # controls, format (bidi), surrogates, separators


def printable(text: str) -> str:
    """`text` safe for a terminal: every control or format character becomes a visible escape."""
    if text.isprintable() and text.isascii():
        return text
    out = []
    for c in text:
        if unicodedata.category(c) in _INVISIBLE:
            out.append(f"\\x{ord(c):02x}" if ord(c) < 0x100 else f"\\u{ord(c):04x}" if ord(c) < 0x10000
                       else f"\\U{ord(c):08x}")
        else:
            out.append(c)
    return "".join(out)


def ago(ts: Any, now: float) -> str:
    if not isinstance(ts, int | float) or not math.isfinite(ts) or ts <= 0 or abs(ts) > 1e15:
        return "-"
    s = max(0, int(now - ts))
    if s < 60:
        return f"{s}s ago"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s ago"
    if s < 86400:
        return f"{s // 3600}h{s % 3600 // 60:02d}m ago"
    return f"{s // 86400}d{s % 86400 // 3600:02d}h ago"


def _availability(dev: dict[str, Any]) -> str:
    """`online`, or `online,stale` when the device's stats stopped coming (its Will may not have crossed)."""
    return dev["availability"] + (",stale" if dev["stats"] and dev["stats"]["stale"] else "")


def table(view: dict[str, Any], now: float | None = None) -> str:
    now = time.time() if now is None else now
    rows = [("DEVICE", "AVAILABILITY", "CAMERA", "STATUS", "SINCE", "LAST SEEN", "ERROR")]
    for dev in view["devices"]:
        first = True
        for cam in dev["cameras"] or [{"id": "-", "status": "-"}]:
            rows.append(tuple(printable(str(cell)) for cell in (
                dev["device"] if first else "", _availability(dev) if first else "", cam["id"],
                cam["status"], ago(cam.get("since"), now), ago(cam.get("last_seen"), now)))
                + (printable(str(cam.get("error") or ""))[:80],))
            first = False
    widths = [max(len(r[i]) for r in rows) for i in range(6)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r[:6], widths, strict=True)) + "  " + r[6] for r in rows]
    s = view["summary"]
    lines.append(f"{s['devices']} device(s), {s['offline']} offline; {s['cameras']} camera(s): "
                 f"{s['active']} active, {s['degraded']} degraded, {s['connecting']} connecting, {s['error']} error, "
                 f"{s['inactive']} inactive, {s['unknown']} unknown" + (f"; {s['stale']} stale" if s['stale'] else ""))
    return "\n".join(line.rstrip() for line in lines)
