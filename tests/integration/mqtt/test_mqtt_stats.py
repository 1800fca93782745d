"""Device stats end to end: the real service publishes retained stats to a real mosquitto; the real
`rtsp2jpg fleet` reads them, and calls a device stale once they stop (a hung process, SIGSTOP)."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.integration.mqtt.test_mqtt import SECRET, broker, mqtt_cfg, with_password  # noqa: F401
from tests.support.mosquitto import Subscriber, retained
from tests.support.rtsp_server import wait_until

REPO = Path(__file__).resolve().parents[3]
ROOT = "rtsp2jpg/stats-01"


def fleet_json(port: int) -> tuple[int, dict]:
    done = subprocess.run([sys.executable, "-m", "rtsp2jpg", "fleet", "--broker", "127.0.0.1", "--port", str(port),
                           "--json", "--timeout", "20"], cwd=REPO, capture_output=True, text=True, timeout=60)
    return done.returncode, json.loads(done.stdout)


def test_stats_are_retained_periodic_and_a_frozen_device_goes_stale(rtsp, service_factory, broker):  # noqa: F811
    sub = Subscriber(broker, [f"{ROOT}/stats"]).start()
    svc = service_factory({"device_id": "stats-01", "mqtt": mqtt_cfg(broker, stats_interval_sec=1),
                           "cameras": [{"id": "front", "url": with_password(rtsp.url("cam"))}]})
    try:
        def fresh_active(m) -> bool:
            cam = json.loads(m.payload)["cameras"].get("front", {})
            return cam.get("status") == "active" and cam.get("frame_age_sec") is not None and cam["fps"] > 0
        first = json.loads(sub.wait_for(fresh_active, 30).payload)
        assert first["interval_sec"] == 1 and first["uptime_sec"] >= 0 and first["rss_bytes"] > 10_000_000
        assert 0 <= first["cameras"]["front"]["frame_age_sec"] < 5 and first["cameras"]["front"]["fps"] > 0
        assert isinstance(first["board"], dict) and SECRET not in json.dumps(first)
        wait_until(lambda: len(sub.on(f"{ROOT}/stats")) >= 3, 20)  # periodic, about once a second
        assert all(m.qos == 1 for m in sub.on(f"{ROOT}/stats"))  # delivered QoS = published
        assert f"{ROOT}/stats" in retained(broker, f"{ROOT}/stats")
        code, view = fleet_json(broker.port)
        dev = view["devices"][0]
        assert code == 0 and dev["stats"]["stale"] is False and dev["cameras"][0]["frame_age_sec"] < 5
        assert dev["stats"]["cpu_percent"] is not None and dev["trouble"] == []

        # A hung process keeps its TCP connection (keepalive 60 s: no Will yet) but stops sending stats.
        svc.proc.send_signal(signal.SIGSTOP)
        try:
            deadline = time.monotonic() + 30
            while True:
                code, view = fleet_json(broker.port)
                dev = view["devices"][0]
                if dev["stats"]["stale"] or time.monotonic() > deadline:
                    break
            assert dev["stats"]["stale"] is True and dev["availability"] == "online"
            assert code == 1 and dev["trouble"] == ["stale"] and view["summary"]["stale"] == 1
        finally:
            svc.proc.send_signal(signal.SIGCONT)
        wait_until(lambda: fleet_json(broker.port)[0] == 0, 30)  # back to fresh without a restart
    finally:
        sub.stop()


def test_stats_off_publishes_none(rtsp, service_factory, broker):  # noqa: F811
    sub = Subscriber(broker, ["rtsp2jpg/#"]).start()
    service_factory({"device_id": "stats-01", "mqtt": mqtt_cfg(broker, stats_interval_sec=0),
                     "cameras": [{"id": "front", "url": rtsp.url("cam")}]})
    try:
        sub.wait_for(lambda m: m.topic == f"{ROOT}/cameras/front/status" and b'"active"' in m.payload, 30)
        time.sleep(2.5)  # a quiet spell to show absence; nothing is asserted on timing
        assert sub.on(f"{ROOT}/stats") == []
    finally:
        sub.stop()
