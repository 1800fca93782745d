"""Configuration: YAML file, then RTSP2JPG_* environment, then flags; parsed once into frozen objects.

The dataclasses below are the schema. Each field's metadata carries its help text (the example file
and docs are tested against it) and an optional check; the loader walks the dataclasses, so adding
a key is adding a field.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import os
import re
import socket
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, get_args, get_origin, get_type_hints

import yaml

from rtsp2jpg.topics import level_problem, prefix_problem
from rtsp2jpg.trust import host_pattern_problem
from rtsp2jpg.urls import UrlError, validate_rtsp_url


class ConfigError(ValueError):
    """A bad key or value; the message starts with the key path (`cameras[1].url: ...`)."""


def _opt(default: Any, help: str, check: Callable[[Any], str | None] | None = None) -> Any:
    return field(default=default, metadata={"help": help, "check": check})


def _range(lo: float, hi: float) -> Callable[[Any], str | None]:
    return lambda v: None if lo <= v <= hi else f"must be between {lo:g} and {hi:g}, got {v!r}"


def _choice(*values: str) -> Callable[[Any], str | None]:
    return lambda v: None if v in values else f"must be one of {', '.join(values)}, got {v!r}"


def _positive(v: float) -> str | None:
    return None if v > 0 else f"must be greater than 0, got {v!r}"


def _non_negative(v: float) -> str | None:
    return None if v >= 0 else f"must be 0 or more, got {v!r}"


SLUG = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")
DECODERS = ("auto", "ffmpeg", "gstreamer", "software")  # plus any GStreamer decoder element name
ELEMENT = re.compile(r"^[a-z0-9_]+$")


def _decoder(v: str) -> str | None:
    if v in DECODERS or ELEMENT.match(v):
        return None
    return f"must be one of {', '.join(DECODERS)} or a GStreamer element name"


def _networks(v: tuple[str, ...]) -> str | None:
    for item in v:
        try:
            ipaddress.ip_network(item, strict=False)
        except ValueError:
            return f"{item!r} is not a network like 192.168.1.0/24 or 10.0.0.5"
    return None


def _host_patterns(v: tuple[str, ...]) -> str | None:
    return next((p for p in map(host_pattern_problem, v) if p), None)


def _slug(v: str) -> str | None:
    return None if SLUG.match(v) else "must be a slug: lower-case letters, digits, '-' or '_' (1-63 chars)"


@dataclass(frozen=True)
class CaptureConfig:
    """How each camera is read; every key can be overridden per camera."""

    decoder: str = _opt("auto", "auto (hardware GStreamer, FFmpeg, software GStreamer), ffmpeg, gstreamer, "
                        "software, or a decoder element such as nvv4l2decoder", _decoder)
    codec: str = _opt("auto", "stream codec: auto (from the RTSP SDP), h264 or h265", _choice("auto", "h264", "h265"))
    transport: str = _opt("tcp", "RTSP transport: tcp or udp", _choice("tcp", "udp"))
    reconnect_delay_sec: float = _opt(2.0, "first reconnect delay; doubles (with jitter) per failure", _positive)
    reconnect_max_delay_sec: float = _opt(60.0, "cap of the reconnect delay", _positive)
    read_throttle_sec: float = _opt(0.0, "minimum interval between converted/encoded frames (CPU vs freshness)",
                                    _non_negative)
    open_timeout_sec: float = _opt(10.0, "give up opening a stream after this long", _positive)
    stall_timeout_sec: float = _opt(10.0, "no frame for this long -> reconnect", _positive)
    jpeg_quality: int = _opt(85, "default JPEG quality (1-100)", _range(1, 100))
    keyframes_only: bool = _opt(False, "decode keyframes only (GStreamer decoders that support it)")
    stop_timeout_sec: float = _opt(5.0, "how long stop() waits for a capture thread", _positive)
    auth_retry_delay_sec: float = _opt(300.0, "first retry delay after the camera refused the credentials "
                                       "(doubles up to 1 h), so a camera is not hammered into a lockout", _positive)
    allow_networks: tuple[str, ...] = _opt((), "CIDRs cameras may point at (empty = any); checked at registration, "
                                           "at start and before every reconnect (names are resolved each time)",
                                           _networks)
    max_cameras: int = _opt(32, "cameras in all (config file + registered; global only): POST /register "
                            "beyond it gets 409; each camera is a capture thread and a decoder", _range(1, 1024))


@dataclass(frozen=True)
class HttpConfig:
    host: str = _opt("0.0.0.0", "listen address")
    port: int = _opt(8080, "listen port (0 = any free port)", _range(0, 65535))
    threads: int = _opt(64, "Waitress worker threads: MJPEG viewers and long-polls each get a bounded share, "
                        "8 always stay free for snapshots and the API", _range(1, 256))
    api_key: str = _opt("", "API key for mutating endpoints and /cameras; empty = loopback-only mutations")
    protect_snapshots: bool = _opt(False, "require the API key for snapshots, status, streams and metrics too "
                                   "(needs http.api_key)")
    max_body_bytes: int = _opt(16384, "largest accepted request body", _range(256, 1048576))
    long_poll_timeout_sec: float = _opt(10.0, "longest wait of a ?after= long-poll", _range(0.1, 120))
    max_long_polls: int = _opt(32, "concurrent ?after= long-polls; more get 503 so they cannot starve workers",
                               _range(1, 1024))
    stream_max_fps: float = _opt(10.0, "highest frame rate of a GET /stream/<id> MJPEG viewer (its ?fps= is capped)",
                                 _range(0.1, 60))
    stream_max_clients: int = _opt(3, "MJPEG viewers per camera; each holds one of http.threads while it watches",
                                   _range(0, 256))
    stream_max_total: int = _opt(0, "MJPEG viewers in all (0 = half of http.threads), so streams cannot take "
                                 "every worker", _range(0, 256))
    stream_stall_timeout_sec: float = _opt(10.0, "drop an MJPEG viewer that has not read for this long "
                                           "(it skips frames meanwhile)", _range(1, 600))
    allowed_hosts: tuple[str, ...] = _opt((), "Host names accepted besides IPs, localhost, the hostname(.local); "
                                          "'*.example.com' = subdomains, '*' = any; others get 421", _host_patterns)
    trusted_proxies: tuple[str, ...] = _opt((), "reverse proxies (IPs or CIDRs) whose X-Forwarded-For / Forwarded "
                                            "name the client; empty = none", _networks)
    encode_cache_mb: float = _opt(32.0, "memory for cached JPEG encodings of all cameras (least recently used "
                                  "go first; at most 4 sizes per frame)", _range(1, 4096))
    connection_limit: int = _opt(500, "open HTTP connections at most (idle and half-sent ones too); more wait "
                                 "in the listen backlog; kept under the open-files limit",
                                 _range(16, 10000))
    request_timeout_sec: float = _opt(10.0, "a client must send a whole request (head and body) within this long "
                                      "of its first byte, else it is disconnected (slowloris)", _range(1, 600))


@dataclass(frozen=True)
class StorageConfig:
    db_path: str = _opt("data/rtsp2jpg.db", "SQLite registry of cameras (created with mode 0600)")


@dataclass(frozen=True)
class TlsConfig:
    enabled: bool = _opt(False, "connect to the broker over TLS")
    ca_file: str = _opt("", "CA certificate file (empty = system CAs)")
    cert_file: str = _opt("", "client certificate file")
    key_file: str = _opt("", "client key file")
    insecure: bool = _opt(False, "skip broker hostname verification (testing only)")


@dataclass(frozen=True)
class HomeAssistantConfig:
    enabled: bool = _opt(True, "publish Home Assistant discovery configs")
    prefix: str = _opt("homeassistant", "discovery prefix", prefix_problem)


@dataclass(frozen=True)
class MqttConfig:
    enabled: bool = _opt(False, "publish status and snapshots to an MQTT broker")
    host: str = _opt("localhost", "broker host")
    port: int = _opt(1883, "broker port", _range(1, 65535))
    client_id: str = _opt("", "client id (empty = rtsp2jpg-<device_id>)")
    username: str = _opt("", "broker user name")
    password: str = _opt("", "broker password (use ${VAR} to keep it out of the file)")
    base_topic: str = _opt("rtsp2jpg", "topics live under <base_topic>/<device_id>/", prefix_problem)
    keepalive: int = _opt(60, "MQTT keepalive seconds", _range(5, 3600))
    snapshot_interval_sec: float = _opt(0.0, "publish a snapshot per camera this often (0 = off)", _non_negative)
    snapshot_quality: int = _opt(70, "JPEG quality of published snapshots", _range(1, 100))
    snapshot_width: int = _opt(640, "width of published snapshots (0 = full size)", _range(0, 8192))
    snapshot_retain: bool = _opt(False, "retain the last snapshot on the broker")
    homeassistant: HomeAssistantConfig = field(default_factory=HomeAssistantConfig,
                                               metadata={"help": "Home Assistant MQTT discovery"})
    tls: TlsConfig = field(default_factory=TlsConfig, metadata={"help": "broker TLS"})


@dataclass(frozen=True)
class CameraConfig:
    """A camera declared in the file; its id is stable across restarts."""

    id: str = _opt("", "slug used in /snapshot/<id>", _slug)
    url: str = _opt("", "rtsp:// or rtsps:// URL; put the password in ${VAR}")
    name: str = _opt("", "display name (default: the id)")
    snapshot_interval_sec: float = _opt(-1.0, "per-camera MQTT snapshot interval (-1 = mqtt default)")
    capture: CaptureConfig = field(default_factory=CaptureConfig,
                                   metadata={"help": "any capture.* key, written flat in the camera entry"})


@dataclass(frozen=True)
class Config:
    # Empty = the hostname, checked when MQTT starts.
    device_id: str = _opt("", "device name in MQTT topics (default: hostname)", lambda v: v and level_problem(v))
    log_level: str = _opt("INFO", "DEBUG, INFO, WARNING or ERROR", _choice("DEBUG", "INFO", "WARNING", "ERROR"))
    http: HttpConfig = field(default_factory=HttpConfig, metadata={"help": "HTTP API"})
    storage: StorageConfig = field(default_factory=StorageConfig, metadata={"help": "camera registry"})
    capture: CaptureConfig = field(default_factory=CaptureConfig, metadata={"help": "capture defaults"})
    mqtt: MqttConfig = field(default_factory=MqttConfig, metadata={"help": "MQTT fleet monitoring"})
    cameras: tuple[CameraConfig, ...] = field(default=(), metadata={"help": "cameras declared in the file"})


# Names the original rtsp2jpg used; kept so existing deployments keep working.
LEGACY_ENV = {
    "RTSP2JPG_DB_PATH": ("storage", "db_path"),
    "RTSP2JPG_RECONNECT_DELAY_SEC": ("capture", "reconnect_delay_sec"),
    "RTSP2JPG_READ_THROTTLE_SEC": ("capture", "read_throttle_sec"),
    "RTSP2JPG_JPEG_QUALITY": ("capture", "jpeg_quality"),
    "RTSP2JPG_OPEN_TEST_TIMEOUT_SEC": ("capture", "open_timeout_sec"),
}
_VAR = re.compile(r"\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(:-([^}]*))?\}")
_TRUE, _FALSE = {"1", "true", "yes", "on"}, {"0", "false", "no", "off"}


def _lookup_var(name: str, env: Mapping[str, str]) -> str | None:
    """`${NAME}` comes from the environment, else from systemd's $CREDENTIALS_DIRECTORY/NAME."""
    if name in env:
        return env[name]
    creds = env.get("CREDENTIALS_DIRECTORY")
    if creds:
        path = Path(creds) / name
        if path.is_file():
            return path.read_text().rstrip("\n")
    return None


