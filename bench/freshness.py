"""freshness: how old served frames are, measured end to end with the time the source drew into them.

The demo stream carries its wall-clock draw time in the picture (`rtsp2jpg.demo.timecode.decode_stamp`);
age = time the response arrived - that stamp. Polling at 0.2/s, 1/s and 10/s, and `after=`
long-polls (every frame, as soon as it exists), one pattern at a time against one 720p25 camera.
Bodies are decoded after each pattern so decoding never competes with the service.
"""

from __future__ import annotations

import time
from typing import Any

import cv2
import numpy as np

from bench.client import LongPoller, Poller, Sample
from bench.context import Context
from bench.harness import percentile, single_camera_service
from rtsp2jpg.demo.timecode import decode_stamp

PATTERNS = (("poll_0.2/s", 0.2, 25.0), ("poll_1/s", 1.0, 12.0), ("poll_10/s", 10.0, 8.0), ("after_longpoll", 0.0, 8.0))
TARGET_P99_MS = 120.0


def _ms(x: float | None) -> float | None:
    return None if x is None else round(x * 1000, 1)


def ages(samples: list[Sample]) -> dict[str, Any]:
    """Age statistics of the samples whose picture carries a readable stamp."""
    served, source_to_grab, undecodable = [], [], 0
    for s in samples:
        if s.status != 200:
            continue
        image = cv2.imdecode(np.frombuffer(s.body, np.uint8), cv2.IMREAD_GRAYSCALE)
        stamp = decode_stamp(image) if image is not None else None
        if stamp is None:
            undecodable += 1
            continue
        served.append(s.received - stamp)
        if s.frame_ts:
            source_to_grab.append(s.frame_ts - stamp)
    return {"n": len(served), "undecodable": undecodable, "non_200": sum(1 for s in samples if s.status != 200),
            "p50_ms": _ms(percentile(served, 50)), "p99_ms": _ms(percentile(served, 99)),
            "max_ms": _ms(max(served) if served else None),
            "source_to_grab_p50_ms": _ms(percentile(source_to_grab, 50))}


def run(ctx: Context) -> dict[str, Any]:
    stream = ctx.stream("720p25")
    fps = ctx.fps(ctx.rtsp.streams[stream])
    interval_ms = 1000.0 / fps
    svc, status = single_camera_service(ctx.procs, "freshness", ctx.rtsp.url(stream), ctx.decoder)
    out: dict[str, Any] = {}
    try:
        for name, rate, seconds in PATTERNS:
            duration = ctx.seconds(seconds, 1.0)
            if ctx.smoke and rate and rate < 10:
                continue
            client = (Poller(svc.port, "/snapshot/cam", rate, keep_bodies=True) if rate
                      else LongPoller(svc.port, "/snapshot/cam", keep_bodies=True))
            client.start()
            time.sleep(duration)
            client.stop()
            stats = ages(client.samples)
            stats["errors"] = client.errors
            stats["p99_in_frame_intervals"] = (round(stats["p99_ms"] / interval_ms, 2)
                                               if stats["p99_ms"] is not None else None)
            out[name] = stats
    finally:
        svc.stop()
    return {"results": {"stream": ctx.rtsp.streams[stream], "frame_interval_ms": round(interval_ms, 1),
                        "backend": status.get("backend"), "target_p99_ms": TARGET_P99_MS, "patterns": out},
            "method": "age = response arrival (epoch) - draw time encoded in the picture by the demo source"}
