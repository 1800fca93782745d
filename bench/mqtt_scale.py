"""Fleet at scale through bridged sites: N devices x M cameras, each device the real Publisher
(rtsp2jpg/mqtt/publisher.py: its threads, queue, stats timer and paho client) over simulated cameras,
many devices per process; S site mosquittos bridged to a central one with docs/fleet.md's bridge
configuration; `rtsp2jpg fleet --json` reads the central broker.

It measures: how long until the central view is complete, `fleet --json` on central, messages per
second at central while a share of cameras flaps (status transitions are the only traffic besides
stats), the CPU of each mosquitto (from /proc/<pid>/stat), how long a restarted central broker that
lost every retained message takes to hold the whole fleet again, and how the devices' reconnects
spread out when their site broker restarts (the Publisher's jittered backoff).

    python3 bench/mqtt_scale.py --devices 500 --cameras 4 --sites 2 --duration 20
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import random
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))  # run as a script: the repo root, for rtsp2jpg and tests.support

from bench.harness import percentile  # noqa: E402
from rtsp2jpg import config  # noqa: E402
from rtsp2jpg.capture.status import Stats, Status, StatusChange  # noqa: E402
from rtsp2jpg.mqtt import publisher  # noqa: E402
from rtsp2jpg.mqtt.publisher import Publisher  # noqa: E402
from tests.support.mosquitto import Mosquitto, Subscriber, documented_bridge  # noqa: E402

PER_PROCESS = 100  # paho's select() loop cannot use descriptors above 1024; 4 threads per device


class SimCamera:
    """What the Publisher reads of a camera: id, name, status, stats (a stream at 25 fps)."""

    def __init__(self, camera_id: str) -> None:
        self.id = self.name = camera_id
        self.status = Status.ACTIVE
        self.stats = Stats(frames=1, last_seen=time.time(), fps=25.0, width=1280, height=720, backend="ffmpeg")
        self.disabled = False


class SimDevice:
    """A PublisherHost (what Service gives the Publisher) with M simulated cameras, and its Publisher."""

    def __init__(self, device_id: str, port: int, cameras: int, stats_interval: float) -> None:
        env = {"RTSP2JPG_DEVICE_ID": device_id, "RTSP2JPG_MQTT_ENABLED": "true", "RTSP2JPG_MQTT_HOST": "127.0.0.1",
               "RTSP2JPG_MQTT_PORT": str(port), "RTSP2JPG_MQTT_STATS_INTERVAL_SEC": str(stats_interval)}
        self.config = config.load(env=env)
        self.backend = SimpleNamespace(encode_jpeg=lambda *a: b"", capabilities=SimpleNamespace(decoders={}))
        self.started_at = time.time()
        self._cams = {f"cam{i}": SimCamera(f"cam{i}") for i in range(cameras)}
        self.publisher = Publisher(self)

    def camera(self, camera_id: str) -> SimCamera | None:
        return self._cams.get(camera_id)

    def cameras(self) -> list[SimCamera]:
        return list(self._cams.values())

    def known_camera_ids(self) -> set[str]:
        return set(self._cams)

    def start(self) -> None:
        self.publisher.start()
        for cam in self._cams.values():
            self.publisher.on_status(StatusChange(cam.id, Status.ACTIVE, Status.CONNECTING, time.time(), ""))

    def flip(self, camera_id: str) -> None:
        """One status transition, as a camera thread reports it."""
        cam = self._cams[camera_id]
        previous = cam.status
        cam.status = Status.CONNECTING if previous == Status.ACTIVE else Status.ACTIVE
        cam.stats.last_seen = time.time()
        self.publisher.on_status(StatusChange(cam.id, cam.status, previous, time.time(),
                                              "stream ended or stalled" if cam.status == Status.CONNECTING else ""))


def worker(args: argparse.Namespace) -> int:
    """A child process: devices [first, last) on `port`; stdin: `flap`, `calm`, `stop`."""
    logging.basicConfig(level=logging.CRITICAL)  # the devices' reconnect errors are expected here
    if args.no_jitter:  # paho's own backoff, for comparison: every device retries at 1, 2, 4... s
        publisher.jitter_reconnect = lambda client: client.reconnect_delay_set(min_delay=1, max_delay=30)
    devices = [SimDevice(f"dev-{i:04d}", args.port, args.cameras, args.stats_interval)
               for i in range(args.first, args.last)]
    for i in range(0, len(devices), 20):  # in batches: a burst of SYNs overflows the listen backlog
        for d in devices[i:i + 20]:
            d.start()
        time.sleep(0.05)
    deadline = time.monotonic() + 120
    while not all(d.publisher.connected for d in devices) and time.monotonic() < deadline:
        time.sleep(0.1)
    print(f"ready {sum(d.publisher.connected for d in devices)}", flush=True)
    random.seed(args.first)
    pairs = [(d, cam) for d in devices for cam in d.known_camera_ids()]
    flapping = random.sample(pairs, int(len(pairs) * args.flap))
    stop, sent = threading.Event(), [0]

    def flap() -> None:
        step = args.flap_period / max(1, len(flapping))
        while not stop.is_set():
            for d, cam in flapping:
                if stop.wait(step):
                    return
                d.flip(cam)
                sent[0] += 1

    flapper = threading.Thread(target=flap, daemon=True)
    for line in sys.stdin:
        command = line.strip()
        if command == "flap":
            flapper.start()
        elif command == "calm":
            stop.set()
            flapper.join()
            active = sum(c.status == Status.ACTIVE for d in devices for c in d.cameras())
            print(f"calm {len(flapping)} {sent[0]} {active}", flush=True)
        elif command == "stop":
            break
    for d in devices:
        d.publisher.stop(2.0)
    return 0


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process, from /proc/<pid>/stat."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def fleet_read(port: int) -> tuple[float, dict]:
    t0 = time.monotonic()
    out = subprocess.run([sys.executable, "-m", "rtsp2jpg", "fleet", "--broker", "127.0.0.1", "--port", str(port),
                          "--json", "--timeout", "60"], cwd=REPO, capture_output=True, text=True, timeout=120)
    return time.monotonic() - t0, json.loads(out.stdout) if out.stdout else {}


def wait_complete(port: int, devices: int, cameras: int, active: int | None, timeout: float) -> float:
    """Seconds until `fleet` on `port` lists every device online with every camera (`active` of them)."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        _, view = fleet_read(port)
        s = view.get("summary", {})
        if (s.get("devices") == devices and s.get("offline") == 0 and s.get("cameras") == cameras
                and (active is None or s.get("active") == active)):
            return time.monotonic() - t0
        time.sleep(0.5)
    raise RuntimeError(f"fleet on {port} incomplete after {timeout}s: {view.get('summary')}")