def _substitute(value: str, path: str, env: Mapping[str, str]) -> str:
    def repl(m: re.Match[str]) -> str:
        if m.group(0) == "$$":
            return "$"
        found = _lookup_var(m.group(1), env)
        if found is None:
            if m.group(2) is None:
                raise ConfigError(f"{path}: ${{{m.group(1)}}} is not set in the environment or credentials"
                                  f" (use ${{{m.group(1)}:-}} for an empty default)")
            return m.group(3)
        return found

    return _VAR.sub(repl, value)


_SECRET_NAMES = ("api_key", "password", "url", "token", "secret")


def _is_secret(path: str) -> bool:
    """Keys whose values must never be echoed in an error: keys, passwords, camera URLs, tokens."""
    name = path.rsplit(".", 1)[-1].split("[", 1)[0]
    return name in _SECRET_NAMES or name.endswith(tuple("_" + n for n in _SECRET_NAMES))


def _got(value: Any, path: str) -> str:
    """`got 'x'`, or only the type for a secret key (a mistyped password is still a password)."""
    return f"got a value of type {type(value).__name__}" if _is_secret(path) else f"got {value!r}"


def _convert(value: Any, kind: type, path: str) -> Any:
    if kind is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in _TRUE | _FALSE:
            return value.lower() in _TRUE
        raise ConfigError(f"{path}: must be true or false, {_got(value, path)}")
    if kind in (int, float):
        if isinstance(value, bool):
            raise ConfigError(f"{path}: must be a number, {_got(value, path)}")
        try:
            number = float(value) if isinstance(value, str) else value
        except ValueError:
            raise ConfigError(f"{path}: must be a number, {_got(value, path)}") from None
        if not isinstance(number, int | float) or number != number:
            raise ConfigError(f"{path}: must be a number, {_got(value, path)}")
        if kind is int:
            if number != int(number):
                raise ConfigError(f"{path}: must be a whole number, {_got(value, path)}")
            return int(number)
        return float(number)
    if kind is str:
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            raise ConfigError(f"{path}: must be a string, {_got(value, path)}")
        return str(value)
    raise AssertionError(kind)  # pragma: no cover - schema types are covered above


