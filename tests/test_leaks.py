"""100 cameras registered then unregistered, three times: threads, file descriptors and memory of
the real service process return to their baseline (counts from /proc, like datasette's fd test)."""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from fault_servers import FakeRtsp, SilentServer
from rtsp_server import wait_until

ROUNDS = int(os.environ.get("RTSP2JPG_LEAK_ROUNDS", "3"))
CAMERAS = 100


def _counts(pid: int) -> dict[str, int]:
    status = Path(f"/proc/{pid}/status").read_text()
    fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
    return {"threads": int(fields["Threads"]), "fds": len(os.listdir(f"/proc/{pid}/fd")),
            "rss_kb": int(fields["VmRSS"].split()[0])}


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs /proc")
def test_register_unregister_100_cameras_returns_to_baseline(service_factory, rtsp):
    port = urlsplit(rtsp.url("cam")).port
    with SilentServer() as silent, FakeRtsp("no_rtp") as dry:
        svc = service_factory({"capture": {"decoder": "ffmpeg", "open_timeout_sec": 2, "stall_timeout_sec": 2,
                                           "reconnect_delay_sec": 0.5, "reconnect_max_delay_sec": 2}},
                              # glibc gives each new thread's allocations their own arena (up to 8 per core);
                              # with the default, RSS rose ~7 MB per round of 100 short-lived cameras while
                              # threads and fds were exact; with 2 arenas it is flat (0.2 MB over 5 rounds).
                              # Deployments should set it too (systemd Environment=MALLOC_ARENA_MAX=2).
                              env={"MALLOC_ARENA_MAX": os.environ.get("MALLOC_ARENA_MAX", "2")})
        pid = svc.proc.pid
        idle = _counts(pid)
        after: list[dict[str, int]] = []
        for round_ in range(ROUNDS):
            ids = []
            # 4 real streams (one at a time: simultaneous first connections can wedge the test server),
            # 2 that answer RTSP but never send RTP, 6 silent, the rest refused.
            for i in range(4):
                url = f"rtsp://r{round_}c{i}:p@127.0.0.1:{port}/cam"
                ids.append(svc.post("/register", {"rtsp_url": url}).json()["id"])
                wait_until(lambda c=ids[-1]: svc.status(c)["status"] == "active", 30)
            ids += [svc.post("/register", {"rtsp_url": dry.url(f"r{round_}d{i}")}).json()["id"] for i in range(2)]
            ids += [svc.post("/register", {"rtsp_url": silent.url(f"r{round_}s{i}")}).json()["id"] for i in range(6)]
            ids += [svc.post("/register", {"rtsp_url": f"rtsp://127.0.0.1:9/r{round_}x{i}"}).json()["id"]
                    for i in range(CAMERAS - len(ids))]
            assert len(set(ids)) == CAMERAS
            wait_until(lambda ids=ids: all(svc.status(c)["status"] in ("active", "error") for c in ids), 60)
            assert svc.get(f"/snapshot/{ids[0]}").status == 200
            peak = _counts(pid)
            assert peak["threads"] >= idle["threads"] + CAMERAS
            for cam in ids:
                assert svc.post(f"/unregister/{cam}").status == 200
            assert svc.get("/cameras").json() == []
            wait_until(lambda: _counts(pid)["threads"] <= idle["threads"], 30)
            # FFmpeg closes sockets on release; give the kernel a moment to reap them.
            wait_until(lambda: _counts(pid)["fds"] <= idle["fds"], 20)
            after.append(_counts(pid))
            print(f"round {round_ + 1}: idle {idle}, peak {peak}, after {after[-1]}")
        assert all(a["threads"] == idle["threads"] for a in after), (idle, after)
        assert all(a["fds"] == idle["fds"] for a in after), (idle, after)
        # Round 1 warms up OpenCV/FFmpeg and the allocator; later rounds must not keep growing.
        growth_mb = (after[-1]["rss_kb"] - after[0]["rss_kb"]) / 1024
        print(f"RSS growth from round 1 to round {ROUNDS}: {growth_mb:.1f} MB")
        assert growth_mb < 8, (after, growth_mb)
