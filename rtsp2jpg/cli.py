"""Command line: parses arguments, loads the config once and hands it down.

Exit codes: 0 ok, 1 runtime failure (no frame, request refused), 2 bad configuration or usage,
3 OpenCV (cv2) missing, 4 a running service could not be reached (`cameras`) or the MQTT broker
(`fleet`, which exits 1 when a camera is in error or a device offline, and 5 when all else is well
but malformed messages were skipped).
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from typing import Any

from rtsp2jpg import __version__, config, logs, tools
from rtsp2jpg.urls import redact

log = logging.getLogger("rtsp2jpg")

CV2_MISSING = ("rtsp2jpg needs OpenCV's Python module (cv2). On Debian/Raspberry Pi OS: "
               "apt install python3-opencv (and create the venv with --system-site-packages); "
               "on Jetson keep JetPack's OpenCV; elsewhere: pip install 'rtsp2jpg[opencv]'.")


def _flags(args: argparse.Namespace) -> dict[str, Any]:
    http: dict[str, Any] = {}
    if getattr(args, "host", None):
        http["host"] = args.host
    if getattr(args, "port", None) is not None:
        http["port"] = args.port
    return {"http": http} if http else {}


def _load(args: argparse.Namespace) -> config.Config:
    return config.load(args.config, overrides=_flags(args))


def cmd_serve(args: argparse.Namespace) -> int:
    cfg = _load(args)
    logs.setup(cfg.log_level)
    try:
        import cv2  # noqa: F401  (checked here so the error is a sentence, not a traceback)
    except ImportError:
        log.error(CV2_MISSING)
        return 3
    from rtsp2jpg.app import run
    from rtsp2jpg.registry import RegistryError

    try:
        return run(cfg)
    except RegistryError as e:
        log.error("%s", e)
        return 1
    except OSError as e:
        log.error("cannot start: %s", e)
        return 1


def cmd_check_config(args: argparse.Namespace) -> int:
    cfg = _load(args)
    if cfg.mqtt.enabled:
        from rtsp2jpg.topics import topic_problem

        problem = topic_problem(cfg.mqtt.base_topic, cfg.device_id)
        if problem:
            raise config.ConfigError(problem)
    print(f"config OK: {len(cfg.cameras)} camera(s), http {cfg.http.host}:{cfg.http.port}, "
          f"registry {cfg.storage.db_path}, mqtt {'on' if cfg.mqtt.enabled else 'off'}")
    return 0


def cmd_fleet(args: argparse.Namespace) -> int:
    import os

    from rtsp2jpg import fleet

    if args.password is None:
        args.password = os.environ.get("MQTT_PASSWORD", "")
    if args.port is None:
        args.port = 8883 if (args.tls or args.ca_file) else 1883
    return fleet.run(args)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="rtsp2jpg", description="RTSP cameras in, fresh JPEG snapshots out.")
    parser.add_argument("--version", action="version", version=f"rtsp2jpg {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run the service")
    serve.add_argument("--config", "-c", help="YAML config file (default: $RTSP2JPG_CONFIG)")
    serve.add_argument("--host", help="listen address (overrides http.host)")
    serve.add_argument("--port", type=int, help="listen port (overrides http.port)")
    serve.set_defaults(func=cmd_serve)

    check = sub.add_parser("check-config", help="validate the configuration and exit")
    check.add_argument("config", nargs="?", help="YAML config file (default: $RTSP2JPG_CONFIG)")
    check.set_defaults(func=cmd_check_config)

    tools.add_parsers(sub)  # probe, snapshot, cameras

    from rtsp2jpg import fleet  # paho only; importing it starts nothing

    fleet.add_parser(sub).set_defaults(func=cmd_fleet)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except config.ConfigError as e:
        print(f"rtsp2jpg: configuration error: {redact(str(e))}", file=sys.stderr)
        return 2
