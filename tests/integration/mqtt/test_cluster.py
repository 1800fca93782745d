"""The MQTT contract on a two-node broker cluster (tests/support/cluster.py: aedes nodes sharing redis):
the device publishes to node A, `rtsp2jpg fleet` and Home Assistant read on node B. Retained
messages, Wills (of a device that dies, and of the clients of a node that dies) and discovery cross."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.cluster import Cluster
from tests.support.mosquitto import Subscriber, retained
from tests.support.rtsp_server import wait_until

REPO = Path(__file__).resolve().parents[3]
ROOT = "rtsp2jpg/edge-k1"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    c = Cluster(tmp_path_factory.mktemp("cluster")).start()
    yield c
    c.stop()


def fleet_on(node) -> tuple[int, dict]:
    done = subprocess.run([sys.executable, "-m", "rtsp2jpg", "fleet", "--broker", "127.0.0.1", "--port",
                           str(node.port), "--json", "--timeout", "10"], cwd=REPO, capture_output=True,
                          text=True, timeout=60)
    return done.returncode, (json.loads(done.stdout) if done.stdout else {})


def availability(node) -> bytes | None:
    return retained(node, f"{ROOT}/availability").get(f"{ROOT}/availability")


def device_config(node, url: str) -> dict:
    return {"device_id": "edge-k1", "mqtt": {"enabled": True, "host": "127.0.0.1", "port": node.port,
                                             "keepalive": 5, "stats_interval_sec": 2},
            "cameras": [{"id": "front", "url": url}]}


def test_device_on_node_a_is_read_whole_on_node_b(rtsp, service_factory, cluster):
    svc = service_factory(device_config(cluster.a, rtsp.url("cam")))

    def b_sees_it_active() -> bool:
        code, view = fleet_on(cluster.b)
        dev = next((d for d in view.get("devices", []) if d["device"] == "edge-k1"), None)
        return bool(code == 0 and dev and dev["availability"] == "online" and dev["stats"]
                    and [c["status"] for c in dev["cameras"]] == ["active"])
    wait_until(b_sees_it_active, 60)
    held = retained(cluster.b, "homeassistant/#")
    assert {t.split("/")[1] for t in held} == {"camera", "binary_sensor"}, held
    assert json.loads(held[next(t for t in held if "/camera/" in t)])["topic"] == f"{ROOT}/cameras/front/snapshot"

    # Home Assistant restarts, connected to node B: the device on node A re-announces.
    with Subscriber(cluster.b, "homeassistant/+/+/config") as ha:
        ha.wait_for(lambda m: m.retain, 10)
        replayed = len(ha.messages)
        ha.client.publish("homeassistant/status", "online", qos=1)
        wait_until(lambda: len(ha.messages) >= replayed + 2, 30)

    # The device dies without a word: node A publishes its Will, node B holds it retained.
    svc.kill()
    assert wait_until(lambda: availability(cluster.b) == b"offline", 60), "node B never held the Will"
    # Node B's fleet view may lag the Will by a moment: the retained store is shared, not instant.
    assert wait_until(lambda: fleet_on(cluster.b)[0] == 1, 30), fleet_on(cluster.b)
    code, view = fleet_on(cluster.b)
    assert code == 1 and view["devices"][0]["trouble"][0] == "offline", view


def test_when_node_a_dies_node_b_publishes_the_wills_of_its_devices(rtsp, service_factory, cluster):
    service_factory(device_config(cluster.a, rtsp.url("cam")), name="svc-a")
    wait_until(lambda: availability(cluster.b) == b"online", 60)
    cluster.a.kill()  # the device's broker node crashes; the device is fine but cut off
    wait_until(lambda: availability(cluster.b) == b"offline", 30)
    cluster.a.start()  # back on the same port: the device reconnects by itself (paho backoff <= 30 s)
    wait_until(lambda: availability(cluster.b) == b"online", 90)
    status = json.loads(retained(cluster.b, f"{ROOT}/cameras/front/status")[f"{ROOT}/cameras/front/status"])
    assert status["status"] == "active"
