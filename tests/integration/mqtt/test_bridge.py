"""Bridged sites: device -> site mosquitto -> bridge (docs/fleet.md's own config) -> central mosquitto.

Real brokers, the real service, the real `rtsp2jpg fleet` on the central broker. The bridge block
is read from docs/fleet.md (documented_bridge), so the documented configuration is the tested one.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.mosquitto import Mosquitto, Subscriber, documented_bridge, retained
from tests.support.rtsp_server import wait_until

REPO = Path(__file__).resolve().parents[3]
ROOT = "rtsp2jpg/edge-b1"


@pytest.fixture
def sites(tmp_path: Path) -> Iterator[tuple[Mosquitto, Mosquitto]]:
    central = Mosquitto(tmp_path / "central").start()
    site = Mosquitto(tmp_path / "site", extra=documented_bridge(central.port, "site-a"), persistence=True).start()
    yield central, site
    site.stop()
    central.stop()


def fleet_view(broker: Mosquitto) -> tuple[int, dict]:
    done = subprocess.run([sys.executable, "-m", "rtsp2jpg", "fleet", "--broker", "127.0.0.1", "--port",
                           str(broker.port), "--json", "--timeout", "10"], cwd=REPO, capture_output=True,
                          text=True, timeout=60)
    return done.returncode, (json.loads(done.stdout) if done.stdout else {})


def device(view: dict, device_id: str = "edge-b1") -> dict | None:
    return next((d for d in view.get("devices", []) if d["device"] == device_id), None)


def camera_status(broker: Mosquitto) -> str | None:
    body = retained(broker, f"{ROOT}/cameras/front/status").get(f"{ROOT}/cameras/front/status")
    return json.loads(body)["status"] if body else None


def test_contract_crosses_the_bridge_and_survives_a_central_restart(own_rtsp, service_factory, sites):
    central, site = sites
    svc = service_factory({"device_id": "edge-b1",
                           "mqtt": {"enabled": True, "host": "127.0.0.1", "port": site.port, "keepalive": 5,
                                    "stats_interval_sec": 2},
                           "cameras": [{"id": "front", "url": own_rtsp.url("cam")}]})

    def central_sees_active() -> bool:
        dev = device(fleet_view(central)[1])
        return bool(dev and dev["availability"] == "online" and dev["stats"]
                    and [c["status"] for c in dev["cameras"]] == ["active"])
    wait_until(central_sees_active, 60)
    held = retained(central, "homeassistant/#")
    assert {t.split("/")[1] for t in held} == {"camera", "binary_sensor"}, held
    assert retained(central, "rtsp2jpg-sites/site-a/bridge") == {"rtsp2jpg-sites/site-a/bridge": b"1"}
    assert not retained(central, f"{ROOT}/cameras/+/snapshot"), "snapshots stay at the site"

    # Central restarts and loses every retained message; meanwhile the camera goes down at the site.
    pid = svc.proc.pid
    central.kill()
    own_rtsp.stop()
    wait_until(lambda: camera_status(site) in ("connecting", "error"), 60)
    central.start()
    restarted = time.monotonic()
    wait_until(lambda: camera_status(central) == camera_status(site) and central_online(central), 60)
    print(f"MEASURE bridge: state back on a restarted central {time.monotonic() - restarted:.1f}s after it listened")
    dev = device(fleet_view(central)[1])
    assert dev["availability"] == "online" and dev["cameras"][0]["status"] in ("connecting", "error")
    assert svc.proc.pid == pid and svc.proc.poll() is None  # the device was never restarted

    # The camera comes back: the transition crosses live.
    own_rtsp.start()
    wait_until(lambda: camera_status(central) == "active", 60)

    # Home Assistant restarts at central: its birth message crosses in, discovery comes back out.
    with Subscriber(central, "homeassistant/+/+/config") as ha:
        ha.wait_for(lambda m: m.retain, 10)  # the replay of what central holds
        replayed = len(ha.messages)
        ha.client.publish("homeassistant/status", "online", qos=1)
        wait_until(lambda: len(ha.messages) >= replayed + 2, 30)

    # The device dies without a word: its Will, published by the site broker, crosses the bridge.
    svc.kill()
    wait_until(lambda: retained(central, f"{ROOT}/availability").get(f"{ROOT}/availability") == b"offline", 30)
    code, view = fleet_view(central)
    assert code == 1 and device(view)["trouble"][0] == "offline"


def central_online(central: Mosquitto) -> bool:
    return retained(central, f"{ROOT}/availability").get(f"{ROOT}/availability") == b"online"


def test_a_site_cut_off_from_central_is_told_by_the_bridge_will(sites):
    central, site = sites
    with Subscriber(central, "rtsp2jpg-sites/#") as sub:
        sub.wait_for(lambda m: m.payload == b"1", 30)
        site.kill()
        sub.wait_for(lambda m: m.payload == b"0", 60)
    assert retained(central, "rtsp2jpg-sites/#") == {"rtsp2jpg-sites/site-a/bridge": b"0"}
