"""First snapshot after a reconnect: the demo RTSP server is killed, stays down a while, and comes back
on the same port; how long from its READY to the service's first JPEG of the new session?

Split in two: the wait before the successful attempt started (reconnect backoff: nothing the
camera could do faster) and the open itself (RTSP, pipeline, first picture, JPEG). The attempt's
start is when `/status` counted it (`reconnects` goes up as each session begins), polled every
20 ms, so both parts are +-20 ms. `python -m bench.reconnect --rounds 3 --down 3` prints a table;
`run()` is the `python -m bench` entry (Context: the run's processes).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
from typing import Any

from bench.harness import PYTHON, BenchError, Procs, Service, free_port, get, median, session

STREAM = "1280x720@25:h264"
POLL = 0.02


def _start_demo(procs: Procs, port: int, name: str) -> subprocess.Popen[bytes]:
    proc = procs.start([PYTHON, "-m", "rtsp2jpg.demo", "--host", "127.0.0.1", "--port", str(port),
                        "--stream", f"cam={STREAM}"], name, stdout=subprocess.PIPE)
    assert proc.stdout is not None
    os.set_blocking(proc.stdout.fileno(), False)
    buf, deadline = b"", time.monotonic() + 20
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise BenchError(f"demo server exited with {proc.returncode}; see {name}.log")
        buf += proc.stdout.read() or b""
        if re.search(rb"READY rtsp://", buf):
            return proc
        time.sleep(0.01)
    raise BenchError("demo server did not print READY")


def _snapshot(svc: Service, cam: str) -> tuple[int, dict[str, str]]:
    try:
        code, headers, _ = get(f"{svc.base}/snapshot/{cam}", timeout=2)
    except OSError:
        return 0, {}
    return code, headers


def one_round(procs: Procs, svc: Service, port: int, cam: str, down: float, healthy: float, n: int) -> dict[str, Any]:
    """Kill the server after `healthy` s of stream, restart it `down` s later; the timings of the return."""
    demo = _start_demo(procs, port, f"demo-{n}")
    deadline = time.monotonic() + 40
    while _snapshot(svc, cam)[0] != 200 or svc.status(cam).get("status") != "active":
        if time.monotonic() > deadline:
            raise BenchError("camera never became active before the outage")
        time.sleep(0.1)
    time.sleep(healthy)
    procs.stop(demo, timeout=5)
    time.sleep(down)
    before = svc.status(cam).get("reconnects", 0)
    demo = _start_demo(procs, port, f"demo-{n}b")
    back = time.time()
    attempt_at = None
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        st = svc.status(cam)
        now = time.time()
        if attempt_at is None and st.get("reconnects", 0) > before:
            attempt_at = now
        code, headers = _snapshot(svc, cam)
        if code == 200 and float(headers.get("x-frame-timestamp", 0)) > back:
            first = time.time()
            started = attempt_at if attempt_at is not None else back  # an attempt already under way
            procs.stop(demo, timeout=5)
            return {"total_s": round(first - back, 3), "backoff_s": round(max(0.0, started - back), 3),
                    "open_s": round(first - max(started, back), 3), "reconnects": st.get("reconnects")}
        time.sleep(POLL)
    procs.stop(demo, timeout=5)
    raise BenchError("no snapshot of the new session within 120 s")


def measure(procs: Procs, rounds: int, down: float, healthy: float, capture: dict[str, Any] | None = None) -> dict:
    port = free_port()
    svc = Service(procs, "reconnect", cameras=[{"id": "cam", "url": f"rtsp://127.0.0.1:{port}/cam"}],
                  capture=capture or {}).start()
    try:
        rows = [one_round(procs, svc, port, "cam", down, healthy, n) for n in range(rounds)]
    finally:
        svc.stop()
    return {"rounds": rows, "down_s": down, "healthy_s": healthy, "stream": STREAM,
            **{f"{k}_median": median([r[k] for r in rows]) for k in ("total_s", "backoff_s", "open_s")}}


def run(ctx: Any) -> dict[str, Any]:
    """`python -m bench` entry: its own demo server on a fixed port (the shared one must not die)."""
    rounds = 1 if ctx.smoke else 3
    return {"results": measure(ctx.procs, rounds, ctx.seconds(3.0, 1.0), ctx.seconds(6.0, 1.0)),
            "method": "demo server killed after a healthy spell, restarted on the same port after down_s; "
                      "total = its READY to the first JPEG of the new session; backoff = READY to the start "
                      "of the attempt that succeeded (/status reconnects, polled every 20 ms); open = the rest"}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--down", type=float, default=3.0, help="seconds the server stays down")
    ap.add_argument("--healthy", type=float, default=6.0, help="seconds of stream before each outage")
    ap.add_argument("--capture", default="{}", help="capture.* overrides as JSON")
    args = ap.parse_args()
    with session() as procs:
        out = measure(procs, args.rounds, args.down, args.healthy, json.loads(args.capture))
    print(json.dumps(out, indent=1))
    print(f"\nfirst JPEG after the camera came back: median {out['total_s_median']:.2f} s "
          f"(backoff {out['backoff_s_median']:.2f} s + open {out['open_s_median']:.2f} s), {args.rounds} rounds, "
          f"down {args.down:g} s; load average {os.getloadavg()[0]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
