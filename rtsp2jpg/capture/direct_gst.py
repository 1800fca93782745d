"""A GStreamer source driven through PyGObject (gst.py, gst_demand.py): no cv2 here.

opencv.open_source picks it where PyGObject is installed; it hands pictures over as they come
(YUV planes wrapped by the caller's `planes`, so this module needs no cv2).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from rtsp2jpg.capture import gst, gst_demand
from rtsp2jpg.capture.sources import SourceError, SourceSpec


class DirectCapture:
    """A GStreamer source driven through PyGObject (gst.py): bounded waits, and release() really stops it.
    With adaptive decoding `pipe` is a gst_demand.DemandPipeline, which decodes only what is wanted."""

    def __init__(self, spec: SourceSpec, pipe: gst.Pipeline | gst_demand.DemandPipeline, first: Any,
                 planes: Callable[[np.ndarray, str], Any]) -> None:
        self.spec = spec
        self._planes = planes  # opencv.YuvPicture: how YUV pictures are handed on
        self._pipe = pipe
        self._sample = first
        self._primed = True  # the first frame was pulled while opening: the next grab() is free
        self.behind_sec = 0.0

    def grab(self) -> bool:
        """Pull the newest frame (the appsink keeps only that one), replacing an unretrieved one."""
        if self._primed:
            self._primed = False
        else:
            # Let go of an unretrieved sample before waiting for the next: held across the pull, it
            # is one more decoder buffer outstanding, and the decoder's pool grows to the peak.
            self._sample = None
            self._sample = self._pipe.pull(self.spec.read_timeout_sec)
        return self._sample is not None

    def retrieve(self, glance: bool = False) -> Any:
        """The grabbed picture: BGR as an array, YUV wrapped by `planes`; None if unreadable."""
        sample, self._sample = self._sample, None
        if sample is None:
            return None
        if isinstance(self._pipe, gst_demand.DemandPipeline):
            picture = self._pipe.picture(sample, glance)
            self.behind_sec = self._pipe.behind_sec
        else:
            picture = self._pipe.picture(sample)
        if picture is None:
            return None
        if picture.format == "BGR":
            return picture.data
        return self._planes(picture.data, picture.format)

    def nominal_fps(self) -> float:
        return self._pipe.fps

    def release(self) -> None:
        self._pipe.close()


def open_direct(spec: SourceSpec, planes: Callable[[np.ndarray, str], Any]) -> DirectCapture:
    try:
        if spec.decode:
            pipe, first = gst_demand.open_demand(spec.receive, spec.decode, spec.label, spec.open_timeout_sec,
                                                 spec.rtsp_url, tls_verify=spec.tls_verify, lavc_codec=spec.lavc)
        else:
            pipe, first = gst.open_pipeline(spec.target, spec.label, spec.open_timeout_sec)
    except gst.PipelineError as e:
        raise SourceError(str(e)) from None
    return DirectCapture(spec, pipe, first, planes)
