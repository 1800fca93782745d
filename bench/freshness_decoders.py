"""Snapshot age through the real service, GStreamer vs FFmpeg source, on the same demo stream.

Two cameras on one 720p25 mount (`decoder: auto` -> gstreamer/avdec_h264, `decoder: ffmpeg`); a
client fetches /snapshot/<id> for each at random intervals (0.1-0.6 s) and reads the demo's time
code: age = arrival of the JPEG - time the frame was drawn.

    .venv/bin/python bench/freshness_decoders.py --seconds 40
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # run as a script: the repo root, for rtsp2jpg and tests.support

from rtsp2jpg.demo.timecode import decode_stamp  # noqa: E402
from tests.support.rtsp_server import RtspServer, wait_until  # noqa: E402
from tests.support.service_process import ServiceProcess  # noqa: E402


def pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seconds", type=float, default=40.0)
    ap.add_argument("--size", default="1280x720")
    args = ap.parse_args()
    server = RtspServer(streams={"cam": f"{args.size}@25:h264"}).start()
    svc = ServiceProcess(Path(tempfile.mkdtemp(prefix="fresh-")), {"cameras": [
        {"id": "gst", "url": server.url("cam"), "decoder": "auto"},
        {"id": "ffm", "url": server.url("cam"), "decoder": "ffmpeg"}]})
    try:
        svc.start()
        for cid in ("gst", "ffm"):
            wait_until(lambda cid=cid: svc.status(cid)["status"] == "active", 30)
        ages: dict[str, list[float]] = {"gst": [], "ffm": []}
        end = time.monotonic() + args.seconds
        while time.monotonic() < end:
            for cid in ("gst", "ffm"):
                r = svc.get(f"/snapshot/{cid}")
                now = time.time()
                if r.status == 200:
                    stamp = decode_stamp(cv2.imdecode(np.frombuffer(r.body, np.uint8), cv2.IMREAD_COLOR))
                    if stamp is not None:
                        ages[cid].append(now - stamp)
            time.sleep(random.uniform(0.1, 0.6))  # noqa: S311 - jitter, not crypto
        print(f"{args.size}@25 H.264, {args.seconds:g} s of /snapshot requests at random 0.1-0.6 s intervals")
        print("| source | backend | n | age p50 | p95 | p99 (ms) |")
        print("|---|---|---|---|---|---|")
        for cid, values in ages.items():
            backend = svc.status(cid)["backend"]
            print(f"| {cid} | {backend} | {len(values)} | {1000 * statistics.median(values):.0f} | "
                  f"{1000 * pct(values, 0.95):.0f} | {1000 * pct(values, 0.99):.0f} |")
    finally:
        svc.stop()
        server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
