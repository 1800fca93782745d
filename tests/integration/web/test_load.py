"""Load: 64 concurrent HTTP clients across 8 cameras, and 32 long-polls that must not starve others.

CI runs the snapshot load for RTSP2JPG_LOAD_SECONDS (default 10 s); the issue's 60 s run is
`RTSP2JPG_LOAD_SECONDS=60 pytest tests/integration/web/test_load.py -s`. Figures are printed (-s shows them).
"""

from __future__ import annotations

import http.client
import os
import statistics
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit

from tests.support.rtsp_server import wait_until

LOAD_SECONDS = float(os.environ.get("RTSP2JPG_LOAD_SECONDS", "10"))
CLIENTS = 64
CAMERAS = 8
FRESH_SEC = 2.0  # no served frame may be older than this (CI machines are shared and noisy)


def _rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def _register_streams(svc, rtsp, n: int) -> list[str]:
    port = urlsplit(rtsp.url("cam")).port
    ids = []
    for i in range(n):  # one at a time: simultaneous first connections can wedge the test server
        url = f"rtsp://load{i}:p@127.0.0.1:{port}/cam"
        ids.append(svc.post("/register", {"rtsp_url": url}).json()["id"])
        wait_until(lambda c=ids[-1]: svc.status(c)["status"] == "active", 30)
    return ids


def _pct(values: list[float], p: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(p / 100 * len(values)))]


def test_64_clients_8_cameras_zero_errors_fresh_frames_flat_memory(service_factory, rtsp):
    svc = service_factory({"capture": {"decoder": "ffmpeg", "reconnect_delay_sec": 0.5}})
    ids = _register_streams(svc, rtsp, CAMERAS)
    latencies: list[float] = []
    ages: list[float] = []
    errors: list[str] = []
    lock = threading.Lock()
    start = threading.Barrier(CLIENTS + 1)
    stop = threading.Event()

    def client(n: int) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", svc.port, timeout=10)
        path = f"/snapshot/{ids[n % CAMERAS]}"
        mine_lat, mine_age = [], []
        start.wait()
        while not stop.is_set():
            t0 = time.perf_counter()
            try:
                conn.request("GET", path)
                resp = conn.getresponse()
                body = resp.read()
            except (OSError, http.client.HTTPException) as e:
                with lock:
                    errors.append(repr(e))
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", svc.port, timeout=10)
                continue
            mine_lat.append(time.perf_counter() - t0)
            if resp.status != 200 or not body.startswith(b"\xff\xd8"):
                with lock:
                    errors.append(f"{resp.status} {body[:80]!r}")
                continue
            mine_age.append(time.time() - float(resp.getheader("X-Frame-Timestamp")))
        conn.close()
        with lock:
            latencies.extend(mine_lat)
            ages.extend(mine_age)

    threads = [threading.Thread(target=client, args=(n,)) for n in range(CLIENTS)]
    for t in threads:
        t.start()
    start.wait()
    began = time.monotonic()
    time.sleep(min(2.0, LOAD_SECONDS / 5))
    rss_start = _rss_kb(svc.proc.pid)
    rss_samples = []
    while time.monotonic() - began < LOAD_SECONDS:
        time.sleep(0.5)
        rss_samples.append(_rss_kb(svc.proc.pid))
    stop.set()
    for t in threads:
        t.join(20)
    elapsed = time.monotonic() - began
    rss_end = _rss_kb(svc.proc.pid)
    n = len(latencies)
    print(f"\nload: {CLIENTS} clients x {CAMERAS} cameras for {elapsed:.1f}s: {n} requests, {n / elapsed:.0f} req/s, "
          f"latency p50 {_pct(latencies, 50) * 1000:.1f} ms p99 {_pct(latencies, 99) * 1000:.1f} ms, "
          f"frame age p50 {_pct(ages, 50) * 1000:.0f} ms p99 {_pct(ages, 99) * 1000:.0f} ms "
          f"max {max(ages) * 1000:.0f} ms, "
          f"errors {len(errors)}, RSS {rss_start / 1024:.0f} -> {rss_end / 1024:.0f} MB "
          f"(peak {max(rss_samples) / 1024:.0f} MB)")
    assert not errors, errors[:5]
    assert n > CLIENTS * 5
    assert max(ages) < FRESH_SEC, (statistics.median(ages), max(ages))
    assert rss_end - rss_start < 30 * 1024, (rss_start, rss_end)
    for cam in ids:
        assert svc.status(cam)["status"] == "active"


