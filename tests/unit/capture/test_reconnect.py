"""Reconnect pacing (capture/reconnect.py): the port probe ends a backoff wait early only for a camera
that was gone, and a healthy camera that drops is retried at once."""

from __future__ import annotations

import itertools
import socket
import threading
import time

from rtsp2jpg.capture import reconnect
from rtsp2jpg.capture.camera import Status
from tests.support.rtsp_server import wait_until
from tests.unit.capture.test_camera import ScriptedCapture, Spec, make_camera


def test_wait_ends_when_a_refusing_port_accepts_again() -> None:
    answers = iter([False, False, False, True])
    started = time.monotonic()
    assert reconnect.wait_for_camera(threading.Event(), 10.0, lambda: next(answers)) == "back"
    assert time.monotonic() - started < 2.0


def test_a_port_that_accepts_keeps_the_plain_backoff() -> None:
    calls = []
    started = time.monotonic()
    assert reconnect.wait_for_camera(threading.Event(), 0.3, lambda: calls.append(1) or True) == "waited"
    assert time.monotonic() - started >= 0.3 and len(calls) == 1
    assert reconnect.wait_for_camera(threading.Event(), 0.3, None) == "waited"


def test_stop_ends_the_wait() -> None:
    stop = threading.Event()
    stop.set()
    assert reconnect.wait_for_camera(stop, 10.0, lambda: False) == "stopped"
    assert reconnect.wait_for_camera(stop, 10.0, None) == "stopped"


def test_port_probe_connects_to_the_urls_port() -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(4)
        port = listener.getsockname()[1]
        probe = reconnect.port_probe(f"rtsp://u:p@127.0.0.1:{port}/x")
        assert probe is not None and probe() is True
    assert probe() is False  # closed now: refused
    assert reconnect.port_probe("rtsp://") is None


def test_a_healthy_camera_that_drops_is_retried_at_once() -> None:
    opened: list[ScriptedCapture] = []

    def opener(spec: Spec) -> ScriptedCapture:
        opened.append(ScriptedCapture(spec, 3))
        return opened[-1]

    ticks = itertools.count()
    # Every clock reading is 10 s after the previous: each 3-frame session "streamed" for longer
    # than HEALTHY_SEC, so the 30 s reconnect delay is never waited.
    cam, _ = make_camera(opener, reconnect_delay_sec=30.0, reconnect_max_delay_sec=60.0)
    cam._clock = lambda: 10.0 * next(ticks)
    cam.start()
    assert wait_until(lambda: len(opened) >= 3, 5)
    cam.stop()
    assert cam.status == Status.INACTIVE
