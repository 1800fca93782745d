"""The capture side as the Service sees it: a typed seam, opencv.py in production, fakes in unit tests."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from rtsp2jpg.capture.opening import Capture
from rtsp2jpg.capture.sources import Capabilities, SourceSpec
from rtsp2jpg.config import CaptureConfig, Config

log = logging.getLogger(__name__)


class Candidates(Protocol):
    def __call__(self, url: str, cfg: CaptureConfig, caps: Capabilities, prefer: str = ...) -> Sequence[SourceSpec]:
        ...


@dataclass(frozen=True)
class Backend:
    """What the Service needs from capture: what this machine can do, which sources to try, how to open one."""

    capabilities: Capabilities
    candidates: Candidates
    open_source: Callable[[SourceSpec], Capture]
    encode_jpeg: Callable[..., bytes]
    # Both are called as (url, timeout[, method], cancelled=stop.is_set): bounded in total, stoppable.
    diagnose: Callable[..., Any] | None = None  # why an open failed (rtsp.diagnose), None in unit tests
    probe: Callable[..., Any] | None = None  # RTSP DESCRIBE: codec and auth errors


def default_backend(cfg: Config) -> Backend:
    """Import OpenCV here, once: importing rtsp2jpg must not need cv2."""
    from rtsp2jpg.capture import opencv, rtsp, sources

    opencv.configure_ffmpeg(cfg.capture.transport)
    caps = opencv.capabilities()
    log.info("OpenCV %s from %s; backends %s; board %s (%s); decoders: %s", caps.cv2_version, caps.cv2_file,
             ", ".join(f"{k}={'yes' if v else 'no'}" for k, v in caps.backends.items()), caps.board,
             caps.board_model or "unknown model", ", ".join(k for k, v in caps.decoders.items() if v) or "none")
    return Backend(caps, sources.candidates, opencv.open_source, opencv.encode_jpeg, rtsp.diagnose, rtsp.probe)
