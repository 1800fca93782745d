"""memory: RSS per camera at 720p and 1080p beyond the idle process.

Idle = the service with no camera (OpenCV already imported). Then one camera, then eight at 720p
(issue 13: "measured with 8 cameras polled at 1/s") and three at 1080p, on one shared mount, each
polled once a second so frames are converted and JPEGs cached as in use. Per camera = (RSS with N -
idle) / N; the first camera (which loads whatever its decoder needs beyond the idle process: with
GStreamer's avdec_h264 ~20 MB of libraries on Debian, with libavcodec driven directly next to
nothing) and each next one are reported apart. The service applies the systemd unit's malloc
settings itself (rtsp2jpg/process/malloc.py), so this is the service as deployed.

Beside it, GStreamer's floor of the same question without Python: the software decode pipeline in one
gst-launch process, once and then N times over (bench/gst_alone.py, the same malloc settings); each
next pipeline's RSS is what GStreamer and libavcodec keep per camera (the decoder's picture pool).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from bench import gst_alone
from bench.client import Poller
from bench.context import Context
from bench.harness import BenchError, Service, rss_mb

TARGET_MB_720P = 15.0
COUNTS = {"720p25": (1, 8), "1080p25": (1, 3)}


def _rss_while_polled(ctx: Context, svc: Service, ids: list[str]) -> float:
    pollers = [Poller(svc.port, f"/snapshot/{cid}", 1.0) for cid in ids]
    for p in pollers:
        p.start()
    time.sleep(ctx.seconds(5.0, 0.5))
    rss = rss_mb(svc.pid)
    for p in pollers:
        p.stop()
    return rss


def _pipelines_alone(ctx: Context, url_of: Callable[[int], str], counts: tuple[int, int]) -> dict[str, float]:
    """RSS of gst-launch running the decode pipeline counts[0] and counts[1] times, and per next one."""
    rss = {}
    for n in counts:
        args = gst_alone.launch_args(*(gst_alone.decode_pipeline(url_of(i)) for i in range(n)))
        proc = ctx.procs.start(args, f"memory-gst-{n}", env=gst_alone.MALLOC_ENV)
        try:
            time.sleep(ctx.seconds(6.0, 1.0))
            if proc.poll() is not None:
                raise BenchError(f"gst-launch exited with {proc.returncode}")
            rss[n] = rss_mb(proc.pid)
        finally:
            ctx.procs.stop(proc)
    first, last = counts
    return {"pipelines_rss_1_mb": round(rss[first], 1), f"pipelines_rss_{last}_mb": round(rss[last], 1),
            "pipeline_next_mb": round((rss[last] - rss[first]) / (last - first), 1)}


def run(ctx: Context) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for res in (("180p10",) if ctx.smoke else ("720p25", "1080p25")):
        counts = (1, 2) if ctx.smoke else COUNTS[res]
        stream = ctx.stream(res)
        svc = Service(ctx.procs, f"memory-{res}", decoder=ctx.decoder).start()
        try:
            time.sleep(ctx.seconds(2.0, 0.3))
            idle = rss_mb(svc.pid)
            ids: list[str] = []
            rss: dict[int, float] = {}
            backend = None
            for n in counts:
                added = svc.add_cameras([ctx.rtsp.url(stream, f"mem{i}") for i in range(len(ids), n)])
                ids += [st["id"] for st in added]
                backend = added[-1].get("backend") if added else backend
                rss[n] = _rss_while_polled(ctx, svc, ids)
        finally:
            svc.stop()
        first, last = counts
        out[res] = {"stream": ctx.rtsp.streams[stream], "backend": backend, "idle_rss_mb": round(idle, 1),
                    **{f"rss_{n}_cameras_mb": round(v, 1) for n, v in rss.items()},
                    "cameras": last, "per_camera_mb": round((rss[last] - idle) / last, 1),
                    "first_camera_mb": round(rss[first] - idle, 1),
                    "next_cameras_mb": round((rss[last] - rss[first]) / (last - first), 1),
                    **_pipelines_alone(ctx, lambda i, s=stream: ctx.rtsp.url(s, f"gst{i}"), counts)}
    return {"results": {"target_720p_mb": TARGET_MB_720P, "by_resolution": out},
            "method": "RSS (/proc/<pid>/statm) of the service with N cameras polled 1/s minus the idle service; "
                      "the decode pipeline alone: RSS of gst-launch with N copies minus with 1, per copy"}
