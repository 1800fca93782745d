"""Image health against real streams: black and frozen demo streams turn `degraded` with the reason
(status, /metrics, MQTT transition, Home Assistant problem entity); a live and a still scene with
sensor noise and a ticking clock stay `active` throughout."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.mosquitto import Mosquitto, Subscriber
from tests.support.rtsp_server import RtspServer, wait_until

STREAMS = {"live": "320x180@15", "still": "320x180@15:static", "black": "320x180@15:black",
           "frozen": "320x180@15:frozen"}


@pytest.fixture(scope="module")
def health_rtsp() -> Iterator[RtspServer]:
    server = RtspServer(streams=STREAMS).start()
    yield server
    server.stop()


def test_black_and_frozen_streams_are_degraded_live_ones_never(health_rtsp, service_factory, tmp_path: Path):
    broker = Mosquitto(tmp_path / "broker").start()
    sub = Subscriber(broker, ["rtsp2jpg/#", "homeassistant/#"]).start()
    try:
        svc = service_factory({
            "device_id": "edge",
            "health": {"interval_sec": 0.5, "frozen_sec": 4},
            "mqtt": {"enabled": True, "host": "127.0.0.1", "port": broker.port},
            "cameras": [{"id": name, "url": health_rtsp.url(name)} for name in STREAMS],
        })
        seen: dict[str, set[str]] = {name: set() for name in STREAMS}

        def statuses() -> dict[str, dict]:
            out = {name: svc.status(name) for name in STREAMS}
            for name, s in out.items():
                seen[name].add(s["status"])
            return out

        black = wait_until(lambda: (lambda s: s["status"] == "degraded" and s)(statuses()["black"]), 30)
        assert black["error"].startswith("uniform picture")
        frozen = wait_until(lambda: (lambda s: s["status"] == "degraded" and s)(statuses()["frozen"]), 40)
        assert frozen["error"].startswith("frozen picture")
        # Watch the live and still cameras for longer than frozen_sec and several scene checks.
        end = time.monotonic() + 8
        while time.monotonic() < end:
            now = statuses()
            assert now["black"]["status"] == "degraded" and now["frozen"]["status"] == "degraded"
            time.sleep(0.25)
        assert seen["live"] == {"active"} | (seen["live"] & {"connecting"}), seen
        assert seen["still"] == {"active"} | (seen["still"] & {"connecting"}), seen
        assert svc.status("black")["frames"] > 0  # frames do arrive: the stream itself is fine

        metrics = svc.get("/metrics").body.decode()
        assert 'rtsp2jpg_camera_degraded{camera="black"} 1' in metrics
        assert 'rtsp2jpg_camera_degraded{camera="live"} 0' in metrics
        assert 'rtsp2jpg_camera_up{camera="black"} 1' in metrics
        assert svc.get("/health").json()["cameras"]["degraded"] == 2

        change = sub.wait_for(lambda m: m.topic == "rtsp2jpg/edge/cameras/frozen/status" and m.payload
                              and json.loads(m.payload)["status"] == "degraded", 20)
        body = json.loads(change.payload)
        assert body["previous"] == "active" and body["error"].startswith("frozen picture")
        problem = sub.wait_for(lambda m: m.topic == "homeassistant/binary_sensor/rtsp2jpg_edge_black_picture/config"
                               and m.payload, 20)
        config = json.loads(problem.payload)
        assert config["device_class"] == "problem" and config["state_topic"] == "rtsp2jpg/edge/cameras/black/status"
        assert "degraded" in config["value_template"]
    finally:
        sub.stop()
        broker.stop()
