"""Capture sources: the only module that imports cv2.

`candidates()` is a pure function over a data table: it returns, in preference order, the sources
a camera should try. `open_source()` turns one into a `Capture` with open/read timeouts set, so no
call blocks for ever. The GStreamer rows of the table are filled in by the hardware-decoding work;
the seam is `SOURCE_BUILDERS`.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np

from rtsp2jpg.config import CaptureConfig
from rtsp2jpg.urls import UrlError, redact, validate_rtsp_url

log = logging.getLogger(__name__)

# FFmpeg demuxer options are process-wide in OpenCV (an environment variable read at open time).
# nobuffer: without it the first frames after open() are ~1.2 s old (FFmpeg probes ~1 s of stream).
FFMPEG_OPTIONS = "rtsp_transport;{transport}|fflags;nobuffer|max_delay;500000"


class SourceError(RuntimeError):
    """A source failed to open or to deliver a first frame; the message is free of credentials."""


@dataclass(frozen=True)
class SourceSpec:
    """One way to open a camera: `label` is what /status shows (`ffmpeg`, `gstreamer/avdec_h264`)."""

    label: str
    backend: str  # "ffmpeg" or "gstreamer"
    target: str  # the URL (ffmpeg) or the pipeline description (gstreamer)
    params: tuple[int, ...] = ()

    def __repr__(self) -> str:  # keep passwords out of reprs that end up in tracebacks
        return f"SourceSpec({self.label!r})"


@dataclass(frozen=True)
class Capabilities:
    """What the OpenCV in use can do; reported by /health and logged once at start."""

    cv2_version: str
    cv2_file: str
    backends: dict[str, bool]
    decoders: dict[str, bool] = field(default_factory=dict)
    board: str = "generic"


def parse_build_info(text: str) -> dict[str, bool]:
    """Backends from `cv2.getBuildInformation()`: a line `GStreamer: NO` means no."""
    found = {"ffmpeg": False, "gstreamer": False}
    for line in text.splitlines():
        name, sep, value = line.strip().partition(":")
        if not sep:
            continue
        key = name.strip().lower()
        if key in found:
            found[key] = value.strip().upper().startswith("YES")
    return found


def capabilities() -> Capabilities:
    return Capabilities(cv2_version=cv2.__version__, cv2_file=getattr(cv2, "__file__", "?"),
                        backends=parse_build_info(cv2.getBuildInformation()))


def _ffmpeg_source(url: str, cfg: CaptureConfig, caps: Capabilities) -> list[SourceSpec]:
    if not caps.backends.get("ffmpeg"):
        return []
    params = [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, int(cfg.open_timeout_sec * 1000),
              cv2.CAP_PROP_READ_TIMEOUT_MSEC, int(cfg.stall_timeout_sec * 1000)]
    # One decoder thread per camera: same CPU, a frame fresher per thread saved, ~5 MB less (DESIGN 9).
    if hasattr(cv2, "CAP_PROP_N_THREADS"):
        params += [cv2.CAP_PROP_N_THREADS, 1]
    return [SourceSpec("ffmpeg", "ffmpeg", url, tuple(params))]


# backend name -> builder(url, capture config, capabilities) -> sources; `candidates` orders them.
SOURCE_BUILDERS: dict[str, Callable[[str, CaptureConfig, Capabilities], list[SourceSpec]]] = {
    "ffmpeg": _ffmpeg_source,
}
ORDER = {"default": ("gstreamer", "ffmpeg"), "gstreamer": ("gstreamer", "ffmpeg"), "ffmpeg": ("ffmpeg", "gstreamer")}


def candidates(url: str, cfg: CaptureConfig, caps: Capabilities, prefer: str = "default") -> list[SourceSpec]:
    """The sources to try for `url`, best first; `decoder: ffmpeg` pins the FFmpeg backend."""
    if cfg.decoder == "ffmpeg":
        order: Sequence[str] = ("ffmpeg",)
    else:
        order = ORDER.get(prefer, ORDER["default"])
    out: list[SourceSpec] = []
    for backend in order:
        builder = SOURCE_BUILDERS.get(backend)
        if builder:
            out += builder(url, cfg, caps)
    return out


def configure_ffmpeg(transport: str) -> None:
    """Set FFmpeg's demuxer options once, before any capture opens (they are read per open)."""
    os.environ["OPENCV_FFMPEG_CAPTURE_OPTIONS"] = FFMPEG_OPTIONS.format(transport=transport)


class Capture:
    """An opened cv2.VideoCapture: grab every frame, retrieve only the ones someone wants."""

    def __init__(self, spec: SourceSpec, cap: Any) -> None:
        self.spec = spec
        self._cap = cap

    def grab(self) -> bool:
        return bool(self._cap.grab())

    def retrieve(self) -> np.ndarray | None:
        ok, image = self._cap.retrieve()
        return image if ok and image is not None and image.size else None

    def release(self) -> None:
        self._cap.release()


def open_source(spec: SourceSpec) -> Capture:
    """Open `spec` (blocking at most its open timeout); raise SourceError with a redacted reason."""
    if spec.backend == "ffmpeg":
        try:  # FFmpeg opens anything it has a protocol for (file:, concat:, http:): only rtsp(s) gets here
            validate_rtsp_url(spec.target)
        except UrlError as e:
            raise SourceError(f"{spec.label}: refusing to open: the URL {e}") from None
    api = cv2.CAP_FFMPEG if spec.backend == "ffmpeg" else cv2.CAP_GSTREAMER
    try:
        cap = cv2.VideoCapture(spec.target, api, list(spec.params))
    except cv2.error as e:
        raise SourceError(f"{spec.label}: {redact(str(e)).strip()}") from None
    if not cap.isOpened():
        cap.release()
        raise SourceError(f"{spec.label}: could not open the stream (unreachable, refused or timed out)")
    return Capture(spec, cap)


def encode_jpeg(image: np.ndarray, quality: int, width: int = 0, height: int = 0) -> bytes:
    """JPEG of `image`, scaled to fit width/height (0 = keep) without changing the aspect ratio."""
    h, w = image.shape[:2]
    if width or height:
        scale = min(width / w if width else 1e9, height / h if height else 1e9)
        if scale < 1.0:
            size = (max(1, round(w * scale)), max(1, round(h * scale)))
            image = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
    ok, buf = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:  # pragma: no cover - imencode fails only on invalid images, which retrieve() filters
        raise ValueError("JPEG encoding failed")
    return buf.tobytes()