def build(cls: type, data: Any, path: str, env: Mapping[str, str], base: Any = None) -> Any:
    """Build dataclass `cls` from a mapping, failing with the key path on unknown keys or bad values.

    `base` supplies defaults (a camera's capture block starts from the global one).
    """
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path or 'config'}: must be a mapping, got {type(data).__name__}")
    hints = get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    for key in data:
        if key not in names:
            where = f"{path}.{key}" if path else str(key)
            raise ConfigError(f"{where}: unknown key (known: {', '.join(sorted(names))})")
    values: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        where = f"{path}.{f.name}" if path else f.name
        kind = hints[f.name]
        inherited = getattr(base, f.name) if base is not None else None
        if f.name not in data:
            if inherited is not None:
                values[f.name] = inherited
            continue
        raw = data[f.name]
        if dataclasses.is_dataclass(kind):
            values[f.name] = build(kind, raw, where, env, inherited)
        elif get_origin(kind) is tuple and get_args(kind)[0] is not str:
            values[f.name] = _build_cameras(raw, where, env, base_capture=None)
        else:
            if get_origin(kind) is tuple:
                value = _str_tuple(raw, where, env)
            else:
                value = _convert(_substitute(raw, where, env) if isinstance(raw, str) else raw, kind, where)
            check = f.metadata.get("check")
            problem = check(value) if check else None
            if problem:
                raise ConfigError(f"{where}: {problem.split(', got ')[0] if _is_secret(where) else problem}")
            values[f.name] = value
    return cls(**values)


