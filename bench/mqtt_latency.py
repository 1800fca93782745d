"""Camera transition -> status message at an MQTT subscriber, with the real service and a real broker.

Three cameras on one test RTSP server; the server is killed and restarted `--cycles` times, so every
camera goes active -> connecting -> error -> active. The lag is the subscriber's arrival time minus
the payload's `since` (the moment the camera thread changed status; same clock, same machine).

    python3 bench/mqtt_latency.py --cycles 4
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))  # run as a script: the repo root, for rtsp2jpg and tests.support

from tests.support.mosquitto import Mosquitto, Subscriber  # noqa: E402
from tests.support.rtsp_server import RtspServer, wait_until  # noqa: E402
from tests.support.service_process import ServiceProcess  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--cycles", type=int, default=4)
    args = ap.parse_args()
    ids = ("a", "b", "c")
    with tempfile.TemporaryDirectory() as tmp:
        broker = Mosquitto(Path(tmp) / "broker").start()
        server = RtspServer(streams={k: "320x180@15:h264" for k in ids})
        server.start()
        sub = Subscriber(broker, ["rtsp2jpg/+/cameras/+/status"]).start()
        svc = ServiceProcess(Path(tmp) / "svc", {
            "device_id": "lag", "mqtt": {"enabled": True, "host": "127.0.0.1", "port": broker.port},
            "capture": {"reconnect_delay_sec": 0.3, "reconnect_max_delay_sec": 0.6, "open_timeout_sec": 2,
                        "stall_timeout_sec": 2},
            "cameras": [{"id": k, "url": server.url(k)} for k in ids]})
        svc.start()
        try:
            for _ in range(args.cycles):
                wait_until(lambda: all(svc.status(k)["status"] == "active" for k in ids), 30)
                server.kill()
                wait_until(lambda: all(svc.status(k)["status"] == "error" for k in ids), 30)
                server.restart()
            wait_until(lambda: all(svc.status(k)["status"] == "active" for k in ids), 30)
            time.sleep(0.5)
        finally:
            svc.stop()
            sub.stop()
            server.stop()
            broker.stop()
        bodies = [(m, json.loads(m.payload)) for m in sub.messages if m.payload]
        # Transitions only: an error-text update keeps status and `since`, so its lag means nothing.
        lags = sorted((m.at - p["since"]) * 1000 for m, p in bodies if p["previous"] not in ("inactive", p["status"]))
        print(f"{len(lags)} transitions: median {lags[len(lags) // 2]:.1f} ms, "
              f"p90 {lags[int(len(lags) * 0.9)]:.1f} ms, max {lags[-1]:.1f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
