"""Prometheus at fleet scale (docs/fleet.md): the documented agent config, run by a real Prometheus in
agent mode against the real service, remote-writes to a real central Prometheus that answers by
`device` and `site`; and every metric the doc calls stable is in /metrics with the documented labels."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.support.mosquitto import Mosquitto, free_port
from tests.support.rtsp_server import wait_until

REPO = Path(__file__).resolve().parents[3]
DOC = (REPO / "docs" / "fleet.md").read_text()


def documented_agent(target: str, central: str, device: str, site: str) -> str:
    block = re.search(r"<!-- prometheus-agent -->\n```yaml\n(.*?)```", DOC, re.S)
    assert block, "docs/fleet.md lost its prometheus-agent block"
    return (block.group(1).replace("127.0.0.1:8080", target).replace("https://CENTRAL", central)
            .replace('"DEVICE"', f'"{device}"').replace('"SITE"', f'"{site}"').replace("15s", "1s"))


def stable_metrics() -> dict[str, set[str]]:
    """{metric: its documented label names} from the stable-metrics table."""
    table = DOC[DOC.index("<!-- stable-metrics -->"):].split("\n\n")[0]
    rows = [r.split("|") for r in table.splitlines()[3:]]  # the marker, the header, the rule
    return {r[1].strip().strip("`"): set(re.findall(r"`(\w+)`", r[3])) for r in rows}


class Prometheus:
    def __init__(self, workdir: Path, config: str, *args: str) -> None:
        binary = shutil.which("prometheus")
        if binary is None:
            pytest.fail("prometheus is missing: apt-get install prometheus (scripts/test-packages.txt)")
        workdir.mkdir(parents=True, exist_ok=True)
        (workdir / "prometheus.yml").write_text(config)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = open(workdir / "log", "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen([binary, f"--config.file={workdir / 'prometheus.yml'}",
                                      f"--web.listen-address=127.0.0.1:{self.port}", *args],
                                     stdout=self.log, stderr=subprocess.STDOUT, cwd=workdir)
        wait_until(lambda: self.ready(), 30)

    def ready(self) -> bool:
        assert self.proc.poll() is None, "prometheus exited"
        try:
            with urllib.request.urlopen(f"{self.url}/-/ready", timeout=2) as r:
                return r.status == 200
        except OSError:
            return False

    def query(self, promql: str) -> list[dict]:
        url = f"{self.url}/api/v1/query?" + urllib.parse.urlencode({"query": promql})
        with urllib.request.urlopen(url, timeout=10) as r:
            return json.loads(r.read())["data"]["result"]

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.log.close()


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Mosquitto]:
    b = Mosquitto(tmp_path / "broker").start()
    yield b
    b.stop()


def test_stable_names_exist_and_the_agent_recipe_reaches_central_with_device_and_site(
        rtsp, service_factory, broker, tmp_path):
    svc = service_factory({"device_id": "edge-p1", "mqtt": {"enabled": True, "host": "127.0.0.1",
                                                           "port": broker.port},
                           "cameras": [{"id": "front", "url": rtsp.url("cam")}]})
    wait_until(lambda: svc.status("front")["fps"] > 0, 30)
    assert svc.get("/snapshot/front").status == 200

    text = svc.get("/metrics").body.decode()
    declared = dict(re.findall(r"^# TYPE (\S+) (\S+)$", text, re.M))
    labels: dict[str, set[str]] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            base = re.sub(r"_(bucket|sum|count)$", "", s.name) if s.name not in declared else s.name
            labels.setdefault(base, set()).update(set(s.labels) - {"le"})
    stable = stable_metrics()
    assert len(stable) >= 15, stable
    for name, documented in stable.items():
        assert name in declared, f"{name} is documented as stable but not in /metrics"
        assert labels.get(name, set()) == documented, (name, labels.get(name), documented)

    central = Prometheus(tmp_path / "central", "global: {}\n", f"--storage.tsdb.path={tmp_path / 'tsdb'}",
                         "--web.enable-remote-write-receiver")
    agent_cfg = documented_agent(f"127.0.0.1:{svc.port}", central.url, "edge-p1", "site-a")
    agent = Prometheus(tmp_path / "agent", agent_cfg, "--enable-feature=agent",
                       f"--storage.agent.path={tmp_path / 'wal'}")
    try:
        query = 'rtsp2jpg_camera_up{device="edge-p1", site="site-a", camera="front"}'
        deadline = time.monotonic() + 60
        found: list[dict] = []
        while not found and time.monotonic() < deadline:
            found = central.query(query)
            time.sleep(0.5)
        assert found and found[0]["value"][1] == "1", found
        by_site = central.query("count by (site) (rtsp2jpg_camera_up == 1)")
        assert [(r["metric"], r["value"][1]) for r in by_site] == [({"site": "site-a"}, "1")]
    finally:
        agent.stop()
        central.stop()
