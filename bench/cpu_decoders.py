"""CPU per camera by capture source, as a ratio to `ffmpeg -f null` decoding the same stream in the
same run (DESIGN 8), plus snapshot age at one retrieve per second.

Each round runs every reader alone, one after the other, against the demo server (its CPU is not
counted); CPU is utime+stime from /proc/<pid>/stat over the measuring window, after a warm-up.
The machine is noisy: several rounds, medians reported.

    .venv/bin/python bench/cpu_decoders.py --size 1280x720 --rounds 3 --seconds 20
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TICK = os.sysconf("SC_CLK_TCK")
READERS = {
    "ffmpeg -f null (floor)": None,
    "gst-launch avdec_h264 fakesink": None,
    "opencv ffmpeg grab+1 retrieve/s": "ffmpeg",
    "opencv gst BGR in pipeline": "gst-bgr",
    "opencv gst I420, BGR on retrieve": "gst-yuv",
    "opencv gst I420, libav threads": "gst-yuv-threads",
    "opencv gst keyframes only": "gst-key",
}


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def command(name: str, url: str, total: float) -> list[str]:
    mode = READERS[name]
    if name.startswith("ffmpeg"):
        return ["ffmpeg", "-nostdin", "-loglevel", "error", "-rtsp_transport", "tcp", "-i", url,
                "-t", str(total), "-f", "null", "-"]
    if name.startswith("gst-launch"):
        return ["gst-launch-1.0", "-q", "rtspsrc", f"location={url}", "latency=0", "protocols=tcp", "!",
                "rtph264depay", "!", "h264parse", "!", "avdec_h264", "max-threads=1", "!", "fakesink", "sync=false"]
    return [sys.executable, str(ROOT / "bench" / "decoder_reader.py"), mode, url, str(total)]


def measure(name: str, url: str, warmup: float, seconds: float) -> dict:
    proc = subprocess.Popen(command(name, url, warmup + seconds + 1), stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True, cwd=ROOT)
    try:
        time.sleep(warmup)
        c0, t0 = cpu_seconds(proc.pid), time.monotonic()
        time.sleep(seconds)
        c1, t1 = cpu_seconds(proc.pid), time.monotonic()
    finally:
        if name.startswith("gst-launch"):
            proc.terminate()
        try:
            out, _ = proc.communicate(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, _ = proc.communicate()
    result = {"cpu": (c1 - c0) / (t1 - t0)}
    for line in (out or "").splitlines():
        if line.startswith("{"):
            result.update(json.loads(line))
    return result


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--size", default="1280x720")
    ap.add_argument("--fps", type=int, default=25)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--warmup", type=float, default=4.0)
    ap.add_argument("--only", action="append", help="reader names containing this text (repeatable)")
    args = ap.parse_args()
    server = subprocess.Popen([sys.executable, "-m", "rtsp2jpg.demo", "--port", "0", "--stream",
                               f"bench={args.size}@{args.fps}:h264"], stdout=subprocess.PIPE, text=True, cwd=ROOT)
    try:
        url = server.stdout.readline().split()[1] + "/bench"  # type: ignore[union-attr]
        names = [n for n in READERS if n.startswith("ffmpeg") or not args.only or any(o in n for o in args.only)]
        rows: dict[str, list[dict]] = {n: [] for n in names}
        for r in range(args.rounds):
            for name in names:
                res = measure(name, url, args.warmup, args.seconds)
                rows[name].append(res)
                print(f"round {r + 1} {name}: {res['cpu']:.3f} CPU s/s", file=sys.stderr, flush=True)
        floors = [res["cpu"] for res in rows[names[0]]]
        print(f"\n{args.size}@{args.fps} H.264, {args.rounds} rounds of {args.seconds:g} s; ratio = median of "
              "per-round ratios to ffmpeg -f null")
        print("| reader | CPU s/s (median) | ratio to floor | snapshot age p50 / max (s) |")
        print("|---|---|---|---|")
        for name in names:
            cpus = [res["cpu"] for res in rows[name]]
            ratios = [c / f for c, f in zip(cpus, floors, strict=True) if f > 0]
            ages = sorted(a for res in rows[name] for a in res.get("ages", []))
            age = f"{statistics.median(ages):.3f} / {ages[-1]:.3f}" if ages else "-"
            print(f"| {name} | {statistics.median(cpus):.3f} | {statistics.median(ratios):.2f}x | {age} |")
    finally:
        server.terminate()
        server.wait(10)
    return 0


if __name__ == "__main__":
    sys.exit(main())
