"""memory: RSS per camera at 720p and 1080p beyond the idle process.

Idle = the service with no camera (OpenCV already imported). Then one camera, then eight at 720p
(issue 13: "measured with 8 cameras polled at 1/s") and three at 1080p, on one shared mount, each
polled once a second so frames are converted and JPEGs cached as in use. Per camera = (RSS with N -
idle) / N; the first camera (which also loads GStreamer's decoder libraries, ~30 MB of them on
Debian) and each next one are reported apart. The service applies the systemd unit's malloc
settings itself (rtsp2jpg/process/malloc.py), so this is the service as deployed.
"""

from __future__ import annotations

import time
from typing import Any

from bench.client import Poller
from bench.context import Context
from bench.harness import Service, rss_mb

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
                    "next_cameras_mb": round((rss[last] - rss[first]) / (last - first), 1)}
    return {"results": {"target_720p_mb": TARGET_MB_720P, "by_resolution": out},
            "method": "RSS (/proc/<pid>/statm) of the service with N cameras polled 1/s minus the idle service"}
