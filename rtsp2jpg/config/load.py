"""Configuration loading: YAML file, then RTSP2JPG_* environment (and `${VAR}`), then flags; validated once.

The loader walks the dataclasses of schema.py, so adding a key is adding a field there.
"""

from __future__ import annotations

import dataclasses
import os
import re
import socket
from collections.abc import Mapping
from pathlib import Path
from typing import Any, get_args, get_origin, get_type_hints

import yaml

from rtsp2jpg.config.schema import CameraConfig, CaptureConfig, Config, ConfigError
from rtsp2jpg.urls import UrlError, canonical, validate_rtsp_url

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
        parse = f.metadata.get("parse")
        if parse is not None:
            try:
                values[f.name] = parse(raw)
            except ValueError as e:
                raise ConfigError(f"{where}: {e}") from None
        elif dataclasses.is_dataclass(kind):
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
        cam = _with_streams(cam, where)
        seen.add(cam.id)
        cameras.append(cam)
    return tuple(cameras)


def _with_streams(cam: CameraConfig, where: str) -> CameraConfig:
    """The camera with a checked url; `streams: {main, sub}` instead of `url` makes main the url."""
    main, sub = cam.streams.main, cam.streams.sub
    if not (main or sub):
        _check_url(cam.url, f"{where}.url")
        return cam
    if cam.url:
        raise ConfigError(f"{where}.streams: give either url or streams, not both")
    if not (main and sub):
        raise ConfigError(f"{where}.streams: needs both main and sub (a camera with one stream has url)")
    _check_url(main, f"{where}.streams.main")
    _check_url(sub, f"{where}.streams.sub")
    if canonical(main) == canonical(sub):
        raise ConfigError(f"{where}.streams.sub: is the main stream's URL")
    return dataclasses.replace(cam, url=main)


def _check_url(url: str, where: str) -> None:
    try:
        validate_rtsp_url(url)
    except UrlError as e:
        raise ConfigError(f"{where}: {e}") from None


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
