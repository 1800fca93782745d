"""Shared fixtures: a real RTSP server, the real service as a process, helpers to wait on conditions."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from rtsp_server import RtspServer, wait_until  # noqa: E402
from service_process import ServiceProcess  # noqa: E402

__all__ = ["wait_until"]


def _serves_frames(server: RtspServer, name: str) -> bool:
    """One frame from `name` within a few seconds (OpenCV's FFmpeg backend, in this process)."""
    import cv2

    os.environ.setdefault("OPENCV_FFMPEG_CAPTURE_OPTIONS", "rtsp_transport;tcp|fflags;nobuffer")
    cap = cv2.VideoCapture(server.url(name), cv2.CAP_FFMPEG,
                           [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, 8000, cv2.CAP_PROP_READ_TIMEOUT_MSEC, 5000])
    try:
        return cap.isOpened() and cap.grab()
    finally:
        cap.release()


@pytest.fixture(scope="session")
def _rtsp_session() -> Iterator[RtspServer]:
    server = RtspServer(streams={"cam": "640x360@25:h264", "hevc": "640x360@25:h265"})
    server.start()
    yield server
    server.stop()


@pytest.fixture
def rtsp(_rtsp_session: RtspServer) -> RtspServer:
    """The session's RTSP server (`cam` H.264, `hevc` H.265), checked before each test.

    On a loaded machine a shared mount of the demo server now and then stops sending (a known issue
    of the test server, see test_demo_stream.py): then it is restarted on the same port, so one
    wedge cannot fail every later test that shares the server.
    """
    for _attempt in range(3):
        if all(_serves_frames(_rtsp_session, name) for name in _rtsp_session.streams):
            return _rtsp_session
        _rtsp_session.restart()
    raise RuntimeError("the session RTSP server serves no frames, even after restarts")


@pytest.fixture
def own_rtsp() -> Iterator[RtspServer]:
    """An RTSP server of the test's own, to kill and restart."""
    server = RtspServer(streams={"cam": "640x360@25:h264"})
    server.start()
    yield server
    server.stop()


@pytest.fixture
def service_factory(tmp_path: Path) -> Iterator:
    """`service_factory(config_dict)` -> a started ServiceProcess; all are stopped at teardown."""
    started: list[ServiceProcess] = []

    def make(config: dict | None = None, env: dict | None = None, name: str = "svc",
             start: bool = True) -> ServiceProcess:
        svc = ServiceProcess(tmp_path / name, config, env)
        started.append(svc)
        return svc.start() if start else svc

    yield make
    for svc in started:
        try:
            svc.stop()
        finally:
            svc.kill()
