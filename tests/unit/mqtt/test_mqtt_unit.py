"""Publisher and contract pieces in-process: bounded buffering, topic rules, discovery payloads."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from rtsp2jpg import config
from rtsp2jpg.capture.camera import Status, StatusChange
from rtsp2jpg.mqtt import contract as topics
from rtsp2jpg.mqtt.publisher import MAX_PENDING, Publisher


def fake_service(camera_ids: list[str], device_id: str = "edge-01") -> SimpleNamespace:
    cfg = config.load(env={"RTSP2JPG_MQTT_ENABLED": "true", "RTSP2JPG_DEVICE_ID": device_id})
    cams = {cid: SimpleNamespace(id=cid, name=cid, stats=SimpleNamespace(last_seen=0.0, backend="", fps=0.0,
                                                                        width=0, height=0))
            for cid in camera_ids}
    backend = SimpleNamespace(encode_jpeg=lambda *a: b"", capabilities=SimpleNamespace(decoders={}))
    return SimpleNamespace(config=cfg, backend=backend, cameras=lambda: list(cams.values()), camera=cams.get,
                           started_at=0.0, known_camera_ids=lambda: set(cams))


def change(cid: str, i: int) -> StatusChange:
    status = Status.ACTIVE if i % 2 else Status.CONNECTING
    return StatusChange(cid, status, Status.CONNECTING, float(i), "")


def test_offline_buffering_keeps_only_the_latest_status_per_camera():
    pub = Publisher(fake_service(["a", "b", "c"]))  # never connected
    for i in range(20_000):
        pub.on_status(change("abc"[i % 3], i))
    assert len(pub._latest) == 3 and len(pub._ops) == 0
    assert pub._latest["c"].since == 19_997.0  # its last of 20 000 transitions
    pub.on_status(change("unknown", 1))  # a camera the service no longer has is ignored
    assert "unknown" not in pub._latest


def test_connected_queue_is_capped_and_collapses_into_a_full_republish():
    pub = Publisher(fake_service(["a", "b"]))
    pub._ready = True  # as after SUBACK; the publisher thread is not running, so nothing drains
    pub.forget("b")
    for i in range(3 * MAX_PENDING):
        pub.on_status(change("a", i))
    assert len(pub._ops) <= MAX_PENDING and pub._resync
    assert ("forget", "b", None) in pub._ops  # clears survive the collapse


@pytest.mark.parametrize(("base", "device", "ok"), [
    ("rtsp2jpg", "garage-pi-01", True), ("site/1/rtsp2jpg", "pi.local", True),
    ("rtsp2jpg", "a/b", False), ("rtsp2jpg", "a+b", False), ("rtsp2jpg/#", "x", False), ("/rtsp2jpg", "x", False),
])
def test_topic_rules(base, device, ok):
    assert (topics.topic_problem(base, device) is None) is ok


def test_bad_device_id_is_a_config_error():
    with pytest.raises(config.ConfigError, match="device_id"):
        Publisher(fake_service([], device_id="room/1"))


def test_discovery_ids_are_home_assistant_safe():
    t = topics.Topics("rtsp2jpg", "pi.local")
    configs = topics.discovery(t, "front", "Front")
    assert set(configs) == {"homeassistant/camera/rtsp2jpg_pi_local_front/config",
                            "homeassistant/binary_sensor/rtsp2jpg_pi_local_front_stream/config",
                            "homeassistant/binary_sensor/rtsp2jpg_pi_local_front_picture/config"}
    cam = configs["homeassistant/camera/rtsp2jpg_pi_local_front/config"]
    assert cam["topic"] == "rtsp2jpg/pi.local/cameras/front/snapshot"
    assert cam["device"]["name"] == "pi.local" and cam["device"]["identifiers"] == ["rtsp2jpg_pi_local"]
    assert t.camera_of("rtsp2jpg/pi.local/cameras/front/snapshot/request", "snapshot/request") == "front"
    assert t.camera_of("rtsp2jpg/pi.local/cameras/a/b/status", "status") is None


def test_reconnect_backoff_starts_at_a_random_delay_per_device():
    """paho's backoff has no jitter; the Publisher draws the first delay so a fleet's retries spread."""
    from rtsp2jpg.mqtt.client import jitter_reconnect

    class Recorder:
        def reconnect_delay_set(self, min_delay: float, max_delay: float) -> None:
            self.delays = (min_delay, max_delay)

    firsts = []
    for _ in range(200):
        client = Recorder()
        jitter_reconnect(client)
        firsts.append(client.delays[0])
        assert 1.0 <= client.delays[0] <= 5.0 and client.delays[1] == 30.0
    assert max(firsts) - min(firsts) > 3.0  # spread over the range, not one value