def _str_tuple(raw: Any, path: str, env: Mapping[str, str]) -> tuple[str, ...]:
    """A YAML list of strings, or one comma/space-separated string (how an environment variable says it)."""
    if raw is None:
        return ()
    items = raw if isinstance(raw, list) else re.split(r"[,\s]+", _substitute(raw, path, env)) \
        if isinstance(raw, str) else None
    if items is None or not all(isinstance(i, str) for i in items):
        raise ConfigError(f"{path}: must be a list of strings, {_got(raw, path)}")
    return tuple(_substitute(i, path, env).strip() for i in items if i.strip())


def _build_cameras(raw: Any, path: str, env: Mapping[str, str], base_capture: Any) -> tuple[CameraConfig, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, list):
        raise ConfigError(f"{path}: must be a list of cameras")
    cameras = []
    seen: set[str] = set()
    capture_keys = {f.name for f in dataclasses.fields(CaptureConfig)}
    for i, item in enumerate(raw):
        where = f"{path}[{i}]"
        if not isinstance(item, dict):
            raise ConfigError(f"{where}: must be a mapping with id and url")
        # capture.* keys sit directly in the camera entry (`decoder: nvv4l2decoder`).
        own = {k: v for k, v in item.items() if k in capture_keys}
        rest = {k: v for k, v in item.items() if k not in capture_keys}
        capture = build(CaptureConfig, own, where, env, base_capture or CaptureConfig())
        cam = build(CameraConfig, rest, where, env, CameraConfig(capture=capture))
        if not cam.id:
            raise ConfigError(f"{where}.id: is required")
        if "max_cameras" in own:
            raise ConfigError(f"{where}.max_cameras: a global limit; set capture.max_cameras instead")
        if cam.id in seen:
            raise ConfigError(f"{where}.id: duplicate camera id {cam.id!r}")
        try:
            validate_rtsp_url(cam.url)
        except UrlError as e:
            raise ConfigError(f"{where}.url: {e}") from None
        seen.add(cam.id)
        cameras.append(cam)
    return tuple(cameras)


