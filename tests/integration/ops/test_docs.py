"""The docs cannot drift: config table, routes, metrics, alert rules, CLI commands and links are checked."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from types import SimpleNamespace

import pytest

from rtsp2jpg import config
from rtsp2jpg.capture.sources import Capabilities
from rtsp2jpg.cli import main as cli
from rtsp2jpg.config import reference as configdoc
from rtsp2jpg.web.metrics import Metrics
from rtsp2jpg.web.mjpeg import ViewerStats

REPO = Path(__file__).resolve().parents[3]
DOCS = REPO / "docs"


def read(name: str) -> str:
    return (DOCS / name).read_text(encoding="utf-8")


def test_configuration_reference_is_the_generated_one():
    doc = read("configuration.md")
    assert configdoc.splice(doc, configdoc.render()) == doc, "run: python -m rtsp2jpg.config.reference --write"


def test_configuration_reference_lists_every_key_with_its_real_environment_name():
    rows = configdoc.rows()
    assert [r[0] for r in rows] == config.documented_keys()
    for key, _kind, _default, env, help_text in rows:
        assert help_text, f"{key} has no help text"
        for name in filter(None, (e.strip() for e in env.split(","))):
            tree = config.env_overrides({name: "x"})
            for part in key.split("."):
                tree = tree[part]
            assert tree == "x", (key, name)


def routes() -> set[str]:
    found = set()
    for module in sorted((REPO / "rtsp2jpg" / "web").glob("*.py")):  # every route is declared in web/
        text = module.read_text()
        for method, rule in re.findall(r'app\.(get|post|delete|put)\(\s*"([^"]+)"', text):
            rule = re.sub(r"<(?:\w+:)?(\w+)>", lambda m: f"<{'id' if m.group(1) == 'camera_id' else m.group(1)}>",
                          rule)
            found.add(f"{method.upper()} {rule}")
    return found


def test_every_route_is_in_the_api_reference():
    api = read("api.md")
    found = routes()
    assert "GET /stream/<id>" in found and "GET /metrics" in found
    missing = [r for r in sorted(found) if f"`{r}`" not in api and f"`{r.split(' ', 1)[1]}`" not in api]
    assert not missing, f"undocumented routes: {missing}"


def emitted_metric_families() -> set[str]:
    cam = SimpleNamespace(id="cam", status=SimpleNamespace(value="active"),
                          stats=SimpleNamespace(frames=1, decode_errors=0, reconnects=1, last_seen=1.0, fps=1.0))
    service = SimpleNamespace(cameras=lambda: [cam], started_at=1.0,
                              backend=SimpleNamespace(capabilities=Capabilities.nothing()),
                              publisher=SimpleNamespace(connected=True, published={"status": 1}))
    text = Metrics().render(service, {"cam": 1}, ViewerStats())
    return set(re.findall(r"^# TYPE (\S+) ", text, re.M))


def test_every_metric_is_documented():
    ops = read("operations.md")
    families = emitted_metric_families()
    assert len(families) > 15
    missing = sorted(f for f in families if f"`{f}`" not in ops)
    assert not missing, f"undocumented metrics: {missing}"


def test_alert_rules_are_valid_and_use_real_metrics():
    rules = DOCS / "prometheus-alerts.yml"
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.fail("promtool is missing: apt-get install prometheus (scripts/test-packages.txt)")
    res = subprocess.run([promtool, "check", "rules", str(rules)], capture_output=True, timeout=60)
    assert res.returncode == 0, res.stdout.decode() + res.stderr.decode()
    known = emitted_metric_families() | {"up"}
    used = set(re.findall(r"\b((?:rtsp2jpg|process)_[a-z_]+)", rules.read_text()))
    unknown = {m for m in used if m not in known and re.sub(r"_(bucket|sum|count)$", "", m) not in known}
    assert not unknown, unknown


def test_every_cli_command_and_exit_code_is_documented():
    parser = cli.build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    docs = "\n".join(read(n) for n in ("overview.md", "troubleshooting.md", "deployment.md"))
    for name in sub.choices:
        assert f"rtsp2jpg {name}" in docs or f"`{name}`" in docs, name
    table = read("troubleshooting.md").split("## Exit codes", 1)[1]
    for code in range(5):
        assert f"| {code} |" in table


def test_links_between_docs_resolve_and_readme_links_them():
    readme = (REPO / "README.md").read_text()
    for doc in sorted(DOCS.glob("*.md")):
        if doc.name != "README.md":
            assert f"docs/{doc.name}" in readme or doc.name in read("README.md"), doc.name
        for target in re.findall(r"\]\(([^)#]+\.(?:md|yml))(?:#[^)]*)?\)", doc.read_text()):
            assert (doc.parent / target).exists(), f"{doc.name} links to missing {target}"
    assert "docs/README.md" in readme
