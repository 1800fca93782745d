"""Main and sub streams of one camera: which stream answers a request, and how /status shows both.

Cameras send a full-resolution main stream and a small sub stream. The sub stream (a Camera of its
own, `Camera.sub`) feeds continuous readers; the main stream decodes on demand (adaptive decoding),
so a full-size snapshot costs little while nobody asks. A request names its stream or gets the
smallest one whose picture satisfies its size.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Protocol, TypeVar

from rtsp2jpg.capture.status import Stats, Status, stream_fields
from rtsp2jpg.capture.view import Crop, transformed_size
from rtsp2jpg.config import CaptureConfig
from rtsp2jpg.urls import canonical, redact

STREAMS = ("main", "sub")
LIVE = (Status.ACTIVE, Status.DEGRADED)  # a sub stream in these answers requests; else the main stream does


class Stream(Protocol):
    """What this module reads of a camera (capture.camera.Camera; its `sub` is a Camera too)."""

    id: str
    url: str
    status: Status
    error: str
    stats: Stats
    slot: Any  # frames.FrameSlot
    sub: Any


Camera = TypeVar("Camera", bound=Stream)


def sub_id(camera_id: str) -> str:
    """The sub stream's name in logs and thread names; '.' is not in a camera id, so it cannot clash."""
    return f"{camera_id}.sub"


def main_capture(cfg: CaptureConfig) -> CaptureConfig:
    """The main stream's capture settings beside a sub stream: decoded only when read (the sub stream
    serves the continuous readers), whatever `decode` says for the camera."""
    return dataclasses.replace(cfg, decode="adaptive")


def same_streams(cam: Stream, sub_url: str) -> bool:
    """Whether registering `sub_url` beside the camera's main stream asks for what it already has."""
    have = cam.sub.url if cam.sub is not None else ""
    return canonical(have) == canonical(sub_url) if have and sub_url else have == sub_url


def parse_stream(raw: str) -> str:
    """`?stream=` value; ValueError names the choices."""
    if raw not in STREAMS:
        raise ValueError(f"must be one of {', '.join(STREAMS)}")
    return raw


def pick(cam: Camera, name: str | None, width: int = 0, height: int = 0,
         crop: Crop | tuple[()] = (), rotate: int = 0) -> Camera:
    """The stream that answers: the named one; else the sub stream if it delivers and its picture (after
    crop and rotation) is at least `width` x `height`; else the main stream (also when no size is asked).
    LookupError when `name` is sub and the camera has none."""
    sub = cam.sub
    if name == "sub":
        if sub is None:
            raise LookupError(f"camera {cam.id} has no sub stream")
        return sub
    if name == "main" or sub is None or not (width or height) or sub.status not in LIVE:
        return cam
    frame = sub.slot.latest()  # its picture as readers get it: after the camera's own crop and rotation
    if frame is None:
        return cam
    w, h = transformed_size(frame.width, frame.height, crop, rotate)
    return sub if w >= width and h >= height else cam


def name_of(cam: Stream, stream: Stream) -> str:
    return "sub" if stream is cam.sub else "main"


def streams_view(cam: Stream) -> dict[str, Any]:
    """`{"streams": {"main": {...}, "sub": {...}}}` for /status (each stream's status and picture), or
    nothing for a camera with one stream."""
    if cam.sub is None:
        return {}
    return {"streams": {name: {"status": s.status.value, "error": s.error or None, **stream_fields(s.stats),
                               "decode": "adaptive" if s.stats.adaptive else "always"}
                        for name, s in (("main", cam), ("sub", cam.sub))}}


def urls_view(cam: Stream) -> dict[str, Any]:
    """`{"streams": {"main": url, "sub": url}}`, redacted, for GET /cameras; nothing for one stream."""
    if cam.sub is None:
        return {}
    return {"streams": {"main": redact(cam.url), "sub": redact(cam.sub.url)}}
