"""The configuration schema: frozen dataclasses, one per section (load.py fills them, reference.py documents them).

The dataclasses below are the schema. Each field's metadata carries its help text (the example file
and docs are tested against it) and an optional check; the loader walks the dataclasses, so adding
a key is adding a field.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, get_args, get_origin, get_type_hints

from rtsp2jpg.capture.masks import MAX_POINTS, MAX_POLYGONS, Polygon, parse_polygons
from rtsp2jpg.capture.view import Crop, parse_crop, parse_rotate
from rtsp2jpg.mqtt.contract import level_problem, prefix_problem
from rtsp2jpg.web.trust import host_pattern_problem


class ConfigError(ValueError):
    """A bad key or value; the message starts with the key path (`cameras[1].url: ...`)."""


def _opt(default: Any, help: str, check: Callable[[Any], str | None] | None = None) -> Any:
    return field(default=default, metadata={"help": help, "check": check})


def _parsed(default: Any, kind: str, help: str, parse: Callable[[Any], Any]) -> Any:
    """A key whose value is not a plain scalar (polygons, a crop): `parse` validates and converts it;
    `kind` names its type in the reference."""
    return field(default=default, metadata={"help": help, "parse": parse, "kind": kind})


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

    decoder: str = _opt("auto", "auto (hardware GStreamer, adaptive libavcodec with python3-gi, FFmpeg), "
                        "ffmpeg, gstreamer, software, or an element such as nvv4l2decoder", _decoder)
    codec: str = _opt("auto", "stream codec: auto (from the RTSP SDP), h264 or h265", _choice("auto", "h264", "h265"))
    transport: str = _opt("tcp", "RTSP transport: tcp or udp", _choice("tcp", "udp"))
    tls_verify: bool = _opt(True, "rtsps://: check the camera's certificate (system CAs; FFmpeg cannot, so "
                            "it is not tried); false accepts a self-signed one")
    reconnect_delay_sec: float = _opt(2.0, "backoff base, doubled (with jitter) per failure; 0.25 s after a "
                                      "stream that ran 5 s or more", _positive)
    reconnect_max_delay_sec: float = _opt(60.0, "cap of the reconnect delay", _positive)
    read_throttle_sec: float = _opt(0.0, "minimum interval between converted/encoded frames (CPU vs freshness)",
                                    _non_negative)
    open_timeout_sec: float = _opt(10.0, "give up opening a stream after this long", _positive)
    stall_timeout_sec: float = _opt(10.0, "no frame for this long -> reconnect", _positive)
    jpeg_quality: int = _opt(85, "default JPEG quality (1-100)", _range(1, 100))
    keyframes_only: bool = _opt(False, "decode keyframes only (GStreamer decoders that support it)")
    decode: str = _opt("adaptive", "adaptive: GStreamer decodes only while read once per keyframe interval, "
                       "else on the next read from the kept pictures; always: every frame",
                       _choice("adaptive", "always"))
    rtsp_client: str = _opt("own", "who receives for adaptive decoding over TCP: own (rtsp2jpg's RTSP client; "
                            "rtspsrc where it cannot) or rtspsrc", _choice("own", "rtspsrc"))
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
    link_secret: str = _opt("", "key of signed snapshot/stream links (POST /cameras/<id>/links); empty = derived "
                            "from http.api_key. Changing either revokes every link")
    link_max_ttl_sec: float = _opt(604800.0, "longest life of a signed link (7 days); links living longer than "
                                   "this allows now stop working", _range(1, 31536000))
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
class HealthConfig:
    """Image health (capture/health.py): a camera whose frames are useless is `degraded`, with the reason."""

    enabled: bool = _opt(True, "check each camera's picture every interval_sec (one frame; cheap)")
    interval_sec: float = _opt(5.0, "how often each camera's newest frame is checked", _range(0.2, 3600))
    uniform_std: float = _opt(4.0, "grey-level spread of a 16x9 block thumbnail below which the picture is "
                              "uniform (covered lens, no light, a black stream)", _range(0, 128))
    frozen_sec: float = _opt(30.0, "a bit-identical picture this long while frames arrive is frozen (a hung "
                             "encoder); noise or a ticking clock keep a live scene apart", _range(1, 86400))
    scene_change: float = _opt(0.6, "fraction of thumbnail blocks that must change at once for a sudden "
                               "scene change (moved or tampered camera)", _range(0.05, 1.01))
    scene_delta: float = _opt(40.0, "grey levels a block must change by to count as changed", _range(1, 255))
    scene_hold_sec: float = _opt(60.0, "how long a scene change is reported", _non_negative)


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
    stats_interval_sec: float = _opt(60.0, "publish retained device stats (CPU, memory, board, cameras) this often "
                                     "(0 = off)", lambda v: None if v == 0 or 1 <= v <= 86400
                                     else f"must be 0 (off) or between 1 and 86400, got {v!r}")
    commands_enabled: bool = _opt(False, "accept camera restart/disable/enable over MQTT (ACLs: docs/fleet.md)")
    snapshot_quality: int = _opt(70, "JPEG quality of published snapshots", _range(1, 100))
    snapshot_width: int = _opt(640, "width of published snapshots (0 = full size)", _range(0, 8192))
    snapshot_retain: bool = _opt(False, "retain the last snapshot on the broker")
    homeassistant: HomeAssistantConfig = field(default_factory=HomeAssistantConfig,
                                               metadata={"help": "Home Assistant MQTT discovery"})
    tls: TlsConfig = field(default_factory=TlsConfig, metadata={"help": "broker TLS"})


@dataclass(frozen=True)
class StreamsConfig:
    """A camera's main and sub stream, instead of `url` (capture/streams.py)."""

    main: str = _opt("", "full-resolution stream URL: decoded only when read (the default snapshot)")
    sub: str = _opt("", "small stream URL: feeds MJPEG, MQTT snapshots, the health check and small snapshots")


