"""Main and sub streams: what a camera costs when its readers want thumbnails, and what a full-size
snapshot costs when nobody has looked for a while (capture/streams.py).

One demo server sends a main (default 1920x1080@15) and a sub (640x360@15) stream. Each contender is
one service with one camera, alone in turn, rounds interleaved; CPU s/s of the service as a ratio
to the floor, `ffmpeg -f null` decoding the main stream, measured in the same round:
- `main_always`: `url` = the main stream, `decode: always`: what a camera without a sub stream costs;
- `main_adaptive`: the same with adaptive decoding (the default);
- `main_sub`: `streams: {main, sub}`.
Each is polled once a second for a 320-wide thumbnail (a dashboard, Home Assistant) and, every
`--full-every` s, for a full-size snapshot; the full-size answers' latency is reported.

    .venv/bin/python -m bench.streams [--seconds 20] [--rounds 2]
"""

from __future__ import annotations

import argparse
import os
import threading
import time
from pathlib import Path
from typing import Any

from bench.cpu import ffmpeg_args
from bench.harness import Procs, RtspServer, Service, cpu_rate, get, median, percentile, session

CONTENDERS = ("main_always", "main_adaptive", "main_sub")


def _camera(kind: str, server: RtspServer) -> dict[str, Any]:
    if kind == "main_sub":
        return {"id": "cam", "streams": {"main": server.url("main"), "sub": server.url("sub")}}
    return {"id": "cam", "url": server.url("main"), "decode": "always" if kind == "main_always" else "adaptive"}


class _Poller(threading.Thread):
    """A thumbnail a second, a full-size snapshot every `full_every` s; keeps the full ones' latency."""

    def __init__(self, base: str, full_every: float) -> None:
        super().__init__(daemon=True)
        self.base, self.full_every = base, full_every
        self.full_ms: list[float] = []
        self.errors = 0
        self._done = threading.Event()

    def run(self) -> None:
        next_full = time.monotonic() + self.full_every
        while not self._done.wait(1.0):
            full = time.monotonic() >= next_full
            t0 = time.monotonic()
            try:
                status, _, _ = get(self.base + ("/snapshot/cam" if full else "/snapshot/cam?width=320"))
            except OSError:
                status = 0
            if status != 200:
                self.errors += 1
            elif full:
                self.full_ms.append((time.monotonic() - t0) * 1000)
                next_full = time.monotonic() + self.full_every

    def stop(self) -> None:
        self._done.set()
        self.join(5)


def _floor(procs: Procs, url: str, seconds: float) -> float:
    proc = procs.start(ffmpeg_args(url, procs.workdir / f"floor-{time.monotonic_ns()}.progress"), "floor")
    try:
        time.sleep(2.0)
        return median(cpu_rate(proc.pid, seconds / 2, 2)) or 0.0
    finally:
        procs.stop(proc)


def _contender(procs: Procs, server: RtspServer, kind: str, seconds: float, full_every: float) -> dict[str, Any]:
    svc = Service(procs, kind, cameras=[_camera(kind, server)]).start()
    try:
        svc.wait_active("cam")
        time.sleep(3.0)  # the open's bursts and the adaptive hold settle
        poller = _Poller(svc.base, full_every)
        poller.start()
        cpu = median(cpu_rate(svc.pid, seconds / 2, 2)) or 0.0
        poller.stop()
        return {"cpu": cpu, "full_ms": poller.full_ms, "errors": poller.errors,
                "streams": svc.status("cam").get("streams")}
    finally:
        svc.stop()


def run(seconds: float, rounds: int, full_every: float, main: str, sub: str) -> dict[str, Any]:
    out: dict[str, Any] = {k: [] for k in (*CONTENDERS, "floor")}
    with session() as procs:
        server = RtspServer(procs, {"main": f"{main}:h264", "sub": f"{sub}:h264"}).start()
        for _ in range(rounds):
            out["floor"].append(_floor(procs, server.url("main"), seconds))
            for kind in CONTENDERS:
                out[kind].append(_contender(procs, server, kind, seconds, full_every))
    return out


def report(out: dict[str, Any], main: str, sub: str, full_every: float) -> str:
    floor = median(out["floor"]) or 1e-9
    lines = [f"main {main}, sub {sub}; floor (ffmpeg decoding the main stream) {floor:.3f} CPU s/s; "
             f"load average at the end {os.getloadavg()[0]:.2f}",
             "", f"| camera | CPU s/s | vs floor | full-size snapshot every {full_every:g} s, p50 / max ms | errors |",
             "|---|---|---|---|---|"]
    for kind in CONTENDERS:
        rows = out[kind]
        cpu = median([r["cpu"] for r in rows]) or 0.0
        full = [ms for r in rows for ms in r["full_ms"]]
        p50, top = percentile(full, 50), max(full) if full else None
        lat = f"{p50:.0f} / {top:.0f}" if p50 is not None and top is not None else "-"
        lines.append(f"| {kind} | {cpu:.3f} | {cpu / floor:.2f}x | {lat} | {sum(r['errors'] for r in rows)} |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=20.0, help="measured seconds per contender and round")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--full-every", type=float, default=10.0, help="seconds between full-size snapshots")
    parser.add_argument("--main", default="1920x1080@15")
    parser.add_argument("--sub", default="640x360@15")
    parser.add_argument("--out", type=Path, help="also write the table here")
    args = parser.parse_args()
    text = report(run(args.seconds, args.rounds, args.full_every, args.main, args.sub), args.main, args.sub,
                  args.full_every)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
