"""Slowloris: clients that trickle a request header must not stall /health or trip the watchdog.

The real service over real sockets; `Slowloris` (tests/support/fault_servers.py) holds N connections that
each send one header byte a second and never finish. The test plays systemd's notify socket to see
that the watchdog keeps being pinged (the service pings only while HTTP answers its own probe).
Before (Waitress defaults: connection_limit 100, select()): 100 tricklers made /health time out.
"""

from __future__ import annotations

import statistics
import threading
import time
from pathlib import Path

from rtsp2jpg.serve import effective_connection_limit, probe_http
from tests.integration.ops.test_systemd_notify import NotifySocket
from tests.support.fault_servers import Slowloris
from tests.support.rtsp_server import wait_until
from tests.support.service_process import http

WATCHDOG_USEC = 2_000_000  # a ping every second while healthy


def _health_latencies(svc, n: int, timeout: float = 5.0) -> list[float]:
    out = []
    for _ in range(n):
        started = time.monotonic()
        assert http("GET", svc.base + "/health", timeout=timeout).status == 200
        out.append(time.monotonic() - started)
        time.sleep(0.2)
    return out


def test_effective_connection_limit_stays_under_the_open_files_limit() -> None:
    assert effective_connection_limit(500, None) == 500
    assert effective_connection_limit(500, 1024) == 500  # systemd's default soft limit
    assert effective_connection_limit(2000, 1024) == 1024 - 128
    assert effective_connection_limit(500, 64) == 16


def test_300_trickling_connections_do_not_stall_health_or_the_watchdog(service_factory, tmp_path: Path) -> None:
    notify = NotifySocket(str(tmp_path / "notify.sock"))
    try:
        svc = service_factory({"http": {"request_timeout_sec": 120}},
                              env={"NOTIFY_SOCKET": str(tmp_path / "notify.sock"),
                                   "WATCHDOG_USEC": str(WATCHDOG_USEC)})
        wait_until(lambda: len(notify.times("WATCHDOG")) >= 1, 20)
        quiet = _health_latencies(svc, 5)
        with Slowloris(svc.port, 300, interval=1.0) as crowd:
            assert crowd.open == 300 and crowd.failed == 0
            pings = len(notify.times("WATCHDOG"))
            held = _health_latencies(svc, 20)  # ~5 s with all 300 trickling
            assert probe_http("127.0.0.1", svc.port, 5.0) is None  # the watchdog's own self-probe
            wait_until(lambda: len(notify.times("WATCHDOG")) >= pings + 3, 10)
            assert crowd.open == 300  # really held all along, not dropped
        print(f"/health with 0 trickling: p50 {statistics.median(quiet) * 1e3:.1f} ms; with 300: p50 "
              f"{statistics.median(held) * 1e3:.1f} ms, max {max(held) * 1e3:.1f} ms")
        assert "withholding the systemd watchdog ping" not in svc.log()
    finally:
        notify.close()


def test_past_the_connection_limit_new_clients_wait_until_tricklers_are_dropped(service_factory) -> None:
    svc = service_factory({"http": {"connection_limit": 50, "request_timeout_sec": 3}})
    with Slowloris(svc.port, 80, interval=1.0) as crowd:
        started = time.monotonic()
        # Waiting in the listen backlog, not refused: answered once the tricklers are cut.
        assert http("GET", svc.base + "/health", timeout=20).status == 200
        waited = time.monotonic() - started
        wait_until(lambda: crowd.dropped >= 50, 20)  # every one past request_timeout_sec
        after = _health_latencies(svc, 5)
    print(f"80 tricklers vs connection_limit 50: first /health after {waited:.2f}s; dropped {crowd.dropped}; "
          f"then p50 {statistics.median(after) * 1e3:.1f} ms")
    assert "did not send a whole request within 3s" in svc.log()


def test_a_slow_response_is_not_cut_by_the_request_timeout(service_factory) -> None:
    """The deadline covers receiving a request, not serving it: a 4 s long-poll outlives a 2 s limit."""
    svc = service_factory({"http": {"request_timeout_sec": 2, "long_poll_timeout_sec": 4},
                           "cameras": [{"id": "cam", "url": "rtsp://127.0.0.1:9/none"}]})
    out: dict[str, object] = {}

    def poll() -> None:
        started = time.monotonic()
        out["status"] = http("GET", svc.base + "/snapshot/cam?after=0", timeout=20).status
        out["took"] = time.monotonic() - started

    worker = threading.Thread(target=poll)
    worker.start()
    worker.join(20)
    assert out.get("status") in (200, 304, 503) and out["took"] >= 3.5, out
