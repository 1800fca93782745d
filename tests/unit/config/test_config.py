"""Configuration: file < environment < flags, ${VAR} substitution, errors that name the key."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from rtsp2jpg import config
from rtsp2jpg.config import ConfigError

REPO = Path(__file__).resolve().parents[3]
EXAMPLE = REPO / "config" / "rtsp2jpg.example.yaml"


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "c.yaml"
    path.write_text(text)
    return path


def test_defaults_without_a_file() -> None:
    cfg = config.load(None, env={})
    assert cfg.http.port == 8080
    assert cfg.capture.jpeg_quality == 85
    assert cfg.mqtt.enabled is False
    assert cfg.cameras == ()
    assert cfg.device_id  # the hostname


def test_example_file_loads_with_every_default() -> None:
    cfg = config.load(EXAMPLE, env={})
    assert cfg == config.load(None, env={})


def test_every_key_is_documented_in_the_example() -> None:
    text = EXAMPLE.read_text()
    missing = []
    for key in config.documented_keys():
        leaf = key.split(".")[-1].replace("[]", "")
        if not re.search(rf"^\s*#?\s*-?\s*{re.escape(leaf)}:", text, re.M):
            missing.append(key)
    assert not missing, f"keys missing from {EXAMPLE.name}: {missing}"


def test_every_key_has_help_text() -> None:
    import dataclasses
    from typing import get_type_hints

    def walk(cls: type) -> list[str]:
        out = []
        hints = get_type_hints(cls)
        for f in dataclasses.fields(cls):
            if not f.metadata.get("help"):
                out.append(f"{cls.__name__}.{f.name}")
            if dataclasses.is_dataclass(hints[f.name]):
                out += walk(hints[f.name])
        return out

    assert walk(config.Config) == []


def test_precedence_file_then_env_then_flags(tmp_path: Path) -> None:
    path = write(tmp_path, "http: {port: 9000, threads: 4}\ncapture: {jpeg_quality: 70}\n")
    env = {"RTSP2JPG_HTTP_PORT": "9100", "RTSP2JPG_JPEG_QUALITY": "60"}
    cfg = config.load(path, env=env, overrides={"http": {"port": 9200}})
    assert (cfg.http.port, cfg.http.threads, cfg.capture.jpeg_quality) == (9200, 4, 60)


def test_legacy_and_section_env_names(tmp_path: Path) -> None:
    env = {"RTSP2JPG_DB_PATH": "/tmp/x.db", "RTSP2JPG_READ_THROTTLE_SEC": "0.5",
           "RTSP2JPG_RECONNECT_DELAY_SEC": "3", "RTSP2JPG_OPEN_TEST_TIMEOUT_SEC": "4",
           "RTSP2JPG_MQTT_HOST": "broker", "RTSP2JPG_MQTT_TLS_ENABLED": "true", "RTSP2JPG_LOG_LEVEL": "DEBUG"}
    cfg = config.load(None, env=env)
    assert cfg.storage.db_path == "/tmp/x.db"
    assert cfg.capture.read_throttle_sec == 0.5
    assert cfg.capture.reconnect_delay_sec == 3.0
    assert cfg.capture.open_timeout_sec == 4.0
    assert cfg.mqtt.host == "broker" and cfg.mqtt.tls.enabled is True
    assert cfg.log_level == "DEBUG"


def test_config_file_from_environment(tmp_path: Path) -> None:
    path = write(tmp_path, "http: {port: 9300}\n")
    assert config.load(None, env={"RTSP2JPG_CONFIG": str(path)}).http.port == 9300


def test_variables_from_env_and_credentials_directory(tmp_path: Path) -> None:
    creds = tmp_path / "creds"
    creds.mkdir()
    (creds / "CAM_PW").write_text("s3cret\n")
    path = write(tmp_path, 'cameras:\n  - id: a\n    url: "rtsp://u:${CAM_PW}@10.0.0.1/x"\n'
                           'mqtt: {password: "${MQTT_PW}", username: "cost$$"}\n')
    cfg = config.load(path, env={"CREDENTIALS_DIRECTORY": str(creds), "MQTT_PW": "m"})
    assert cfg.cameras[0].url == "rtsp://u:s3cret@10.0.0.1/x"
    assert cfg.mqtt.password == "m"
    assert cfg.mqtt.username == "cost$"


def test_unset_variable_names_the_key_and_default_syntax(tmp_path: Path) -> None:
    path = write(tmp_path, 'http: {api_key: "${NOPE}"}\n')
    with pytest.raises(ConfigError, match=r"^http\.api_key: \$\{NOPE\} is not set"):
        config.load(path, env={})
    path = write(tmp_path, 'http: {api_key: "${NOPE:-fallback}"}\n')
    assert config.load(path, env={}).http.api_key == "fallback"


def test_cameras_inherit_capture_and_override_per_camera(tmp_path: Path) -> None:
    path = write(tmp_path, "capture: {jpeg_quality: 60, decoder: ffmpeg}\n"
                           "cameras:\n  - {id: a, url: 'rtsp://h/a'}\n"
                           "  - {id: b, url: 'rtsp://h/b', jpeg_quality: 90, name: B}\n")
    a, b = config.load(path, env={}).cameras
    assert (a.capture.jpeg_quality, a.capture.decoder, a.name) == (60, "ffmpeg", "")
    assert (b.capture.jpeg_quality, b.capture.decoder, b.name) == (90, "ffmpeg", "B")


def test_a_camera_with_main_and_sub_streams(tmp_path: Path) -> None:
    path = write(tmp_path, "cameras:\n  - id: a\n    streams: {main: 'rtsp://u:${PW}@h/main', sub: 'rtsp://u:${PW}@h/sub'}\n")
    (cam,) = config.load(path, env={"PW": "pw"}).cameras
    assert (cam.url, cam.streams.main, cam.streams.sub) == ("rtsp://u:pw@h/main", "rtsp://u:pw@h/main", "rtsp://u:pw@h/sub")


@pytest.mark.parametrize(("text", "message"), [
    ("http: {prot: 1}", r"^http\.prot: unknown key"),
    ("bogus: 1", r"^bogus: unknown key"),
    ("http: {port: 70000}", r"^http\.port: must be between 0 and 65535"),
    ("http: {port: eighty}", r"^http\.port: must be a number"),
    ("http: {port: 80.5}", r"^http\.port: must be a whole number"),
    ("http: {threads: true}", r"^http\.threads: must be a number"),
    ("http: 5", r"^http: must be a mapping"),
    ("http: {protect_snapshots: maybe}", r"^http\.protect_snapshots: must be true or false"),
    ("capture: {jpeg_quality: 0}", r"^capture\.jpeg_quality: must be between 1 and 100"),
    ("capture: {transport: sctp}", r"^capture\.transport: must be one of tcp, udp"),
    ("capture: {decoder: 'x ! filesrc'}", r"^capture\.decoder: must be one of"),
    ("capture: {reconnect_delay_sec: -1}", r"^capture\.reconnect_delay_sec: must be greater than 0"),
    ("log_level: LOUD", r"^log_level: must be one of"),
    ("mqtt: {tls: {enabled: 2}}", r"^mqtt\.tls\.enabled: must be true or false"),
    ("cameras: {a: 1}", r"^cameras: must be a list"),
    ("cameras: [{url: 'rtsp://h/x'}]", r"^cameras\[0\]\.id: "),
    ("cameras: [{id: 'Bad Id', url: 'rtsp://h/x'}]", r"^cameras\[0\]\.id: must be a slug"),
    ("cameras: [{id: a, url: 'rtsp://h/x'}, {id: b, url: 'file:///etc/passwd'}]",
     r"^cameras\[1\]\.url: must start with rtsp:// or rtsps://"),
    ("cameras: [{id: a, url: 'rtsp://h/x\" ! fakesink'}]", r"^cameras\[0\]\.url: must not contain"),
    ("cameras: [{id: a, url: 'rtsp://h/x'}, {id: a, url: 'rtsp://h/y'}]", r"^cameras\[1\]\.id: duplicate"),
    ("cameras: [{id: a, url: 'rtsp://h/x', jpeg_quality: 101}]", r"^cameras\[0\]\.jpeg_quality: must be"),
    ("cameras: [{id: a, url: 'rtsp://h/x', color: red}]", r"^cameras\[0\]\.color: unknown key"),
    ("cameras: [5]", r"^cameras\[0\]: must be a mapping"),
    ("cameras: [{id: a, url: 'rtsp://h/x', streams: {main: 'rtsp://h/m', sub: 'rtsp://h/s'}}]",
     r"^cameras\[0\]\.streams: give either url or streams"),
    ("cameras: [{id: a, streams: {main: 'rtsp://h/m'}}]", r"^cameras\[0\]\.streams: needs both main and sub"),
    ("cameras: [{id: a, streams: {main: 'rtsp://h/m', sub: 'http://h/s'}}]",
     r"^cameras\[0\]\.streams\.sub: must start with rtsp://"),
    ("cameras: [{id: a, streams: {main: 'rtsp://H:554/m/', sub: 'rtsp://h/m'}}]",
     r"^cameras\[0\]\.streams\.sub: is the main stream's URL"),
    ("cameras: [{id: a, streams: {main: 'rtsp://h/m', sub: 'rtsp://h/s', third: 'rtsp://h/t'}}]",
     r"^cameras\[0\]\.streams\.third: unknown key"),
    ("cameras: [{id: a}]", r"^cameras\[0\]\.url: must be a non-empty string"),
    ("[1, 2]", r"must be a mapping of sections"),
    ("http: {port: [1]", r"invalid YAML"),
])
def test_bad_config_names_its_key(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        config.load(write(tmp_path, text + "\n"), env={})


def test_bad_env_value_is_reported_with_the_key() -> None:
    with pytest.raises(ConfigError, match=r"^http\.port: must be a number"):
        config.load(None, env={"RTSP2JPG_HTTP_PORT": "x"})


def test_documented_keys_cover_the_yaml_shape() -> None:
    keys = set(config.documented_keys())
    for expected in ("http.api_key", "storage.db_path", "capture.read_throttle_sec", "mqtt.tls.ca_file",
                     "mqtt.homeassistant.prefix", "cameras[].url", "cameras[].id"):
        assert expected in keys
    # The example's own YAML parses to exactly the schema's sections.
    assert set(yaml.safe_load(EXAMPLE.read_text())) == {k for k in keys if "." not in k and "[" not in k}


def test_max_cameras_is_global_and_bounds_the_config_file(tmp_path: Path) -> None:
    cams = "".join(f"  - {{id: c{i}, url: 'rtsp://h/{i}'}}\n" for i in range(3))
    loaded = config.load(write(tmp_path, f"capture: {{max_cameras: 3}}\ncameras:\n{cams}"), env={})
    assert loaded.capture.max_cameras == 3 and len(loaded.cameras) == 3
    with pytest.raises(ConfigError, match=r"^capture\.max_cameras: the file declares 3 cameras, more than"):
        config.load(write(tmp_path, f"capture: {{max_cameras: 2}}\ncameras:\n{cams}"), env={})
    with pytest.raises(ConfigError, match=r"^cameras\[0\]\.max_cameras: a global limit"):
        config.load(write(tmp_path, "cameras:\n  - {id: a, url: 'rtsp://h/a', max_cameras: 5}\n"), env={})
    assert config.load(None, env={"RTSP2JPG_CAPTURE_MAX_CAMERAS": "7",
                                  "RTSP2JPG_HTTP_ENCODE_CACHE_MB": "8"}).http.encode_cache_mb == 8.0
