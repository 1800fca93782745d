"""CPU per camera by capture source, as a ratio to `ffmpeg -f null` decoding the same stream in the
same run (DESIGN 8), plus snapshot age at one retrieve per second.

Each reader runs side by side with its own `ffmpeg -f null` on the same stream (started a second
apart: the demo server dislikes simultaneous connects), so both see the same machine load and CPU
clock; the ratio of the pair is the figure. CPU is the run time of all the process's threads from
/proc/<pid>/task/*/schedstat (nanoseconds: the precise counter utime+stime are scaled from; at
~0.005 CPU s/s a 20 s window is only 10 clock ticks of /proc/<pid>/stat), over the measuring
window after a warm-up; the demo server's CPU is not counted. The machine is noisy:
several rounds, medians of the per-pair ratios reported.

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

from bench import gst_alone

ROOT = Path(__file__).resolve().parent.parent
TICK = os.sysconf("SC_CLK_TCK")
FLOOR = "ffmpeg -f null (floor)"
RECEIVE_ALONE = "gst-launch receive half alone (rtspsrc ! depay ! parse ! appsink, nothing pulls)"
# name -> (reader mode, retrieve interval in seconds (0 = every frame), poll seconds (-1 = as the service))
READERS = {
    "rtsp2jpg adaptive (default), nobody reads": ("gst-adaptive", 1e9, -1),
    "rtsp2jpg adaptive (default), 1 read / 10 s": ("gst-adaptive", 10.0, -1),
    "rtsp2jpg adaptive (default), 1 read / s": ("gst-adaptive", 1.0, -1),
    "rtsp2jpg adaptive (default), 10 reads / s": ("gst-adaptive", 0.1, -1),
    "rtsp2jpg adaptive, rtspsrc receiving, nobody reads": ("gst-adaptive-rtspsrc", 1e9, -1),
    "rtsp2jpg adaptive, rtspsrc receiving, 1 read / s": ("gst-adaptive-rtspsrc", 1.0, -1),
    "gst-launch avdec_h264 ! appsink (nothing pulls)": ("gst-launch", 0, 0),
    RECEIVE_ALONE: ("gst-launch-receive", 0, 0),
    "OpenCV FFmpeg, grab every frame, 1 retrieve/s": ("ffmpeg", 1.0, 0),
    "OpenCV GStreamer, BGR in pipeline (videoconvert), grab every frame, 1 retrieve/s": ("gst-bgr-opencv", 1.0, 0),
    "OpenCV GStreamer, I420, grab every frame, 1 retrieve/s": ("gst-yuv-opencv", 1.0, 0),
    "OpenCV GStreamer, I420, grab 4/s + on demand, 1 retrieve/s": ("gst-yuv-opencv", 1.0, -1),
    "rtsp2jpg GStreamer (PyGObject): I420, pull 4/s + on demand, 1 retrieve/s": ("gst-yuv", 1.0, -1),
    "rtsp2jpg GStreamer (PyGObject), pull every frame, retrieve every frame": ("gst-yuv", 0.0, 0),
    "rtsp2jpg GStreamer (PyGObject), libav default threads": ("gst-yuv-threads", 1.0, -1),
    "rtsp2jpg GStreamer (PyGObject), keyframes only, 1 retrieve/s": ("gst-key", 1.0, -1),
}


def cpu_seconds(pid: int) -> float:
    """CPU seconds of the live threads of `pid` (threads that exit inside the window are missed; the
    readers' threads live as long as the stream), falling back to utime+stime."""
    total = 0
    try:
        for task in Path(f"/proc/{pid}/task").iterdir():
            try:
                total += int((task / "schedstat").read_text().split()[0])
            except (OSError, IndexError, ValueError):
                continue
    except OSError:
        total = 0
    if total:
        return total / 1e9
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def command(name: str, url: str, total: float) -> list[str]:
    if name == FLOOR:
        return ["ffmpeg", "-nostdin", "-loglevel", "error", "-rtsp_transport", "tcp", "-i", url,
                "-t", str(total), "-f", "null", "-"]
    mode, every, poll = READERS[name]
    if mode == "gst-launch":
        return gst_alone.launch_args(gst_alone.decode_pipeline(url))
    if mode == "gst-launch-receive":
        return gst_alone.launch_args(gst_alone.receive_half(url))
    return [sys.executable, str(ROOT / "bench" / "decoder_reader.py"), mode, url, str(total),
            "--every", str(every), "--poll", str(poll)]


def measure_pair(name: str, url: str, warmup: float, seconds: float) -> tuple[float, dict]:
    """(floor CPU s/s, reader result) measured over the same window."""
    total = warmup + seconds + 2
    procs = []
    for which in (FLOOR, name):
        procs.append(subprocess.Popen(command(which, url, total), stdout=subprocess.PIPE,
                                      stderr=subprocess.DEVNULL, text=True, cwd=ROOT))
        time.sleep(1.0)
    try:
        time.sleep(warmup)
        c0, t0 = [cpu_seconds(p.pid) for p in procs], time.monotonic()
        time.sleep(seconds)
        c1, t1 = [cpu_seconds(p.pid) for p in procs], time.monotonic()
    finally:
        outs = []
        for p in procs:
            if p.args[0] == "gst-launch-1.0":
                p.terminate()
            try:
                outs.append(p.communicate(timeout=15)[0])
            except subprocess.TimeoutExpired:
                p.kill()
                outs.append(p.communicate()[0])
    floor, cpu = ((b - a) / (t1 - t0) for a, b in zip(c0, c1, strict=True))
    result = {"cpu": cpu}
    for line in (outs[1] or "").splitlines():
        if line.startswith("{"):
            result.update(json.loads(line))
    return floor, result


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
        names = [n for n in READERS if not args.only or any(o in n for o in args.only)]
        rows: dict[str, list[tuple[float, dict]]] = {n: [] for n in names}
        for r in range(args.rounds):
            for name in names:
                floor, res = measure_pair(name, url, args.warmup, args.seconds)
                rows[name].append((floor, res))
                print(f"round {r + 1} {name}: {res['cpu']:.4f} CPU s/s, floor {floor:.4f}", file=sys.stderr,
                      flush=True)
        print(f"\n{args.size}@{args.fps} H.264 from rtsp2jpg.demo, {args.rounds} rounds of {args.seconds:g} s; "
              "ratio = median of per-pair ratios to ffmpeg -f null run alongside")
        print("| reader | CPU s/s (median) | floor CPU s/s (median) | ratio to floor | snapshot age p50 / p95 (s) "
              "| wait for the picture p50 / max (s) |")
        print("|---|---|---|---|---|---|")
        for name in names:
            floors = [f for f, _ in rows[name]]
            cpus = [res["cpu"] for _, res in rows[name]]
            ratios = [c / f for c, f in zip(cpus, floors, strict=True) if f > 0]
            ages = sorted(a for _, res in rows[name] for a in res.get("ages", []))
            age = f"{statistics.median(ages):.3f} / {ages[int(0.95 * (len(ages) - 1))]:.3f}" if ages else "-"
            ratio = f"{statistics.median(ratios):.2f}x" if ratios else "-"
            waits = sorted(w for _, res in rows[name] for w in res.get("waits", []))
            wait = f"{statistics.median(waits):.3f} / {waits[-1]:.3f}" if waits else "-"
            print(f"| {name} | {statistics.median(cpus):.4f} | {statistics.median(floors):.4f} | {ratio} | {age} "
                  f"| {wait} |")
    finally:
        server.terminate()
        server.wait(10)
    return 0


if __name__ == "__main__":
    sys.exit(main())
