"""Rules that held only at registration now hold at start and before every reconnect, and one URL
registered by many requests at once starts exactly one camera (real service, real sockets)."""

from __future__ import annotations

import os
import socket
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

from rtsp2jpg.capture.camera import Camera, Status
from rtsp2jpg.capture.sources import Capabilities, SourceSpec
from rtsp2jpg.config import CaptureConfig
from rtsp2jpg.urls import check_allowed
from tests.support.fault_servers import SilentServer
from tests.support.rtsp_server import wait_until
from tests.support.service_process import ServiceProcess

SLOW = {"reconnect_delay_sec": 0.5, "reconnect_max_delay_sec": 1, "open_timeout_sec": 2}


def test_registry_and_config_cameras_outside_allow_networks_never_connect(tmp_path: Path) -> None:
    """Registered without a restriction, restarted with one: status error with the reason, zero
    connections at the peer, and the registration is kept (the operator may widen the list)."""
    with SilentServer() as peer:
        first = ServiceProcess(tmp_path / "svc", {"capture": {**SLOW, "reconnect_delay_sec": 30}})
        first.start()
        r = first.post("/register", {"rtsp_url": peer.url("registered")})
        assert r.status == 200
        cam_id = r.json()["id"]
        assert first.stop() == 0
        before = peer.connections
        peer.close_connections()

        svc = ServiceProcess(tmp_path / "svc", {
            "capture": {**SLOW, "allow_networks": ["10.0.0.0/8"]},
            "cameras": [{"id": "cfg", "url": peer.url("config")}]})
        try:
            svc.start()
            for cid in (cam_id, "cfg"):
                wait_until(lambda cid=cid: svc.status(cid)["status"] == "error", 10)
                st = svc.status(cid)
                assert st["error"] == "host 127.0.0.1 is outside capture.allow_networks", st
            time.sleep(3)  # several reconnect rounds (0.5-1 s backoff): each one is checked again
            assert peer.connections == before, "a camera outside allow_networks was connected to"
            assert svc.status(cam_id)["status"] == "error"
            assert cam_id in {c["id"] for c in svc.get("/cameras").json()}  # still registered
            assert svc.get("/health").json()["cameras"]["error"] == 2
            assert svc.stop() == 0
        finally:
            svc.kill()


class _Capture:
    behind_sec = 0.0
    def __init__(self, spec: Any, frames: int) -> None:
        self.spec, self.left = spec, frames

    def grab(self) -> bool:
        self.left -= 1
        time.sleep(0.001)
        return self.left >= 0

    def retrieve(self, glance: bool = False) -> Any:
        return np.full((4, 6, 3), 7, np.uint8)

    def nominal_fps(self) -> float:
        return 0.0

    def release(self) -> None:
        pass


def test_reconnect_rechecks_allow_networks_when_the_name_moves() -> None:
    """Unit level: the name resolves inside the list, the stream drops, the name now resolves
    outside: the next attempt never opens, and the status names the address."""
    answer = ["10.0.0.5"]

    def resolve(host: str, *_: Any, **__: Any) -> list[Any]:
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (answer[0], 554))]

    opened: list[_Capture] = []

    def opener(spec: Any) -> _Capture:
        opened.append(_Capture(spec, 20))
        if len(opened) == 2:
            answer[0] = "192.168.7.7"  # after the second session, the camera's name points elsewhere
        return opened[-1]

    cfg = CaptureConfig(reconnect_delay_sec=0.01, reconnect_max_delay_sec=0.05, stop_timeout_sec=2.0)
    spec = SourceSpec("ffmpeg", "ffmpeg", "rtsp://camera.lan/x")
    cam = Camera("cam1", "", "rtsp://camera.lan/x", cfg, [spec], open_source=opener, on_status=lambda c: None,
                 admit=lambda url: check_allowed(url, ("10.0.0.0/8",), resolve))
    cam.start()
    try:
        assert wait_until(lambda: cam.status == Status.ERROR and "192.168.7.7" in cam.error, 5)
        time.sleep(0.3)  # more reconnect rounds: none of them opens
        assert len(opened) == 2
        assert cam.error == "host 192.168.7.7 is outside capture.allow_networks"
        answer[0] = "10.0.0.6"  # back inside: the camera recovers by itself
        assert wait_until(lambda: len(opened) >= 3, 5)
    finally:
        cam.stop()


def _capture_threads(pid: int) -> list[str]:
    """OS thread names of the service (Camera names its thread camera-<id>, also for the kernel)."""
    names = []
    for comm in Path(f"/proc/{pid}/task").glob("*/comm"):
        try:
            names.append(comm.read_text().strip())
        except OSError:  # the thread ended meanwhile
            pass
    return [n for n in names if n.startswith("camera-")]


def test_concurrent_registrations_of_one_url_start_one_camera(service_factory) -> None:
    with SilentServer() as peer:
        svc = service_factory({"capture": {**SLOW, "reconnect_delay_sec": 30}})
        url = peer.url("same")
        barrier = threading.Barrier(20)
        answers: list[Any] = []
        lock = threading.Lock()

        def post() -> None:
            barrier.wait()
            r = svc.post("/register", {"rtsp_url": url})
            with lock:
                answers.append(r)

        threads = [threading.Thread(target=post) for _ in range(20)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        assert [r.status for r in answers] == [200] * 20
        ids = {r.json()["id"] for r in answers}
        assert len(ids) == 1
        cam_id = ids.pop()
        assert len(svc.get("/cameras").json()) == 1
        assert svc.proc is not None
        pid = svc.proc.pid
        wait_until(lambda: _capture_threads(pid) == [f"camera-{cam_id}"], 5)
        assert _capture_threads(pid) == [f"camera-{cam_id}"]
        assert svc.post(f"/unregister/{cam_id}").status == 200
        assert wait_until(lambda: _capture_threads(pid) == [], 10), _capture_threads(pid)
        assert os.path.exists(f"/proc/{pid}")


def test_register_check_and_start_is_atomic(tmp_path: Path) -> None:
    """In process, with the window between "no camera yet" and "camera inserted" widened to 50 ms
    (a slow candidates()): 20 threads register one URL, exactly one Camera and one thread exist."""
    from rtsp2jpg import config
    from rtsp2jpg.capture.backend import Backend
    from rtsp2jpg.service import Service

    def slow_candidates(url: str, *_: Any) -> list[SourceSpec]:
        time.sleep(0.05)
        return [SourceSpec("fake", "ffmpeg", url)]

    def never_opens(_spec: object) -> None:
        raise RuntimeError("no stream in this test")

    backend = Backend(capabilities=Capabilities.nothing(), candidates=slow_candidates, open_source=never_opens,
                      encode_jpeg=lambda *a, **k: b"")
    cfg = config.load(env={}, overrides={"storage": {"db_path": str(tmp_path / "r.db")},
                                          "capture": {"reconnect_delay_sec": 30}})
    service = Service(cfg, backend)
    service.start()
    try:
        barrier = threading.Barrier(20)
        got: list[Camera] = []

        def register() -> None:
            barrier.wait()
            got.append(service.register("rtsp://127.0.0.1:9/one")[0])

        threads = [threading.Thread(target=register) for _ in range(20)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(10)
        assert len(got) == 20 and len({id(c) for c in got}) == 1
        cam = got[0]
        assert [t.name for t in threading.enumerate() if t.name.startswith("camera-")] == [f"camera-{cam.id}"]
        assert service.unregister(cam.id)
        assert wait_until(lambda: not [t for t in threading.enumerate() if t.name.startswith("camera-")], 5)
    finally:
        service.stop()
