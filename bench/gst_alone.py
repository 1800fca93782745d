"""The service's own GStreamer pipelines run by `gst-launch-1.0` with no Python: a second floor.

`ffmpeg -f null` is the floor the issue's targets are stated against. These say how much of a gap
to it is GStreamer's (rtspsrc, the parser, avdec_h264 copying into its buffers) and how much is the
service's: the same launch strings the service builds (capture/chains.py), nothing pulling them.
"""

from __future__ import annotations

import shlex

from rtsp2jpg.capture.chains import CHAINS, pipeline_for
from rtsp2jpg.config import CaptureConfig

# The software H.264 chain: what the service picks on a box without a hardware decoder.
_SOFTWARE_H264 = next(c for c in CHAINS if c.element == "avdec_h264")
# The unit's malloc settings (process/malloc.py applies the same to the service), so memory compares.
MALLOC_ENV = {"MALLOC_MMAP_THRESHOLD_": "524288", "MALLOC_ARENA_MAX": "2"}


def decode_pipeline(url: str) -> str:
    """rtspsrc ! depay ! parse ! avdec_h264 ! I420 ! appsink: the whole chain in one pipeline."""
    return pipeline_for(_SOFTWARE_H264, url, CaptureConfig()).description


def receive_half(url: str) -> str:
    """What an idle camera runs with adaptive decoding: rtspsrc ! depay ! parse ! appsink of access
    units. Nothing pulls here, so the appsink drops the oldest instead of filling and stalling."""
    return pipeline_for(_SOFTWARE_H264, url, CaptureConfig()).receive + " drop=true"


def launch_args(*descriptions: str) -> list[str]:
    """gst-launch-1.0 argv running each description side by side in one process."""
    args = ["gst-launch-1.0", "-q"]
    for description in descriptions:
        args += shlex.split(description)
    return args
