"""Time to the first snapshot: `POST /register` -> the first JPEG from `GET /snapshot/<id>`.

Beside it, in the same run and against the same demo stream, the reader the original rtsp2jpg uses
(OpenCV's FFmpeg backend with `rtsp_transport;tcp`, `cap.read()` then `cv2.imencode`): from the
start of `VideoCapture()` to its first JPEG, which is less than the original's register-to-JPEG (it
leaves out its HTTP and thread start). Each JPEG's age comes from the demo's time code. The stream
starts with a keyframe (the demo forces one on every PLAY, as many cameras do).

    .venv/bin/python bench/first_snapshot.py --rounds 5 --decoder auto
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.harness import get  # noqa: E402
from rtsp2jpg.demo.timecode import decode_stamp  # noqa: E402
from tests.support.rtsp_server import RtspServer  # noqa: E402
from tests.support.service_process import ServiceProcess  # noqa: E402

ORIGINAL = """
import os, sys, time, json
os.environ["OPENCV_FFMPEG_CAPTURE_OPTIONS"] = "rtsp_transport;tcp"
import cv2
t = time.monotonic()
cap = cv2.VideoCapture(sys.argv[1], cv2.CAP_FFMPEG)
ok, image = cap.read()
jpeg = cv2.imencode(".jpg", image)[1].tobytes() if ok else b""
print(json.dumps({"seconds": time.monotonic() - t, "done": time.time()}))
sys.stdout.flush()
sys.stdout.buffer.write(jpeg)
"""


def age_of(jpeg: bytes, at: float) -> float | None:
    image = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
    stamp = decode_stamp(image) if image is not None else None
    return None if stamp is None else at - stamp


def service_round(svc: ServiceProcess, url: str) -> tuple[float, float | None]:
    started = time.monotonic()
    cam = svc.post("/register", {"rtsp_url": url}).json()["id"]
    try:
        while time.monotonic() - started < 30:
            r = svc.get(f"/snapshot/{cam}", timeout=10)
            if r.status == 200:
                return time.monotonic() - started, age_of(r.body, time.time())
            time.sleep(0.01)
        raise RuntimeError("no snapshot within 30 s")
    finally:
        svc.post(f"/unregister/{cam}", {})


def original_round(url: str) -> tuple[float, float | None]:
    out = subprocess.run([sys.executable, "-c", ORIGINAL, url], capture_output=True, timeout=60, check=True).stdout
    head, _, jpeg = out.partition(b"\n")
    info = json.loads(head)
    return info["seconds"], age_of(jpeg, info["done"])


def _harness_round(svc: Any, url: str) -> tuple[float, float | None]:
    """service_round through bench.harness.Service (python -m bench)."""
    started = time.monotonic()
    cam = svc.register(url)
    try:
        while time.monotonic() - started < 30:
            code, _, body = get(f"{svc.base}/snapshot/{cam}", timeout=10)
            if code == 200:
                return time.monotonic() - started, age_of(body, time.time())
            time.sleep(0.01)
        raise RuntimeError("no snapshot within 30 s")
    finally:
        req = urllib.request.Request(f"{svc.base}/unregister/{cam}", data=b"", method="POST",
                                     headers={"Content-Type": "application/json"})  # 415 for a form
        urllib.request.urlopen(req, timeout=10).close()  # noqa: S310 - loopback


def run(ctx: Any) -> dict[str, Any]:
    """`python -m bench` entry: register -> first JPEG, beside the original's reader, rounds interleaved."""
    from bench.harness import Service

    stream = ctx.stream("720p25")
    rounds = 1 if ctx.smoke else max(3, ctx.repeat)
    svc = Service(ctx.procs, "first-snapshot", decoder=ctx.decoder).start()
    rows: dict[str, list[tuple[float, float | None]]] = {"rtsp2jpg": [], "original_reader": []}
    try:
        for n in range(rounds):
            rows["rtsp2jpg"].append(_harness_round(svc, ctx.rtsp.url(stream, f"first{n}")))
            time.sleep(0.5)
            rows["original_reader"].append(original_round(ctx.rtsp.url(stream, f"orig{n}")))
            time.sleep(0.5)
    finally:
        svc.stop()
    out = {name: {"seconds_median": round(statistics.median(s for s, _ in v), 3),
                  "seconds": [round(s, 3) for s, _ in v],
                  "age_median_s": round(statistics.median(a), 3) if (a := [x for _, x in v if x is not None]) else None}
           for name, v in rows.items()}
    ours, theirs = out["rtsp2jpg"]["seconds_median"], out["original_reader"]["seconds_median"]
    return {"results": {"stream": ctx.rtsp.streams[stream], "rounds": rounds, "target_s": 1.0, **out,
                        "ratio_to_original": round(ours / theirs, 3) if theirs else None},
            "method": "POST /register to the first 200 of GET /snapshot/<id> (polled every 10 ms), beside the "
                      "original's reader (VideoCapture() to its first JPEG) on the same mount, interleaved"}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--size", default="1280x720")
    ap.add_argument("--decoder", default="auto")
    args = ap.parse_args()
    rows: dict[str, list[tuple[float, float | None]]] = {"rtsp2jpg": [], "original reader": []}
    with RtspServer(streams={"cam": f"{args.size}@25:h264"}) as server:
        svc = ServiceProcess(Path(tempfile.mkdtemp(prefix="first-")), {"capture": {"decoder": args.decoder}})
        svc.start()
        try:
            for _ in range(args.rounds):
                rows["rtsp2jpg"].append(service_round(svc, server.url("cam")))
                time.sleep(0.5)
                rows["original reader"].append(original_round(server.url("cam")))
                time.sleep(0.5)
        finally:
            svc.stop()
    print(f"\n{args.size}@25 H.264 (GOP 2 s) from rtsp2jpg.demo, decoder: {args.decoder}, {args.rounds} rounds")
    print("| reader | first JPEG after (s), median [min-max] | its age (s), median |")
    print("|---|---|---|")
    for name, values in rows.items():
        secs = [s for s, _ in values]
        ages = [a for _, a in values if a is not None]
        age = f"{statistics.median(ages):.3f}" if ages else "-"
        print(f"| {name} | {statistics.median(secs):.3f} [{min(secs):.3f}-{max(secs):.3f}] | {age} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
