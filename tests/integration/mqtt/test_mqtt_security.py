"""MQTT over TLS with a CA made by the test, and broker authentication: right, wrong, and clearly logged."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.support.mosquitto import Mosquitto, Subscriber, make_ca
from tests.support.rtsp_server import wait_until


def test_tls_with_the_right_ca_connects_and_a_wrong_ca_is_a_clear_error(service_factory, tmp_path):
    broker = Mosquitto(tmp_path / "broker", tls=True).start()
    try:
        wrong_ca, _ = make_ca(tmp_path / "other-pki", "other-ca")
        tls = {"enabled": True, "ca_file": str(broker.ca_cert)}
        with Subscriber(broker, ["rtsp2jpg/+/availability"]) as sub:
            good = service_factory({"device_id": "tls-ok", "mqtt": {
                "enabled": True, "host": "127.0.0.1", "port": broker.tls_port, "tls": tls}}, name="good")
            bad = service_factory({"device_id": "tls-bad", "mqtt": {
                "enabled": True, "host": "127.0.0.1", "port": broker.tls_port,
                "tls": {**tls, "ca_file": str(wrong_ca)}}}, name="bad")
            sub.wait_for(lambda m: m.topic == "rtsp2jpg/tls-ok/availability" and m.payload == b"online")
            wait_until(lambda: good.get("/health").json()["mqtt"] == "connected", 10)
            wait_until(lambda: bad.get("/health").json()["mqtt_error"], 15)
            health = bad.get("/health").json()
            assert health["mqtt"] == "disconnected"
            assert "certificate verify failed" in health["mqtt_error"]
            assert "mqtt.tls.ca_file" in health["mqtt_error"]
            assert "MQTT: cannot connect to 127.0.0.1" in bad.log() and "certificate verify failed" in bad.log()
            assert bad.log().count("certificate verify failed") == 1  # retried quietly, not a log flood
            assert not sub.on("rtsp2jpg/tls-bad/availability")
            assert bad.stop() == 0 and good.stop() == 0
        fleet = [sys.executable, "-m", "rtsp2jpg", "fleet", "--broker", "127.0.0.1", "--port", str(broker.tls_port),
                 "--json", "--timeout", "5"]
        ok = subprocess.run([*fleet, "--ca-file", str(broker.ca_cert)], capture_output=True, text=True, timeout=60)
        assert ok.returncode == 1 and "tls-ok" in ok.stdout  # tls-ok stopped cleanly: offline
        wrong = subprocess.run([*fleet, "--ca-file", str(wrong_ca)], capture_output=True, text=True, timeout=60)
        assert wrong.returncode == 4 and "certificate verify failed" in wrong.stderr
    finally:
        broker.stop()


def test_wrong_password_is_a_clear_error_and_the_right_one_connects(service_factory, tmp_path: Path):
    broker = Mosquitto(tmp_path / "broker", users={"edge": "right-pw"}).start()
    try:
        base = {"enabled": True, "host": "127.0.0.1", "port": broker.port, "username": "edge",
                "password": "${MQTT_PASSWORD}"}
        bad = service_factory({"device_id": "pw-bad", "mqtt": base}, env={"MQTT_PASSWORD": "wrong"}, name="bad")
        good = service_factory({"device_id": "pw-ok", "mqtt": base}, env={"MQTT_PASSWORD": "right-pw"}, name="good")
        wait_until(lambda: good.get("/health").json()["mqtt"] == "connected", 10)
        wait_until(lambda: bad.get("/health").json()["mqtt_error"], 10)
        health = bad.get("/health").json()
        assert health["mqtt"] == "disconnected"
        assert "refused the connection" in health["mqtt_error"]
        assert "Not authorized" in health["mqtt_error"] or "Bad user name or password" in health["mqtt_error"]
        assert "check mqtt.username/password" in bad.log()
        assert "wrong" not in health["mqtt_error"] and "right-pw" not in good.log()
        assert bad.stop() == 0 and good.stop() == 0
    finally:
        broker.stop()
