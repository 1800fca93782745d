"""Faults against real servers: streams that die, stall, lie, garble or refuse; a stop with stuck threads.

Every camera here is read by the real service process through OpenCV's FFmpeg backend; the faults
come from tests/support/fault_servers.py (relays and hand-written RTSP servers on real sockets).
"""

from __future__ import annotations

import time
from urllib.parse import urlsplit

import cv2
import numpy as np
import pytest

from rtsp2jpg.demo.timecode import read_code
from tests.support.fault_servers import DemoRtsp, FakeRtsp, Relay, SilentServer
from tests.support.rtsp_server import wait_until

FAST = {"decoder": "ffmpeg", "reconnect_delay_sec": 0.5, "reconnect_max_delay_sec": 2, "open_timeout_sec": 6,
        "stall_timeout_sec": 3}


def _port(url: str) -> int:
    return urlsplit(url).port


def _image(body: bytes) -> np.ndarray:
    img = cv2.imdecode(np.frombuffer(body, np.uint8), cv2.IMREAD_COLOR)
    assert img is not None
    return img


def _state(svc, cam: str) -> tuple[str, str]:
    s = svc.status(cam)
    return s["status"], s["error"] or ""


def _frames_advance(svc, cam: str, timeout: float = 20) -> None:
    first = svc.status(cam)["frames"]
    wait_until(lambda: svc.status(cam)["frames"] > first + 10, timeout)


def test_stream_cut_mid_frame_recovers(service_factory, rtsp):
    with Relay(_port(rtsp.url("cam"))) as relay:
        svc = service_factory({"capture": FAST, "cameras": [{"id": "cam", "url": relay.url("cam")}]})
        wait_until(lambda: svc.status("cam")["status"] == "active", 30)
        for _ in range(3):  # three cuts, wherever the byte stream happens to be
            before = svc.status("cam")["reconnects"]
            relay.cut()
            wait_until(lambda b=before: svc.status("cam")["reconnects"] > b, 20)
            wait_until(lambda: svc.status("cam")["status"] == "active", 30)
        _frames_advance(svc, "cam")
        r = svc.get("/snapshot/cam?max_age=2")
        assert r.status == 200 and read_code(_image(r.body)) is not None
    assert "Traceback" not in svc.log()


def test_server_comes_back_with_a_different_resolution(service_factory):
    with DemoRtsp({"cam": "640x360@25:h264"}) as server:
        svc = service_factory({"capture": FAST, "cameras": [{"id": "cam", "url": server.url("cam")}]})
        wait_until(lambda: svc.status("cam")["width"] == 640, 30)
        server.restart({"cam": "320x240@15:h264"})
        wait_until(lambda: svc.status("cam")["status"] == "active" and svc.status("cam")["width"] == 320, 40)
        r = svc.get("/snapshot/cam?max_age=2")
        assert r.status == 200
        img = _image(r.body)
        assert img.shape[:2] == (240, 320) and read_code(img) is not None
        assert svc.status("cam")["height"] == 240


def test_server_accepts_tcp_but_never_answers_rtsp(service_factory):
    with SilentServer() as silent:
        svc = service_factory({"capture": {**FAST, "open_timeout_sec": 2},
                               "cameras": [{"id": "mute", "url": silent.url()}]})
        wait_until(lambda: _state(svc, "mute")[0] == "error", 30)
        assert "does not answer RTSP" in _state(svc, "mute")[1], _state(svc, "mute")
        r = svc.get("/snapshot/mute", timeout=10)  # no hang: an answer, not a timeout
        assert r.status == 503 and r.headers.get("retry-after")
        assert svc.get("/health").status == 200


def test_rtsp_answers_but_never_sends_rtp(service_factory):
    with FakeRtsp("no_rtp") as fake:
        svc = service_factory({"capture": {**FAST, "open_timeout_sec": 2},
                               "cameras": [{"id": "dry", "url": fake.url()}]})
        wait_until(lambda: _state(svc, "dry")[0] == "error", 30)
        assert "no frame" in _state(svc, "dry")[1], _state(svc, "dry")
        assert fake.count("PLAY") >= 1  # it really got as far as PLAY
        assert svc.get("/snapshot/dry", timeout=10).status == 503


def test_few_frames_then_stall_watchdog_reconnects_and_says_why(service_factory, rtsp):
    with Relay(_port(rtsp.url("cam"))) as relay:
        svc = service_factory({"capture": FAST, "cameras": [{"id": "cam", "url": relay.url("cam")}]})
        wait_until(lambda: svc.status("cam")["status"] == "active", 30)
        relay.stall()
        # The watchdog (the read timeout) notices, reconnects, and the status says why meanwhile.
        wait_until(lambda: _state(svc, "cam")[0] in ("connecting", "error"), FAST["stall_timeout_sec"] + 15)
        assert "stall" in _state(svc, "cam")[1] or "no frame" in _state(svc, "cam")[1], _state(svc, "cam")
        r = svc.get("/snapshot/cam?max_age=1", timeout=10)
        assert r.status == 503  # the old frame is not passed off as fresh
        relay.resume()
        wait_until(lambda: svc.status("cam")["status"] == "active", 40)
        _frames_advance(svc, "cam")
        assert _state(svc, "cam")[1] == ""


def _is_flat_grey(img: np.ndarray) -> bool:
    sample = img[::8, ::8]
    return float(sample.std()) < 2.0 and abs(float(sample.mean()) - 128) < 12


