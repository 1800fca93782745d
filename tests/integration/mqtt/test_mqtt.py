"""MQTT contract (DESIGN section 5) end to end: the real service, a real mosquitto, a paho subscriber."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.mosquitto import Message, Mosquitto, Subscriber, free_port, retained
from tests.support.rtsp_server import wait_until

STATUS_FIELDS = {"status", "previous", "since", "last_seen", "error", "backend", "fps", "width", "height"}
STATE_FIELDS = {"version", "started_at", "cameras", "hostname", "decoders"}
SECRET = "s3cret-Pw"
ROOT = "rtsp2jpg/edge-01"


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Mosquitto]:
    b = Mosquitto(tmp_path / "broker").start()
    yield b
    b.stop()


def mqtt_cfg(broker: Mosquitto, **over: object) -> dict:
    return {"enabled": True, "host": "127.0.0.1", "port": broker.port, **over}


def with_password(url: str) -> str:
    return url.replace("rtsp://", f"rtsp://viewer:{SECRET}@", 1)


def payload(m: Message) -> dict:
    return json.loads(m.payload)


def status_is(topic: str, status: str):
    return lambda m: m.topic == topic and m.payload and payload(m)["status"] == status


def test_contract_status_state_snapshots_discovery_and_clean_stop(rtsp, service_factory, broker):
    sub = Subscriber(broker, ["rtsp2jpg/#", "homeassistant/#"]).start()
    svc = service_factory({
        "device_id": "edge-01",
        "mqtt": mqtt_cfg(broker, snapshot_interval_sec=0, snapshot_retain=True),
        "cameras": [{"id": "front", "name": "Front door", "url": with_password(rtsp.url("cam")),
                     "snapshot_interval_sec": 1},
                    {"id": "side", "url": with_password(rtsp.url("hevc"))}],
    })
    try:
        online = sub.wait_for(lambda m: m.topic == f"{ROOT}/availability")
        assert (online.payload, online.qos) == (b"online", 1)

        active = sub.wait_for(status_is(f"{ROOT}/cameras/front/status", "active"), 30)
        body = payload(active)
        assert set(body) == STATUS_FIELDS and active.qos == 1
        assert body["previous"] == "connecting" and body["error"] is None
        assert (body["width"], body["height"]) == (640, 360) and body["backend"]
        connecting = sub.on(f"{ROOT}/cameras/front/status")[0]
        assert payload(connecting)["status"] == "connecting" and payload(connecting)["previous"] == "inactive"

        # State follows the cameras' first transitions: a connect between the two cameras' starts
        # first lists only `front`, then both (a re-publish "on change"), never anything else.
        states = lambda: [payload(m) for m in sub.on(f"{ROOT}/state")]  # noqa: E731
        wait_until(lambda: any(s["cameras"] == ["front", "side"] for s in states()), 30)
        assert all(set(s) == STATE_FIELDS and s["cameras"] in (["front"], ["front", "side"]) for s in states())

        # Periodic snapshots for `front` (per-camera 1 s); none for `side` (mqtt default 0) until asked.
        snap = sub.wait_for(lambda m: m.topic == f"{ROOT}/cameras/front/snapshot", 20)
        assert snap.qos == 0 and snap.payload[:2] == b"\xff\xd8" and snap.payload[-2:] == b"\xff\xd9"
        cv2 = pytest.importorskip("cv2")
        np = pytest.importorskip("numpy")
        image = cv2.imdecode(np.frombuffer(snap.payload, np.uint8), cv2.IMREAD_COLOR)
        assert image.shape[:2] == (360, 640)
        print(f"MEASURE snapshot at defaults (q70, width 640, 640x360 source): {len(snap.payload)} bytes")
        sub.wait_for(status_is(f"{ROOT}/cameras/side/status", "active"), 30)
        assert not sub.on(f"{ROOT}/cameras/side/snapshot")
        asked = time.time()
        sub.client.publish(f"{ROOT}/cameras/side/snapshot/request", b"please", qos=1)
        on_demand = sub.wait_for(lambda m: m.topic == f"{ROOT}/cameras/side/snapshot", 10)
        assert on_demand.payload[:2] == b"\xff\xd8"
        print(f"MEASURE on-demand snapshot: {(on_demand.at - asked) * 1000:.0f} ms after the request")

        lags = sorted((m.at - payload(m)["since"]) * 1000 for m in sub.messages
                      if m.topic.endswith("/status") and m.payload)
        print(f"\nMEASURE camera transition -> status message at a subscriber: {len(lags)} transitions, "
              f"median {lags[len(lags) // 2]:.1f} ms, max {lags[-1]:.1f} ms")

        # Home Assistant discovery: a camera entity on the snapshot topic, a connectivity sensor.
        cam_cfg = payload(sub.wait_for(lambda m: m.topic == "homeassistant/camera/rtsp2jpg_edge-01_front/config"))
        assert cam_cfg["topic"] == f"{ROOT}/cameras/front/snapshot"
        assert cam_cfg["unique_id"] == "rtsp2jpg_edge-01_front" and cam_cfg["name"] == "Front door"
        assert cam_cfg["device"]["identifiers"] == ["rtsp2jpg_edge-01"]
        assert {"topic": f"{ROOT}/availability"} in cam_cfg["availability"]
        sensor = payload(sub.wait_for(
            lambda m: m.topic == "homeassistant/binary_sensor/rtsp2jpg_edge-01_front_stream/config"))
        assert sensor["device_class"] == "connectivity"
        assert sensor["state_topic"] == f"{ROOT}/cameras/front/status"
        assert sensor["availability_topic"] == f"{ROOT}/availability"
        assert sensor["unique_id"] == "rtsp2jpg_edge-01_front_stream"
        n_discovery = len(sub.on("homeassistant/camera/rtsp2jpg_edge-01_front/config"))
        sub.client.publish("homeassistant/status", b"online", qos=1)  # HA restarted: discovery again
        wait_until(lambda: len(sub.on("homeassistant/camera/rtsp2jpg_edge-01_front/config")) > n_discovery, 10)

        # A late subscriber sees the truth from the retained store, with QoS 1.
        with Subscriber(broker, [f"{ROOT}/#"]) as late:
            late.wait_for(lambda m: m.topic == f"{ROOT}/cameras/front/status")
            for topic in ("availability", "state", "cameras/front/status", "cameras/side/status"):
                m = late.wait_for(lambda m, t=topic: m.topic == f"{ROOT}/{t}")
                assert m.retain and m.qos == 1, topic
            assert payload(late.last(f"{ROOT}/cameras/front/status"))["status"] == "active"
            assert late.wait_for(lambda m: m.topic == f"{ROOT}/cameras/front/snapshot").retain

        # Unregistering an API camera clears its retained status, snapshot and discovery.
        reg = svc.post("/register", {"rtsp_url": f"rtsp://viewer:{SECRET}@127.0.0.1:{free_port()}/none"}).json()
        gone = reg["id"]
        sub.wait_for(lambda m: m.topic == f"{ROOT}/cameras/{gone}/status")
        sub.wait_for(lambda m: m.topic == f"homeassistant/camera/rtsp2jpg_edge-01_{gone}/config")
        assert svc.post(f"/unregister/{gone}").json() == {"ok": True}
        cleared = [f"{ROOT}/cameras/{gone}/status", f"{ROOT}/cameras/{gone}/snapshot",
                   f"homeassistant/camera/rtsp2jpg_edge-01_{gone}/config",
                   f"homeassistant/binary_sensor/rtsp2jpg_edge-01_{gone}_stream/config"]
        for topic in cleared:
            sub.wait_for(lambda m, t=topic: m.topic == t and m.payload == b"")
        wait_until(lambda: gone not in payload(sub.last(f"{ROOT}/state"))["cameras"], 10)
        held = retained(broker, "#")
        assert not [t for t in held if gone in t]
        assert svc.get("/health").json()["mqtt"] == "connected"
        metrics = svc.get("/metrics").body.decode()
        assert "rtsp2jpg_mqtt_connected 1" in metrics
        assert re.search(r'rtsp2jpg_mqtt_messages_published_total\{kind="snapshot"\} [1-9]', metrics)

        # SIGTERM: the cameras' last transitions, then `offline` published by the service itself.
        assert svc.stop() == 0
        sub.wait_for(lambda m: m.topic == f"{ROOT}/availability" and m.payload == b"offline", 10)
        assert payload(sub.last(f"{ROOT}/cameras/front/status"))["status"] == "inactive"
        assert "MQTT: stopped" in svc.log() and "offline in time" not in svc.log()
        assert retained(broker, f"{ROOT}/availability") == {f"{ROOT}/availability": b"offline"}
        for m in sub.messages:  # the camera password never leaves the process
            assert SECRET.encode() not in m.payload, m.topic
    finally:
        sub.stop()


def test_sigkill_leaves_the_will(service_factory, broker):
    with Subscriber(broker, [f"{ROOT}/availability"]) as sub:
        svc = service_factory({"device_id": "edge-01", "mqtt": mqtt_cfg(broker)})
        sub.wait_for(lambda m: m.payload == b"online")
        svc.kill()
        will = sub.wait_for(lambda m: m.payload == b"offline", 10)
        assert will.qos == 1
    assert retained(broker, f"{ROOT}/availability") == {f"{ROOT}/availability": b"offline"}


def test_broker_restart_republishes_the_latest_truth(own_rtsp, service_factory, broker):
    svc = service_factory({"device_id": "edge-01", "mqtt": mqtt_cfg(broker),
                           "capture": {"reconnect_delay_sec": 0.5, "reconnect_max_delay_sec": 1,
                                       "open_timeout_sec": 6, "stall_timeout_sec": 3},
                           "cameras": [{"id": "yard", "url": own_rtsp.url("cam")}]})
    topic = f"{ROOT}/cameras/yard/status"
    with Subscriber(broker, [topic]) as sub:
        sub.wait_for(status_is(topic, "active"), 30)
    broker.kill()  # no persistence: the restarted broker has forgotten every retained message
    wait_until(lambda: svc.get("/health").json()["mqtt"] == "disconnected", 15)
    own_rtsp.kill()  # the camera goes down while the broker is away
    wait_until(lambda: svc.status("yard")["status"] in ("connecting", "error"), 30)
    wait_until(lambda: svc.status("yard")["status"] == "error", 30)
    assert svc.get("/snapshot/yard").status in (200, 503)  # HTTP keeps answering meanwhile
    broker.start()
    wait_until(lambda: svc.get("/health").json()["mqtt"] == "connected", 40)
    with Subscriber(broker, [f"{ROOT}/#"]) as sub:
        down = sub.wait_for(lambda m: m.topic == topic, 10)  # live or retained, depending on timing
        assert payload(down)["status"] == svc.status("yard")["status"] == "error"
        assert json.loads(retained(broker, topic)[topic])["status"] == "error"
        assert sub.wait_for(lambda m: m.topic == f"{ROOT}/availability").payload == b"online"
        assert payload(sub.wait_for(lambda m: m.topic == f"{ROOT}/state"))["cameras"] == ["yard"]
        own_rtsp.restart()
        up = sub.wait_for(status_is(topic, "active"), 60)
        assert not up.retain and payload(up)["previous"] in ("connecting", "error")
    assert "MQTT: disconnected from" in svc.log()


def test_dead_broker_blocks_neither_capture_http_nor_shutdown(rtsp, service_factory):
    # A closed port, and an address that never answers (connect waits for its timeout).
    for host, port in (("127.0.0.1", free_port()), ("10.255.255.1", 1883)):
        svc = service_factory({"mqtt": {"enabled": True, "host": host, "port": port},
                               "cameras": [{"id": "front", "url": rtsp.url("cam")}]}, name=f"svc-{host}")
        wait_until(lambda s=svc: s.status("front")["status"] == "active", 30)
        assert svc.get("/snapshot/front").status == 200
        health = svc.get("/health").json()
        assert health["mqtt"] == "disconnected"
        assert svc.stop(timeout=15) == 0


def test_hung_broker_blocks_neither_capture_http_nor_shutdown(rtsp, service_factory, broker):
    svc = service_factory({"device_id": "edge-01", "mqtt": mqtt_cfg(broker, snapshot_interval_sec=0.2),
                           "cameras": [{"id": "front", "url": rtsp.url("cam")}]})
    with Subscriber(broker, [f"{ROOT}/cameras/front/snapshot"]) as sub:
        sub.wait_for(lambda m: True, 30)
    broker.freeze()
    try:
        frames: set[str] = set()  # capture keeps going: fresh frames while the broker is stuck
        wait_until(lambda: frames.add(svc.get("/snapshot/front?max_age=0.2").headers["etag"]) or len(frames) > 3, 10)
        for _ in range(3):  # transitions and clears queue up without waiting for the broker
            cam = svc.post("/register", {"rtsp_url": f"rtsp://127.0.0.1:{free_port()}/none"}).json()["id"]
            assert svc.post(f"/unregister/{cam}").status == 200
        assert svc.stop(timeout=20) == 0
        assert "did not acknowledge offline in time" in svc.log() or "could not publish offline" in svc.log()
    finally:
        broker.thaw()


def test_camera_removed_from_the_file_while_down_is_swept_from_the_broker(service_factory, broker):
    dead = f"rtsp://127.0.0.1:{free_port()}/none"
    cfg = {"device_id": "edge-01", "mqtt": mqtt_cfg(broker),
           "cameras": [{"id": "keep", "url": dead}, {"id": "old", "url": dead + "2"}]}
    first = service_factory(cfg, name="first")
    with Subscriber(broker, [f"{ROOT}/cameras/+/status"]) as sub:
        sub.wait_for(lambda m: m.topic == f"{ROOT}/cameras/old/status")
    assert first.stop() == 0
    cfg["cameras"] = cfg["cameras"][:1]
    with Subscriber(broker, [f"{ROOT}/cameras/old/status", "homeassistant/+/+/config"]) as sub:
        second = service_factory(cfg, name="second")
        sub.wait_for(lambda m: m.topic == f"{ROOT}/cameras/old/status" and m.payload == b"", 15)
        sub.wait_for(lambda m: m.topic == "homeassistant/camera/rtsp2jpg_edge-01_old/config" and m.payload == b"")
    held = retained(broker, "#")
    assert f"{ROOT}/cameras/keep/status" in held and not [t for t in held if "old" in t]
    assert "clearing retained topics of old" in second.log()