def env_overrides(env: Mapping[str, str]) -> dict[str, Any]:
    """`RTSP2JPG_<SECTION>_<KEY>` (and the original's names) as a nested mapping of raw strings."""
    tree: dict[str, Any] = {}
    paths = dict(_scalar_paths(Config, ()))
    for name, value in env.items():
        key_path = LEGACY_ENV.get(name) or paths.get(name)
        if key_path is None:
            continue
        node = tree
        for part in key_path[:-1]:
            node = node.setdefault(part, {})
        node[key_path[-1]] = value
    return tree


def _scalar_paths(cls: type, prefix: tuple[str, ...]) -> list[tuple[str, tuple[str, ...]]]:
    out = []
    hints = get_type_hints(cls)
    for f in dataclasses.fields(cls):
        kind = hints[f.name]
        if get_origin(kind) is tuple and get_args(kind)[0] is not str:
            continue
        if dataclasses.is_dataclass(kind):
            out += _scalar_paths(kind, prefix + (f.name,))
        else:
            key = prefix + (f.name,)
            out.append(("RTSP2JPG_" + "_".join(key).upper(), key))
    return out


def _merge(base: dict[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in over.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def load(path: str | os.PathLike[str] | None = None, env: Mapping[str, str] | None = None,
         overrides: Mapping[str, Any] | None = None) -> Config:
    """Load the file (if any), apply environment then `overrides` (command-line flags), validate."""
    env = os.environ if env is None else env
    path = path or env.get("RTSP2JPG_CONFIG") or None
    data: Any = {}
    if path:
        try:
            with open(path, encoding="utf-8") as fh:
                data = yaml.safe_load(fh) or {}
        except OSError as e:
            raise ConfigError(f"config file {path}: {e.strerror}") from None
        except yaml.YAMLError as e:
            # Not str(e): PyYAML quotes the offending line, which may be a password's.
            mark = getattr(e, "problem_mark", None)
            where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
            raise ConfigError(f"config file {path}: invalid YAML{where}: "
                              f"{getattr(e, 'problem', None) or 'cannot parse'}") from None
        if not isinstance(data, dict):
            raise ConfigError(f"config file {path}: must be a mapping of sections")
    data = _merge(data, env_overrides(env))
    data = _merge(data, overrides or {})
    # Cameras inherit the global capture block, so it is built first and handed down.
    capture = build(CaptureConfig, data.get("capture"), "capture", env)
    cameras_raw = data.pop("cameras", None)
    config = build(Config, data, "", env)
    cameras = _build_cameras(cameras_raw, "cameras", env, base_capture=capture)
    if config.http.protect_snapshots and not config.http.api_key:
        raise ConfigError("http.protect_snapshots: true needs http.api_key (or RTSP2JPG_HTTP_API_KEY); "
                          "without a key there is nothing to protect the reads with")
    if len(cameras) > capture.max_cameras:
        raise ConfigError(f"capture.max_cameras: the file declares {len(cameras)} cameras, more than "
                          f"capture.max_cameras ({capture.max_cameras}); raise it or remove cameras")
    device_id = config.device_id or socket.gethostname()
    return dataclasses.replace(config, cameras=cameras, device_id=device_id)


def documented_keys(cls: type = Config, prefix: str = "") -> list[str]:
    """Every key path of the schema (`http.port`, `cameras[].capture.decoder`, ...), for docs tests."""
    keys = []
    hints = get_type_hints(cls)
    for f in dataclasses.fields(cls):
        kind = hints[f.name]
        key = f"{prefix}{f.name}"
        if cls is CameraConfig and f.name == "capture":
            continue  # per-camera capture keys are the capture.* keys, written flat in the entry
        keys.append(key)
        if dataclasses.is_dataclass(kind):
            keys += documented_keys(kind, key + ".")
        elif get_origin(kind) is tuple and dataclasses.is_dataclass(get_args(kind)[0]):
            keys += documented_keys(get_args(kind)[0], key + "[].")
    return keys