def test_corrupted_h264_no_crash_no_grey_frames(service_factory, rtsp):
    with Relay(_port(rtsp.url("cam"))) as relay:
        relay.garble(0.002)  # from the first packet: the decoder starts on damaged data
        svc = service_factory({"capture": FAST, "cameras": [{"id": "cam", "url": relay.url("cam")}]})
        deadline = time.monotonic() + 12
        served = statuses = 0
        while time.monotonic() < deadline:
            r = svc.get("/snapshot/cam", timeout=10)
            assert r.status in (200, 503), r.status
            statuses += 1
            if r.status == 200:
                served += 1
                assert not _is_flat_grey(_image(r.body)), "a concealed (flat grey) frame was cached and served"
            time.sleep(0.1)
        assert svc.proc.poll() is None and statuses > 20
        relay.garble(0.0)
        relay.cut()  # start clean: the next keyframe repairs the picture
        wait_until(lambda: (r := svc.get("/snapshot/cam?max_age=2")).status == 200
                   and read_code(_image(r.body)) is not None, 40)
    assert "Traceback" not in svc.log() and "crashed" not in svc.log()


def test_auth_failure_is_clear_and_backoff_is_stretched(service_factory):
    with FakeRtsp("auth") as camera:
        svc = service_factory({"capture": {**FAST, "reconnect_delay_sec": 0.2, "auth_retry_delay_sec": 60},
                               "cameras": [{"id": "cam", "url": camera.url(userinfo="admin:wrong")}]})
        wait_until(lambda: _state(svc, "cam")[0] == "error", 30)
        wait_until(lambda: "rejected the user name or password" in _state(svc, "cam")[1], 20)
        first_logins = sum(1 for _, m, auth in camera.requests if m == "DESCRIBE" and auth)
        time.sleep(8)  # watching for retries: with the 0.2 s base delay there would be several by now
        logins = sum(1 for _, m, auth in camera.requests if m == "DESCRIBE" and auth)
        assert logins == first_logins <= 2, camera.requests
        assert svc.get("/snapshot/cam").status == 503


def test_sigterm_with_16_cameras_some_stuck_exits_within_the_deadline(service_factory):
    # A server of its own: stalled relays leave the shared one's media in states other tests would inherit.
    with DemoRtsp({"cam": "640x360@25:h264"}) as rtsp, SilentServer() as silent, FakeRtsp("no_rtp") as dry, \
            Relay(rtsp.port) as relay:
        slow = {**FAST, "open_timeout_sec": 60, "stall_timeout_sec": 60, "stop_timeout_sec": 2}
        svc = service_factory({"capture": slow})
        # One at a time: simultaneous first connections can wedge the test RTSP server (DESIGN 9).
        for i in range(4):
            url = relay.url("cam", f"r{i}:p") if i % 2 else rtsp.url("cam", f"u{i}:p")
            cam = svc.post("/register", {"rtsp_url": url}).json()["id"]
            wait_until(lambda c=cam: svc.status(c)["status"] == "active", 45)
        for i in range(6):
            assert svc.post("/register", {"rtsp_url": silent.url(f"s{i}")}).status == 200
            assert svc.post("/register", {"rtsp_url": dry.url(f"d{i}")}).status == 200
        relay.stall()  # two cameras now block in read(), six in open(), six wait for RTP that never comes
        wait_until(lambda: dry.count("PLAY") >= 1 and silent.connections >= 6, 20)
        assert len(svc.get("/cameras").json()) == 16
        time.sleep(1)
        started = time.monotonic()
        code = svc.stop(timeout=slow["stop_timeout_sec"] + 10)
        took = time.monotonic() - started
        print(f"SIGTERM with 16 cameras (14 stuck): exited {code} after {took:.2f}s "
              f"(stop_timeout_sec={slow['stop_timeout_sec']})")
        assert code == 0
    log = svc.log()
    assert "stopped" in log and "did not stop in time" in log


@pytest.mark.parametrize("mode", ["silent", "refused"])
def test_unreachable_cameras_do_not_block_requests(service_factory, mode):
    """Registration, status and snapshots answer at once even while cameras hang in open()."""
    with SilentServer() as silent:
        url = silent.url() if mode == "silent" else "rtsp://127.0.0.1:9/x"
        svc = service_factory({"capture": {**FAST, "open_timeout_sec": 30}})
        ids = [svc.post("/register", {"rtsp_url": url + f"?n={i}"}, timeout=5).json()["id"] for i in range(8)]
        for cam in ids:
            assert svc.get(f"/status/{cam}", timeout=5).status == 200
            assert svc.get(f"/snapshot/{cam}", timeout=5).status == 503
        if mode == "refused":
            wait_until(lambda: "refused" in _state(svc, ids[0])[1], 30)


def test_black_hole_cameras_do_not_delay_a_healthy_one(service_factory, own_rtsp):
    """OpenCV 4.6 opens FFmpeg captures under one global mutex: without the RTSP pre-check, each
    silent camera held every other camera's open back for its whole open timeout (measured: 16.5 s
    for a healthy camera behind one silent one with open_timeout_sec 15)."""
    with SilentServer() as silent:
        svc = service_factory({"capture": {**FAST, "open_timeout_sec": 30},
                               "cameras": [{"id": f"mute{i}", "url": silent.url(f"m{i}")} for i in range(4)]})
        wait_until(lambda: silent.connections >= 4, 10)
        cam = svc.post("/register", {"rtsp_url": own_rtsp.url("cam")}).json()["id"]
        wait_until(lambda: svc.status(cam)["status"] == "active", 20)  # well inside one open timeout
