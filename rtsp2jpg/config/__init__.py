"""Configuration: `schema` (the dataclasses: every key, its default, help and check), `load` (YAML, environment,
`${VAR}`, flags), `reference` (writes docs/configuration.md's table;
not imported here, so `python -m rtsp2jpg.config.reference` runs cleanly).

Callers use the facade: `from rtsp2jpg import config; config.load(...)`, `from rtsp2jpg.config import Config`.
"""

from rtsp2jpg.config.load import LEGACY_ENV, build, env_overrides, load
from rtsp2jpg.config.schema import (
    CameraConfig,
    CaptureConfig,
    Config,
    ConfigError,
    HealthConfig,
    HomeAssistantConfig,
    HttpConfig,
    MqttConfig,
    StorageConfig,
    TlsConfig,
    documented_keys,
)

__all__ = ["LEGACY_ENV", "CameraConfig", "CaptureConfig", "Config", "ConfigError", "HealthConfig",
           "HomeAssistantConfig", "HttpConfig", "MqttConfig", "StorageConfig", "TlsConfig", "build", "documented_keys",
           "env_overrides", "load"]