def test_32_long_polls_do_not_starve_other_requests(service_factory, rtsp):
    """32 clients long-poll for a frame that will not come soon (after= far ahead); meanwhile health,
    status and snapshots of another camera must answer long before the long-polls time out."""
    svc = service_factory({"capture": {"decoder": "ffmpeg"}, "http": {"long_poll_timeout_sec": 10}})
    cam = _register_streams(svc, rtsp, 1)[0]
    polls_done: list[tuple[float, int]] = []
    began = time.monotonic()

    def long_poll() -> None:
        r = svc.get(f"/snapshot/{cam}?after={2**60}", timeout=30)
        polls_done.append((time.monotonic() - began, r.status))

    pollers = [threading.Thread(target=long_poll) for _ in range(32)]
    for t in pollers:
        t.start()
    time.sleep(0.5)  # let them all reach the server and park
    others = []
    for _ in range(10):
        for path in ("/health", f"/status/{cam}", f"/snapshot/{cam}", "/cameras"):
            r = svc.get(path, timeout=30)
            others.append((time.monotonic() - began, r.status, path))
    last_other = others[-1][0]
    for t in pollers:
        t.join(40)
    parked = [t for t, status in polls_done if status == 304]  # waited the whole timeout
    refused = [t for t, status in polls_done if status == 503]  # over the long-poll share: Retry-After
    print(f"\nlong-polls: {len(parked)} parked until {min(parked):.2f}s, {len(refused)} refused at once (503); "
          f"40 other requests done at {last_other:.2f}s")
    assert all(status == 200 for _, status, _ in others), others
    assert len(parked) + len(refused) == 32 and len(parked) >= 16
    assert last_other < min(parked), "other requests waited for the long-polls to free a worker"


def test_max_age_waits_on_a_throttled_camera_do_not_hold_every_worker(service_factory, rtsp):
    """Twelve `?max_age=` snapshots of a camera that converts one frame per 10 s would each wait up to
    10 s for a fresh one; with 4 workers they took them all and /health queued 9.3 s behind them.
    They now wait only within the long-poll share; the rest wait 0.25 s at most (503: nothing that fresh)."""
    svc = service_factory({"capture": {"decoder": "ffmpeg", "read_throttle_sec": 10},
                           "http": {"threads": 4, "long_poll_timeout_sec": 10}})
    cam = _register_streams(svc, rtsp, 1)[0]
    # A fresh frame now (waiting out the throttle if need be) starts a 10 s window without a new one.
    assert wait_until(lambda: svc.get(f"/snapshot/{cam}?max_age=0.05", timeout=30).status == 200, 60)
    time.sleep(0.2)  # the slot's frame is now too old for max_age=0.05
    done: list[tuple[float, int]] = []
    began = time.monotonic()

    def fresh_snapshot() -> None:
        r = svc.get(f"/snapshot/{cam}?max_age=0.05", timeout=40)
        done.append((time.monotonic() - began, r.status))

    waiters = [threading.Thread(target=fresh_snapshot) for _ in range(12)]
    for t in waiters:
        t.start()
    time.sleep(0.5)  # let them reach the server
    health: list[int] = []
    took: list[float] = []
    for _ in range(5):  # while the waits are held: a generous bound, not a stopwatch
        t0 = time.monotonic()
        health.append(svc.get("/health", timeout=2).status)  # before: 9.3 s behind the waits
        took.append(time.monotonic() - t0)
        time.sleep(max(0.0, 0.3 - took[-1]))
    for t in waiters:
        t.join(60)
    statuses = sorted(status for _, status in done)
    print(f"\nmax_age waits: statuses {statuses}; /health answered in at most {max(took):.2f} s")
    assert health == [200] * 5
    assert len(done) == 12 and set(statuses) <= {200, 503}
    assert statuses.count(503) >= 8, "the waits beyond the long-poll share should have answered early"