@dataclass(frozen=True)
class CameraConfig:
    """A camera declared in the file; its id is stable across restarts."""

    id: str = _opt("", "slug used in /snapshot/<id>", _slug)
    url: str = _opt("", "rtsp:// or rtsps:// URL; put the password in ${VAR}")
    streams: StreamsConfig = field(default_factory=StreamsConfig,
                                   metadata={"help": "main and sub stream, instead of url"})
    name: str = _opt("", "display name (default: the id)")
    snapshot_interval_sec: float = _opt(-1.0, "per-camera MQTT snapshot interval (-1 = mqtt default)")
    privacy_masks: tuple[Polygon, ...] = _parsed(
        (), "list of polygons", f"polygons filled black before any encode (snapshots, MJPEG, MQTT): each a list of "
        f"[x, y] fractions (0-1) of the stream's picture; at most {MAX_POLYGONS} polygons of 3-{MAX_POINTS} points",
        parse_polygons)
    rotate: int = _parsed(0, "integer", "rotate every picture clockwise: 0, 90, 180 or 270 (after the masks)",
                          parse_rotate)
    crop: Crop | tuple[()] = _parsed((), "list of 4 numbers", "crop every picture to x,y,w,h fractions (after the "
                                     "masks, before rotate); empty = whole picture", parse_crop)
    timestamp: bool = _opt(False, "draw the capture time and camera name into every picture (?timestamp=0 "
                           "turns it off per request)")
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
    health: HealthConfig = field(default_factory=HealthConfig, metadata={"help": "image health checks"})
    mqtt: MqttConfig = field(default_factory=MqttConfig, metadata={"help": "MQTT fleet monitoring"})
    cameras: tuple[CameraConfig, ...] = field(default=(), metadata={"help": "cameras declared in the file"})


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
        if f.metadata.get("parse"):
            continue
        if dataclasses.is_dataclass(kind):
            keys += documented_keys(kind, key + ".")
        elif get_origin(kind) is tuple and dataclasses.is_dataclass(get_args(kind)[0]):
            keys += documented_keys(get_args(kind)[0], key + "[].")
    return keys
