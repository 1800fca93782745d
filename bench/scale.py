"""scale: 4, 8, 16, 32 cameras of 640x360@15 in one service: total CPU, RSS, and is every camera fresh.

Cameras are added through the API one at a time to one shared mount (the source costs the same at
every step). OpenCV's FFmpeg backend opens one stream at a time per process (a global lock around
open(), ~2 s each while FFmpeg probes), so 32 cameras take over a minute to come up; steps not
reached within BUDGET_S are reported as such rather than stretching the run. At each step every camera is
polled once a second; a camera is fresh when it is active, decodes >= 90% of the source's frame
rate and every snapshot it served was at most FRESH_MS old (age measured from the picture's stamp).
"""

from __future__ import annotations

import time
from typing import Any

from bench import cpu as cpu_bench
from bench.client import Poller
from bench.context import Context
from bench.freshness import ages
from bench.harness import BenchError, Service, cpu_rate, median, rss_mb, threads

STEPS = (4, 8, 16, 32)
FRESH_MS = 500.0
BUDGET_S = 240.0


def run(ctx: Context) -> dict[str, Any]:
    stream = ctx.stream("360p15")
    fps = ctx.fps(ctx.rtsp.streams[stream])
    steps = (2,) if ctx.smoke else STEPS
    window = ctx.seconds(6.0, 1.0)
    floor_cpu, floor_fps = cpu_bench.floor(ctx, ctx.rtsp.url(stream))
    svc = Service(ctx.procs, "scale", decoder=ctx.decoder).start()
    ids: list[str] = []
    out: dict[str, Any] = {}
    backends: set[str] = set()
    try:
        time.sleep(ctx.seconds(1.0, 0.2))
        idle_rss = rss_mb(svc.pid)
        started = time.monotonic()
        for n in steps:
            t0 = time.monotonic()
            try:
                for i in range(len(ids), n):
                    if time.monotonic() - started > ctx.seconds(BUDGET_S, 60.0):
                        raise BenchError(f"time budget spent at {len(ids)} cameras")
                    ids += [st["id"] for st in svc.add_cameras([ctx.rtsp.url(stream, f"scale{i}")])]
            except BenchError as e:
                out[str(n)] = {"cameras": n, "not_reached": str(e)}
                break
            open_s = time.monotonic() - t0
            pollers = [Poller(svc.port, f"/snapshot/{cid}", 1.0, keep_bodies=True) for cid in ids]
            for p in pollers:
                p.start()
            time.sleep(ctx.seconds(2.0, 0.2))
            cpu = median(cpu_rate(svc.pid, window / 2, 2)) or 0.0
            rss = rss_mb(svc.pid)
            for p in pollers:
                p.stop()
            statuses = [svc.status(cid) for cid in ids]
            backends.update(str(s.get("backend")) for s in statuses)
            fresh, worst_ms, min_fps = 0, 0.0, float("inf")
            for st, p in zip(statuses, pollers, strict=True):
                a = ages(p.samples)
                worst = a["max_ms"] if a["max_ms"] is not None else float("inf")
                worst_ms = max(worst_ms, worst)
                min_fps = min(min_fps, st.get("fps") or 0.0)
                if (st.get("status") == "active" and (st.get("fps") or 0) >= 0.9 * fps and a["n"]
                        and not a["non_200"] and worst <= FRESH_MS):
                    fresh += 1
            out[str(n)] = {"cameras": n, "cpu_s_per_s": round(cpu, 3), "cpu_per_camera": round(cpu / n, 4),
                           "rss_mb": round(rss, 1), "rss_per_camera_mb": round((rss - idle_rss) / n, 2),
                           "active": sum(1 for s in statuses if s.get("status") == "active"), "fresh": fresh,
                           "all_fresh": fresh == n, "max_age_ms": round(worst_ms, 1), "min_fps": min_fps,
                           "threads": threads(svc.pid), "seconds_to_add": round(open_s, 1)}
    finally:
        svc.stop()
    return {"results": {"stream": ctx.rtsp.streams[stream], "idle_rss_mb": round(idle_rss, 1),
                        "floor_cpu_s_per_s": round(floor_cpu, 4), "floor_fps": round(floor_fps, 2),
                        "fresh_ms": FRESH_MS, "backends": sorted(backends), "steps": out},
            "method": "one service, cameras added one at a time to one shared mount; each polled 1/s; "
                      "CPU = utime+stime of the service"}
