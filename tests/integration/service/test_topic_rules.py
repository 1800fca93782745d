"""MQTT topic prefixes from the config: anything that passes validation builds only plain topics.

`mqtt.homeassistant.prefix: home/#` used to pass, and the broker silently dropped every PUBLISH to
it; now it is a config error (exit 2, with the key path), as are the same faults in
`mqtt.base_topic` and `device_id`.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from rtsp2jpg import config
from rtsp2jpg.mqtt import contract as topics

REPO = Path(__file__).resolve().parents[3]
BAD = ["home/#", "home/+/x", "#", "+", "", "/home", "home/", "a//b", "a\x00b", "a\nb", "\x1b[31m", "x" * 201]


@pytest.mark.parametrize("value", BAD)
@pytest.mark.parametrize("key", [("mqtt", "homeassistant", "prefix"), ("mqtt", "base_topic")])
def test_bad_prefixes_are_config_errors(key: tuple[str, ...], value: str) -> None:
    tree: dict = {}
    node = tree
    for part in key[:-1]:
        node = node.setdefault(part, {})
    node[key[-1]] = value
    with pytest.raises(config.ConfigError, match="^" + ".".join(key).replace(".", r"\.") + ":"):
        config.load(env={}, overrides=tree)


@pytest.mark.parametrize("value", ["room/1", "a+b", "#", "x\x00", "x" * 201])
def test_bad_device_ids_are_config_errors(value: str) -> None:
    with pytest.raises(config.ConfigError, match=r"^device_id:"):
        config.load(env={}, overrides={"device_id": value})


def test_wildcard_prefix_exits_2_with_the_key_path(tmp_path: Path) -> None:
    cfg = tmp_path / "config.yaml"
    cfg.write_text(yaml.safe_dump({"mqtt": {"enabled": True, "homeassistant": {"prefix": "home/#"}}}))
    for argv in (["check-config", str(cfg)], ["serve", "--config", str(cfg)]):
        r = subprocess.run([sys.executable, "-m", "rtsp2jpg", *argv], cwd=REPO, capture_output=True, text=True,
                           timeout=60)
        assert r.returncode == 2, (argv, r.stdout, r.stderr)
        assert "mqtt.homeassistant.prefix:" in r.stderr


_text = st.text(alphabet=st.characters(codec="utf-8"), max_size=40) | st.sampled_from(
    ["homeassistant", "site/1/rtsp2jpg", "a/b/c", "home/#", "+", "a//b", "/x", "x/"])


@given(base=_text, device=_text, prefix=_text, camera=st.from_regex(r"[a-z0-9][a-z0-9_-]{0,20}", fullmatch=True))
def test_whatever_validates_builds_topics_without_wildcards(base: str, device: str, prefix: str, camera: str) -> None:
    overrides = {"device_id": device or "host", "mqtt": {"base_topic": base, "homeassistant": {"prefix": prefix}}}
    try:
        cfg = config.load(env={}, overrides=overrides)
    except config.ConfigError:
        return
    assert topics.topic_problem(cfg.mqtt.base_topic, cfg.device_id) is None
    t = topics.Topics(cfg.mqtt.base_topic, cfg.device_id, cfg.mqtt.homeassistant.prefix)
    published = [t.availability, t.state, t.status(camera), t.snapshot(camera), t.ha_status,
                 t.ha_camera(camera), t.ha_connectivity(camera), t.snapshot_request(camera)]
    for topic in published:
        assert not set(topic) & {"+", "#", "\x00"}, topic
        assert "" not in topic.split("/"), topic
        assert len(topic.encode()) < 65535
    assert t.camera_of(t.status(camera), "status") == camera
    for flt in (t.status_filter, t.request_filter):  # the filters we subscribe to: '+' only where meant
        assert flt.count("+") == 1 and "#" not in flt