class Counter:
    """Counts every message under rtsp2jpg/# at one broker."""

    def __init__(self, port: int) -> None:
        self.n = 0
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"bench-counter-{port}")
        self.client.on_connect = lambda c, *a: c.subscribe("rtsp2jpg/#", 0)
        self.client.on_message = lambda *a: setattr(self, "n", self.n + 1)
        self.client.reconnect_delay_set(0.1, 0.5)
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()

    def stop(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def send(workers: list[subprocess.Popen[str]], command: str) -> list[list[str]]:
    for w in workers:
        w.stdin.write(command + "\n")
        w.stdin.flush()
    return [w.stdout.readline().split() for w in workers] if command == "calm" else []


def reconnect_spread(site: Mosquitto, expected: int, down_sec: float) -> list[float]:
    """Restart a site broker; seconds from its restart to each device's birth (`online`) there."""
    site.kill()
    time.sleep(down_sec)
    site.start()
    t0 = time.time()
    births = Subscriber(site, "rtsp2jpg/+/availability")
    births.client.reconnect_delay_set(0.05, 0.2)
    births.start()
    try:
        # A device that was back before this subscriber arrives as a retained birth: counted at its
        # arrival, an upper bound of a few ms after the restart.
        first: dict[str, float] = {}
        deadline = time.monotonic() + 90
        while len(first) < expected and time.monotonic() < deadline:
            time.sleep(0.2)
            for m in list(births.messages):
                if m.payload == b"online":
                    first.setdefault(m.topic, m.at - t0)
        return sorted(first.values())
    finally:
        births.stop()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--devices", type=int, default=500)
    ap.add_argument("--cameras", type=int, default=4)
    ap.add_argument("--sites", type=int, default=2)
    ap.add_argument("--flap", type=float, default=0.1, help="share of cameras that flap")
    ap.add_argument("--flap-period", type=float, default=5.0, help="seconds between a flapping camera's transitions")
    ap.add_argument("--stats-interval", type=float, default=60.0)
    ap.add_argument("--duration", type=float, default=20.0, help="seconds of flapping measured")
    ap.add_argument("--outage", type=float, default=5.0, help="seconds the central broker stays down")
    ap.add_argument("--no-jitter", action="store_true", help="devices use paho's backoff without jitter")
    ap.add_argument("--port", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--first", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--last", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.port:
        return worker(args)
    n, m = args.devices, args.devices * args.cameras
    with tempfile.TemporaryDirectory() as tmp:
        central = Mosquitto(Path(tmp) / "central").start()
        sites = [Mosquitto(Path(tmp) / f"site{i}", extra=documented_bridge(central.port, f"site-{i}")).start()
                 for i in range(args.sites)]
        counter = Counter(central.port)
        workers: list[subprocess.Popen[str]] = []
        per_site = -(-n // args.sites)
        pids = {"central": central.proc.pid, **{f"site-{i}": s.proc.pid for i, s in enumerate(sites)}}
        try:
            boot_cpu = {k: cpu_seconds(p) for k, p in pids.items()}
            t0 = time.monotonic()
            for s, site in enumerate(sites):
                for first in range(s * per_site, min(n, (s + 1) * per_site), PER_PROCESS):
                    last = min(n, (s + 1) * per_site, first + PER_PROCESS)
                    workers.append(subprocess.Popen(
                        [sys.executable, __file__, "--port", str(site.port), "--cameras", str(args.cameras),
                         "--flap", str(args.flap), "--flap-period", str(args.flap_period), "--stats-interval",
                         str(args.stats_interval), "--first", str(first), "--last", str(last),
                         *(["--no-jitter"] if args.no_jitter else [])],
                        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True))
            connected = sum(int(w.stdout.readline().split()[1]) for w in workers)
            wait_complete(central.port, n, m, m, 180)
            complete = time.monotonic() - t0
            boot_messages = counter.n
            boot_cpu = {k: cpu_seconds(p) - boot_cpu[k] for k, p in pids.items()}
            print(f"{n} devices x {args.cameras} cameras ({connected} connected, {len(workers)} processes, "
                  f"{args.sites} bridged sites): whole fleet on central {complete:.1f}s after start, "
                  f"{boot_messages} messages at central; broker CPU for the boot: "
                  + ", ".join(f"{k} {v:.2f}s" for k, v in boot_cpu.items()))
            reads = sorted(fleet_read(central.port)[0] for _ in range(3))
            print(f"fleet --json on central: median {reads[1]:.2f}s (of 3: {', '.join(f'{r:.2f}' for r in reads)})")

            cpu0 = {k: cpu_seconds(p) for k, p in pids.items()}
            counted, start = counter.n, time.monotonic()
            send(workers, "flap")
            time.sleep(args.duration)
            done = send(workers, "calm")
            window = time.monotonic() - start
            time.sleep(1.0)  # the last transitions cross the bridge
            flapping, sent = sum(int(d[1]) for d in done), sum(int(d[2]) for d in done)
            active = sum(int(d[3]) for d in done)
            msgs = counter.n - counted
            cpu = {k: (cpu_seconds(p) - cpu0[k]) / window for k, p in pids.items()}
            print(f"flapping {flapping} cameras ({args.flap:.0%}) every {args.flap_period:g}s for {window:.0f}s: "
                  f"{sent / window:.0f} transitions/s -> {msgs / window:.0f} msg/s at central "
                  f"({msgs / max(1, sent):.2f} per transition; stats add {n / args.stats_interval:.1f} msg/s "
                  "on average); "
                  f"broker CPU: " + ", ".join(f"{k} {v:.1%}" for k, v in cpu.items()) + " of one core")

            central.kill()
            time.sleep(args.outage)
            central.start()
            back = wait_complete(central.port, n, m, active, 120)
            resync_cpu = cpu_seconds(central.proc.pid)
            print(f"central down {args.outage:g}s and restarted empty: whole fleet (with the statuses changed "
                  f"meanwhile) back on central {back:.1f}s after it listened ({resync_cpu:.2f}s of central CPU), "
                  "no device restarted")

            spread = reconnect_spread(sites[0], min(per_site, n), 2.0)
            if spread:
                busiest = max(sum(1 for t in spread if s <= t < s + 0.1) for s in spread)
                print(f"site broker restarted: {len(spread)} devices reconnected from {spread[0]:.1f}s to "
                      f"{spread[-1]:.1f}s after it listened (p10 {percentile(spread, 10):.1f}s, median "
                      f"{percentile(spread, 50):.1f}s, p90 {percentile(spread, 90):.1f}s; at most {busiest} in "
                      f"100 ms; {cpu_seconds(sites[0].proc.pid):.2f}s of its CPU)"
                      + (" with paho's backoff, no jitter" if args.no_jitter else " with the Publisher's jitter"))
        finally:
            for w in workers:
                if w.poll() is None:
                    try:
                        w.stdin.write("stop\n")
                        w.stdin.close()
                    except OSError:
                        pass
            for w in workers:
                try:
                    w.wait(60)
                except subprocess.TimeoutExpired:
                    w.kill()
            counter.stop()
            for broker in (*sites, central):
                broker.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
