"""`rtsp2jpg fleet` against a broker holding several simulated devices (retained topics per the contract)."""

from __future__ import annotations

import json
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from rtsp2jpg.mqtt import contract
from tests.support.mosquitto import Mosquitto, free_port

REPO = Path(__file__).resolve().parents[3]


@pytest.fixture
def broker(tmp_path: Path):
    b = Mosquitto(tmp_path / "broker").start()
    yield b
    b.stop()


def publish_retained(broker: Mosquitto, messages: dict[str, object]) -> None:
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"sim-{free_port()}")
    client.connect("127.0.0.1", broker.port)
    client.loop_start()
    try:
        for topic, body in messages.items():
            data = body if isinstance(body, str | bytes) else json.dumps(body)
            client.publish(topic, data, qos=1, retain=True).wait_for_publish(5)
    finally:
        client.disconnect()
        client.loop_stop()


class Stats:
    def __init__(self, seen: float, backend: str = "ffmpeg") -> None:
        self.last_seen, self.backend, self.fps, self.width, self.height = seen, backend, 25.0, 640, 360


def device(base: str, device_id: str, availability: str, cameras: dict[str, tuple[str, str]]) -> dict[str, object]:
    """The retained topics of one device, built with the same contract module the service uses."""
    t = contract.Topics(base, device_id)
    now = time.time()
    out: dict[str, object] = {t.availability: availability,
                              t.state: contract.state_payload(now - 3600, list(cameras), device_id, {})}
    for cam, (status, error) in cameras.items():
        out[t.status(cam)] = contract.status_payload(status, "connecting", now - 120, error, Stats(now - 5))
    return out


def fleet(broker: Mosquitto, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "rtsp2jpg", "fleet", "--broker", "127.0.0.1",
                           "--port", str(broker.port), *args], cwd=REPO, capture_output=True, text=True, timeout=60)


def test_fleet_prints_every_device_and_sets_the_exit_code(broker):
    publish_retained(broker, {
        **device("rtsp2jpg", "garage-pi-01", "online", {"front": ("active", ""), "back": ("active", "")}),
        **device("rtsp2jpg", "shed-pi-02", "online", {"gate": ("error", "rtsp://127.0.0.1:9/x: refused")}),
        **device("rtsp2jpg", "barn-03", "offline", {"door": ("active", "")}),
        **device("elsewhere", "other-04", "online", {"x": ("error", "not ours")}),
    })
    table = fleet(broker)
    assert table.returncode == 1, table.stderr
    lines = table.stdout.splitlines()
    assert lines[0].split() == ["DEVICE", "AVAILABILITY", "CAMERA", "STATUS", "SINCE", "LAST", "SEEN", "ERROR"]
    assert any(line.split()[:4] == ["shed-pi-02", "online", "gate", "error"] for line in lines)
    assert any("refused" in line for line in lines) and not any("other-04" in line for line in lines)
    assert lines[-1].startswith("3 device(s), 1 offline; 4 camera(s): 3 active, 0 degraded, 0 connecting, 1 error")

    view = json.loads(fleet(broker, "--json").stdout)
    assert view["ok"] is False and view["summary"]["devices"] == 3
    by_id = {d["device"]: d for d in view["devices"]}
    assert by_id["barn-03"]["availability"] == "offline"
    gate = by_id["shed-pi-02"]["cameras"][0]
    assert gate["id"] == "gate" and gate["status"] == "error" and gate["backend"] == "ffmpeg"
    assert {c["id"] for c in by_id["garage-pi-01"]["cameras"]} == {"front", "back"}

    # The faulty camera recovers, the offline device is decommissioned (its topics cleared): all is well.
    t = contract.Topics("rtsp2jpg", "shed-pi-02")
    gone = contract.Topics("rtsp2jpg", "barn-03")
    publish_retained(broker, {
        t.status("gate"): contract.status_payload("active", "error", time.time(), "", Stats(time.time())),
        gone.availability: b"", gone.state: b"", gone.status("door"): b""})
    ok = fleet(broker, "--json")
    assert ok.returncode == 0, ok.stdout
    assert json.loads(ok.stdout)["summary"]["devices"] == 2

    other = fleet(broker, "--base-topic", "elsewhere")
    assert other.returncode == 1 and "other-04" in other.stdout


def test_fleet_on_an_empty_broker_is_fine_and_an_unreachable_one_is_exit_4(broker):
    empty = fleet(broker, "--json")
    assert empty.returncode == 0 and json.loads(empty.stdout)["summary"]["devices"] == 0
    down = subprocess.run([sys.executable, "-m", "rtsp2jpg", "fleet", "--broker", "127.0.0.1", "--port",
                           str(free_port()), "--timeout", "3"], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert down.returncode == 4 and "cannot connect to 127.0.0.1" in down.stderr


def readline(proc: subprocess.Popen[str], timeout: float = 20.0) -> str:
    ready, _, _ = select.select([proc.stdout], [], [], timeout)
    assert ready, f"fleet --watch printed nothing within {timeout}s"
    return proc.stdout.readline()


def test_fleet_watch_reprints_on_change_and_exits_with_the_current_verdict(broker):
    publish_retained(broker, device("rtsp2jpg", "garage-pi-01", "online", {"front": ("active", "")}))
    proc = subprocess.Popen([sys.executable, "-m", "rtsp2jpg", "fleet", "--broker", "127.0.0.1", "--port",
                             str(broker.port), "--watch", "--json"], cwd=REPO, stdout=subprocess.PIPE, text=True)
    try:
        assert json.loads(readline(proc))["ok"] is True
        t = contract.Topics("rtsp2jpg", "garage-pi-01")
        publish_retained(broker, {t.status("front"): contract.status_payload(
            "error", "active", time.time(), "stream ended", Stats(time.time()))})
        changed = json.loads(readline(proc))
        assert changed["ok"] is False and changed["devices"][0]["cameras"][0]["error"] == "stream ended"
        proc.send_signal(signal.SIGINT)
        assert proc.wait(10) == 1
    finally:
        proc.kill()
