"""Profile the service under one load pattern with py-spy (sampling, native frames included).

`python -m bench.profile [--pattern idle|poll1|poll10|longpoll|wrk16] [--stream 720p25] [--seconds 15]`
starts its own RTSP source and service, applies the pattern, records py-spy's `raw` (collapsed
stacks) output and prints the top frames by own time and by total time. Needs `pip install
py-spy` (root, or ptrace permission). Not part of `bench/run.sh`: a tool for finding where the
CPU goes, not a figure.
"""

from __future__ import annotations

import argparse
import collections
import shutil
import subprocess
import sys
import time
from pathlib import Path

from bench import loadgen
from bench.client import LongPoller, Poller
from bench.context import FULL_STREAMS
from bench.harness import RtspServer, cpu_seconds, session, single_camera_service

# Leaf frames of a thread that waits (py-spy --native counts them as samples): left out of the tables.
IDLE = ("Condition.wait", "Event.wait", "poll (libc", "select (libc", "epoll_wait", "accept (libc",
        "BaseWSGIServer.run", "asyncore.poll", "loop (waitress")


def top(collapsed: Path, n: int = 25) -> str:
    """Own-time and inclusive-time tables from py-spy's collapsed stacks, waiting threads left out."""
    own: collections.Counter[str] = collections.Counter()
    incl: collections.Counter[str] = collections.Counter()
    total = 0
    for line in collapsed.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack:
            continue
        k = int(count)
        frames = stack.split(";")
        if any(mark in f for f in frames for mark in IDLE):
            continue
        total += k
        own[frames[-1]] += k
        for f in set(frames):
            incl[f] += k
    if not total:
        return "no busy samples"
    out = [f"{total} busy samples", "", "own time:"]
    out += [f"{100 * c / total:5.1f}%  {f}" for f, c in own.most_common(n)]
    out += ["", "inclusive time:"]
    out += [f"{100 * c / total:5.1f}%  {f}" for f, c in incl.most_common(n)]
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.profile", description=__doc__.split("\n")[0])
    parser.add_argument("--pattern", default="poll10", choices=("idle", "poll1", "poll10", "longpoll", "wrk16"))
    parser.add_argument("--stream", default="720p25", choices=sorted(FULL_STREAMS))
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--decoder", default="auto")
    parser.add_argument("--out", type=Path, default=Path("bench/results/profile"))
    args = parser.parse_args(argv)
    spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    args.out.mkdir(parents=True, exist_ok=True)
    with session() as procs:
        rtsp = RtspServer(procs, {args.stream: FULL_STREAMS[args.stream]}).start()
        svc, _ = single_camera_service(procs, "profile", rtsp.url(args.stream), args.decoder)
        client = None
        if args.pattern.startswith("poll"):
            client = Poller(svc.port, "/snapshot/cam", float(args.pattern[4:]))
        elif args.pattern == "longpoll":
            client = LongPoller(svc.port, "/snapshot/cam")
        if client:
            client.start()
        raw = args.out / f"{args.pattern}-{args.stream}.txt"
        c0, t0 = cpu_seconds(svc.pid), time.monotonic()
        spy_proc = subprocess.Popen([spy, "record", "--native", "--threads", "-r", "200", "-f", "raw",
                                     "-d", str(int(args.seconds)), "-o", str(raw), "-p", str(svc.pid)],
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        if args.pattern == "wrk16":
            print(loadgen.load(f"{svc.base}/snapshot/cam", 16, args.seconds), file=sys.stderr)
        spy_proc.wait(args.seconds + 60)
        cpu = (cpu_seconds(svc.pid) - c0) / (time.monotonic() - t0)
        if client:
            client.stop()
        svc.stop()
    print(f"service CPU {cpu:.3f} s/s (includes py-spy's sampling pauses); stacks in {raw}")
    print(top(raw))
    return 0


if __name__ == "__main__":
    sys.exit(main())
