"""adaptive_cpu: what demand-adaptive decoding (the default) costs a camera nobody reads and one read
every 10 s, as a ratio to `ffmpeg -f null` decoding the same stream alongside (issue 13 section 2);
beside them the receive half alone in gst-launch, which says how much of "nobody reads" is rtspsrc's.

The reader is bench/decoder_reader.py in mode gst-adaptive: the service's own capture loop and
source, without HTTP. Each pair (reader + its floor) runs side by side over the same window; rounds
alternate the readers, and the figure is the median of the per-pair ratios. For the 10 s poll, each
read's wait (from the read being due to its picture, burst decoding included) and the picture's age.
"""

from __future__ import annotations

from typing import Any

from bench.context import Context
from bench.cpu_decoders import RECEIVE_ALONE, measure_pair
from bench.harness import median, percentile

READERS = {"nobody_reads": "rtsp2jpg adaptive (default), nobody reads",
           "read_every_10s": "rtsp2jpg adaptive (default), 1 read / 10 s",
           # The same with rtspsrc receiving (capture.rtsp_client: rtspsrc): the receiver before ours.
           "nobody_reads_rtspsrc": "rtsp2jpg adaptive, rtspsrc receiving, nobody reads",
           # No target: what rtspsrc and the parser alone cost, the part of "nobody reads" that is
           # GStreamer's rather than the capture loop's (bench/gst_alone.py).
           "receive_half_alone": RECEIVE_ALONE}
TARGETS = {"nobody_reads": 0.15, "read_every_10s": 0.35}
TARGET_WAIT_S, TARGET_AGE_S = 0.3, 0.2


def run(ctx: Context) -> dict[str, Any]:
    rounds = 1 if ctx.smoke else max(2, ctx.repeat)
    seconds, warmup = ctx.seconds(15.0, 2.0), ctx.seconds(3.0, 1.0)
    url = ctx.rtsp.url(ctx.stream("720p25"), "adaptive")
    pairs: dict[str, list[tuple[float, dict]]] = {k: [] for k in READERS}
    for r in range(rounds):
        for key in (list(READERS) if r % 2 == 0 else list(reversed(READERS))):
            pairs[key].append(measure_pair(READERS[key], url, warmup, seconds))
    out: dict[str, Any] = {}
    for key, got in pairs.items():
        ratios = [res["cpu"] / floor for floor, res in got if floor > 0]
        waits = [w for _, res in got for w in res.get("waits", [])]
        ages = [a for _, res in got for a in res.get("ages", [])]
        out[key] = {"ratio_to_floor": round(median(ratios), 3) if ratios else None,
                    "ratios": [round(x, 3) for x in ratios], "target": TARGETS.get(key),
                    "cpu_s_per_s": round(median([res["cpu"] for _, res in got]) or 0, 4),
                    "floor_cpu_s_per_s": round(median([f for f, _ in got]) or 0, 4),
                    "reads": len(waits), "wait_max_s": max(waits) if waits else None,
                    "age_max_s": max(ages) if ages else None, "age_p50_s": percentile(ages, 50)}
    return {"results": {"stream": ctx.rtsp.streams[ctx.stream("720p25")], "rounds": rounds, "seconds": seconds,
                        "readers": out, "target_wait_s": TARGET_WAIT_S, "target_age_s": TARGET_AGE_S},
            "method": "reader and ffmpeg -f null side by side on one mount, CPU from schedstat over the same "
                      "window after a warm-up; median of per-pair ratios, rounds alternating the readers"}
