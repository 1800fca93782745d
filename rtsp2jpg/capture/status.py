"""A camera's state and its views: Status, StatusChange (what listeners get), Stats (what the thread counts),
and the one place that turns them into the JSON of /status, MQTT and /cameras."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Any, Protocol

from rtsp2jpg.urls import redact


class Status(str, Enum):
    CONNECTING = "connecting"
    ACTIVE = "active"
    DEGRADED = "degraded"  # frames arrive, but the picture is useless (capture/health.py says why)
    ERROR = "error"
    INACTIVE = "inactive"
    UNKNOWN = "unknown"


def count_line(statuses: list[Status]) -> str:
    """"4 cameras: 3 active, 1 connecting" (for `systemctl status`): the good news first."""
    order = (Status.ACTIVE, Status.DEGRADED, Status.CONNECTING, Status.ERROR, Status.INACTIVE, Status.UNKNOWN)
    parts = ", ".join(f"{statuses.count(s)} {s.value}" for s in order if s in statuses)
    noun = "camera" if len(statuses) == 1 else "cameras"
    return f"{len(statuses)} {noun}: {parts}" if parts else f"0 {noun}"


def status_counts(statuses: list[Status]) -> dict[str, int]:
    """/health's camera counts: the total and every status worth an alert, zero or not."""
    counts = {"total": len(statuses), "active": 0, "degraded": 0, "connecting": 0, "error": 0}
    for status in statuses:
        if status.value in counts:
            counts[status.value] += 1
    return counts


@dataclass(frozen=True)
class StatusChange:
    camera_id: str
    status: Status
    previous: Status
    since: float
    error: str


@dataclass
class Stats:
    """Counters the thread writes and readers copy; plain assignments, no lock needed."""

    frames: int = 0
    reconnects: int = 0
    decode_errors: int = 0
    last_seen: float = 0.0  # epoch of the last grabbed frame
    fps: float = 0.0
    width: int = 0
    height: int = 0
    backend: str = ""
    adaptive: bool = False  # the open source decodes only while read (capture/gst_demand.py)


# rtsp.Diagnosis kinds that settle an open attempt without asking OpenCV.
DEFINITE_FAILURES = frozenset({"refused", "unreachable", "no_answer", "auth", "not_found"})


class CameraState(Protocol):
    """What the views read from a camera (capture.camera.Camera)."""

    id: str
    name: str
    url: str
    source: str
    status: Status
    since: float
    error: str
    stats: Stats


def stream_fields(stats: Any) -> dict[str, Any]:
    """What the stream looks like now: the fields /status and the MQTT status payload share."""
    return {"last_seen": round(stats.last_seen, 3) if stats.last_seen else None, "backend": stats.backend or None,
            "fps": stats.fps, "width": stats.width or None, "height": stats.height or None}


def status_view(cam: CameraState) -> dict[str, Any]:
    """Status as /status shows it; never the URL's password."""
    s = cam.stats
    return {"token": cam.id, "id": cam.id, "name": cam.name, "status": cam.status.value, "since": cam.since,
            "error": cam.error or None, **stream_fields(s), "frames": s.frames,
            "reconnects": max(0, s.reconnects - 1)}


def list_view(cam: CameraState) -> dict[str, Any]:
    """One entry of GET /cameras: the URL shown redacted; the stream's fields as /status has them,
    but the size as one [width, height] pair."""
    stream = stream_fields(cam.stats)
    size = [stream.pop("width"), stream.pop("height")] if stream["width"] else None
    return {"id": cam.id, "token": cam.id, "name": cam.name, "url": redact(cam.url), "source": cam.source,
            "status": cam.status.value, "last_seen": stream["last_seen"], "backend": stream["backend"],
            "fps": stream["fps"], "size": size, "error": cam.error or None}
