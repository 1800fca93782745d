"""Fleet scale bench: N simulated devices x M cameras against one local mosquitto.

Each simulated device is one MQTT connection following the contract (rtsp2jpg/mqtt/contract.py): a Will,
retained `online`, `state`, one retained status per camera. A share of cameras then flaps
(active <-> connecting, one status message per transition, as the service publishes them) while
`rtsp2jpg fleet --json` reads the whole fleet; a wildcard subscriber counts the message rate.

    python3 bench/mqtt_fleet.py --devices 500 --cameras 4 --flap 0.1 --flap-period 5 --duration 20
"""

from __future__ import annotations

import argparse
import json
import random
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))  # run as a script: the repo root, for rtsp2jpg and tests.support

from rtsp2jpg.mqtt import contract as contract  # noqa: E402
from tests.support.mosquitto import Mosquitto  # noqa: E402


class Stats:
    def __init__(self) -> None:
        self.last_seen, self.backend, self.fps, self.width, self.height = time.time(), "ffmpeg", 25.0, 1280, 720


class SimDevice:
    """One lightweight device: a paho connection with a Will and the retained topics of M cameras."""

    def __init__(self, port: int, device_id: str, cameras: int) -> None:
        self.t = contract.Topics("rtsp2jpg", device_id)
        self.cameras = {f"cam{i}": "active" for i in range(cameras)}
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"rtsp2jpg-{device_id}")
        self.client.will_set(self.t.availability, contract.OFFLINE, qos=1, retain=True)
        self.client.max_queued_messages_set(1000)
        self.connected = threading.Event()
        self.client.on_connect = lambda *a: self.connected.set()
        self.client.connect_async("127.0.0.1", port, keepalive=60)
        self.client.loop_start()

    def publish(self, topic: str, payload: object) -> mqtt.MQTTMessageInfo:
        data = payload if isinstance(payload, str | bytes) else json.dumps(payload, separators=(",", ":"))
        return self.client.publish(topic, data, qos=1, retain=True)

    def announce(self) -> list[mqtt.MQTTMessageInfo]:
        infos = [self.publish(self.t.availability, contract.ONLINE),
                 self.publish(self.t.state, contract.state_payload(time.time(), list(self.cameras), "sim", {}))]
        for cam, status in self.cameras.items():
            infos.append(self.transition(cam, status))
        return infos

    def transition(self, cam: str, status: str) -> mqtt.MQTTMessageInfo:
        previous = self.cameras[cam]
        self.cameras[cam] = status
        error = "stream ended or stalled" if status == "connecting" else ""
        return self.publish(self.t.status(cam),
                            contract.status_payload(status, previous, time.time(), error, Stats()))

    def stop(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def fleet_read(port: int) -> tuple[float, dict]:
    t0 = time.monotonic()
    out = subprocess.run([sys.executable, "-m", "rtsp2jpg", "fleet", "--broker", "127.0.0.1", "--port", str(port),
                          "--json", "--timeout", "60"], cwd=REPO, capture_output=True, text=True, timeout=120)
    elapsed = time.monotonic() - t0
    if out.returncode == 2:
        raise RuntimeError(out.stderr)
    return elapsed, json.loads(out.stdout)


def fleet_baseline() -> float:
    """Interpreter start + imports + argparse, to separate the tool's fixed cost from reading the fleet."""
    t0 = time.monotonic()
    subprocess.run([sys.executable, "-m", "rtsp2jpg", "fleet", "--help"], cwd=REPO, capture_output=True, check=True)
    return time.monotonic() - t0


PER_PROCESS = 200  # paho's select() loop cannot use descriptors above 1024: ~3 per client


def worker(args: argparse.Namespace) -> int:
    """A child process: devices [first, last); commands on stdin: `flap`, `stop`. Prints what it did."""
    devices: list[SimDevice] = []
    for i in range(args.first, args.last, 25):  # in batches: a burst of SYNs overflows the listen backlog
        batch = [SimDevice(args.port, f"dev-{j:04d}", args.cameras) for j in range(i, min(args.last, i + 25))]
        for d in batch:
            if not d.connected.wait(30):
                raise RuntimeError(f"simulated device {d.t.device_id} did not connect; {len(devices)} did")
        devices += batch
    infos = [info for d in devices for info in d.announce()]
    for info in infos:
        info.wait_for_publish(60)
    print(f"ready {len(infos)}", flush=True)
    flapping = [(d, cam) for d in devices for cam in d.cameras]
    random.seed(args.first)
    flapping = random.sample(flapping, int(len(flapping) * args.flap))
    stop = threading.Event()
    sent = {"n": 0}

    def flap() -> None:
        step = args.flap_period / max(1, len(flapping))
        while not stop.is_set():
            for d, cam in flapping:
                if stop.wait(step):
                    break
                d.transition(cam, "connecting" if d.cameras[cam] == "active" else "active")
                sent["n"] += 1

    flapper = threading.Thread(target=flap, daemon=True)
    for line in sys.stdin:
        if line.strip() == "flap":
            flapper.start()
        elif line.strip() == "stop":
            break
    stop.set()
    if flapper.is_alive():
        flapper.join()
    print(f"done {len(flapping)} {sent['n']}", flush=True)
    for d in devices:
        d.stop()
    return 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--devices", type=int, default=500)
    ap.add_argument("--cameras", type=int, default=4)
    ap.add_argument("--flap", type=float, default=0.1, help="share of cameras that flap")
    ap.add_argument("--flap-period", type=float, default=5.0, help="seconds between a flapping camera's transitions")
    ap.add_argument("--duration", type=float, default=20.0)
    ap.add_argument("--port", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--first", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--last", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.port:
        return worker(args)

    with tempfile.TemporaryDirectory() as tmp:
        broker = Mosquitto(Path(tmp)).start()
        counted = {"n": 0}
        counter = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="bench-counter")
        counter.on_connect = lambda c, *a: c.subscribe("rtsp2jpg/#", 0)
        counter.on_message = lambda *a: counted.__setitem__("n", counted["n"] + 1)
        counter.connect("127.0.0.1", broker.port)
        counter.loop_start()
        workers: list[subprocess.Popen[str]] = []
        try:
            t0 = time.monotonic()
            common = ["--port", str(broker.port), "--cameras", str(args.cameras), "--flap", str(args.flap),
                      "--flap-period", str(args.flap_period)]
            for first in range(0, args.devices, PER_PROCESS):
                last = min(args.devices, first + PER_PROCESS)
                workers.append(subprocess.Popen([sys.executable, __file__, *common, "--first", str(first),
                                                 "--last", str(last)], stdin=subprocess.PIPE,
                                                stdout=subprocess.PIPE, text=True))
            announced = sum(int(w.stdout.readline().split()[1]) for w in workers)
            boot = time.monotonic() - t0
            print(f"{args.devices} devices x {args.cameras} cameras announced ({announced} retained messages, "
                  f"{len(workers)} simulator processes) in {boot:.1f}s")
            base = fleet_baseline()
            idle_time, view = fleet_read(broker.port)
            s = view["summary"]
            assert s["devices"] == args.devices and s["cameras"] == args.devices * args.cameras, s
            print(f"fleet --json (idle): {idle_time:.2f}s for {s['devices']} devices / {s['cameras']} cameras "
                  f"(of which {base:.2f}s is interpreter start-up: `fleet --help`)")
            counted["n"] = 0
            start = time.monotonic()
            for w in workers:
                w.stdin.write("flap\n")
                w.stdin.flush()
            reads = []
            while time.monotonic() - start < args.duration:
                elapsed, view = fleet_read(broker.port)
                assert view["summary"]["cameras"] == args.devices * args.cameras
                reads.append(elapsed)
            for w in workers:
                w.stdin.write("stop\n")
                w.stdin.flush()
            window = time.monotonic() - start
            done = [w.stdout.readline().split() for w in workers]
            flapping, sent = sum(int(d[1]) for d in done), sum(int(d[2]) for d in done)
            print(f"flapping {flapping} cameras ({args.flap:.0%}) every {args.flap_period:g}s: "
                  f"{sent / window:.0f} transitions/s -> {counted['n'] / window:.0f} msg/s at a wildcard "
                  f"subscriber; fleet --json under load: median {sorted(reads)[len(reads) // 2]:.2f}s, "
                  f"max {max(reads):.2f}s over {len(reads)} reads")
        finally:
            for w in workers:
                if w.poll() is None:
                    w.stdin.close()
                    w.wait(30)
            counter.disconnect()
            counter.loop_stop()
            broker.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
