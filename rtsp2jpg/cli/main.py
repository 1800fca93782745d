"""Command line: parses arguments, loads the config once and hands it down.

Every parser is built here; the commands live in direct.py (a camera, no service), remote.py (a running
service) and mqtt/fleet.py (the broker). Exit codes: codes.py.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import threading
from collections.abc import Callable, Sequence
from typing import Any

from rtsp2jpg import __version__, config
from rtsp2jpg.capture.sources import PREFERENCES
from rtsp2jpg.cli.codes import CV2_MISSING, FAILED, NO_CV2, OK, USAGE
from rtsp2jpg.cli.direct import cmd_probe, cmd_snapshot
from rtsp2jpg.cli.link import add_link_parser
from rtsp2jpg.cli.remote import cmd_cameras
from rtsp2jpg.process import logs
from rtsp2jpg.urls import redact

log = logging.getLogger("rtsp2jpg")



def _flags(args: argparse.Namespace) -> dict[str, Any]:
    http: dict[str, Any] = {}
    if getattr(args, "host", None):
        http["host"] = args.host
    if getattr(args, "port", None) is not None:
        http["port"] = args.port
    return {"http": http} if http else {}


def _load(args: argparse.Namespace) -> config.Config:
    return config.load(args.config, overrides=_flags(args))


def cmd_serve(args: argparse.Namespace, supervisor_tick_hook: Callable[[threading.Event], None] | None = None) -> int:
    cfg = _load(args)
    logs.setup(cfg.log_level)
    try:
        from rtsp2jpg.capture import opencv  # noqa: F401  (checked here so the error is a sentence, not a traceback)
    except ImportError:
        log.error(CV2_MISSING)
        return NO_CV2
    from rtsp2jpg.registry import RegistryError
    from rtsp2jpg.serve import run

    try:
        return run(cfg, supervisor_tick_hook=supervisor_tick_hook)
    except RegistryError as e:
        log.error("%s", e)
        return FAILED
    except OSError as e:
        log.error("cannot start: %s", e)
        return FAILED


def cmd_check_config(args: argparse.Namespace) -> int:
    cfg = _load(args)
    if cfg.mqtt.enabled:
        from rtsp2jpg.mqtt.contract import topic_problem

        problem = topic_problem(cfg.mqtt.base_topic, cfg.device_id)
        if problem:
            raise config.ConfigError(problem)
    print(f"config OK: {len(cfg.cameras)} camera(s), http {cfg.http.host}:{cfg.http.port}, "
          f"registry {cfg.storage.db_path}, mqtt {'on' if cfg.mqtt.enabled else 'off'}")
    return OK


def cmd_fleet(args: argparse.Namespace) -> int:
    from rtsp2jpg.mqtt import reader  # paho only here: `rtsp2jpg --help` does not need it

    if args.password is None:
        args.password = os.environ.get("MQTT_PASSWORD", "")
    if args.port is None:
        args.port = 8883 if (args.tls or args.ca_file) else 1883
    return reader.run(args)


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

    add_camera_parsers(sub)  # probe, snapshot, cameras
    add_link_parser(sub)

    add_fleet_parser(sub).set_defaults(func=cmd_fleet)
    return parser


def _service_options(parser: argparse.ArgumentParser, url: Any, key: Any, timeout: Any) -> None:
    parser.add_argument("--url", default=url, help="the service (default: $RTSP2JPG_URL or http://127.0.0.1:8080)")
    parser.add_argument("--api-key", default=key,
                        help="API key (default: $RTSP2JPG_API_KEY; the variable keeps it out of `ps`)")
    parser.add_argument("--timeout", type=float, default=timeout, help="HTTP timeout in seconds (default 10)")


def add_camera_parsers(sub: Any) -> None:
    """`probe` and `snapshot` (direct.py: a camera, no service) and `cameras` (remote.py: a running service)."""
    probe = sub.add_parser("probe", help="which capture sources open a camera, with codec, size, fps, time to frame")
    probe.add_argument("url", help="rtsp:// or rtsps:// URL (the password is never printed)")
    probe.add_argument("--seconds", type=float, default=2.0, help="how long to count frames per source (default 2)")
    probe.add_argument("--timeout", type=float, default=0, help="open/read timeout in seconds (default: config)")
    probe.add_argument("--config", "-c", help="config file for capture.* defaults (default: $RTSP2JPG_CONFIG)")
    probe.add_argument("--json", action="store_true", help="print the report as JSON")
    probe.set_defaults(func=cmd_probe)

    snap = sub.add_parser("snapshot", help="save one JPEG from a camera and exit")
    snap.add_argument("url", help="rtsp:// or rtsps:// URL")
    snap.add_argument("-o", "--output", required=True, help="file to write, or - for stdout")
    snap.add_argument("-q", "--quality", type=int, default=85, choices=range(1, 101), metavar="1-100")
    snap.add_argument("--width", type=int, default=0, help="scale down to this width (keeps aspect)")
    snap.add_argument("--prefer", choices=PREFERENCES, default="default")
    snap.add_argument("--timeout", type=float, default=0, help="open/read timeout in seconds (default: config)")
    snap.add_argument("--config", "-c", help="config file for capture.* defaults")
    snap.set_defaults(func=cmd_snapshot)

    cams = sub.add_parser("cameras", help="list, add or remove cameras of a running service")
    _service_options(cams, os.environ.get("RTSP2JPG_URL", "http://127.0.0.1:8080"), "", 10.0)
    # The same options are accepted after the action too (`cameras list --url ...`).
    after = argparse.ArgumentParser(add_help=False)
    _service_options(after, argparse.SUPPRESS, argparse.SUPPRESS, argparse.SUPPRESS)
    actions = cams.add_subparsers(dest="action", required=True)
    ls = actions.add_parser("list", help="every camera with its status", parents=[after])
    ls.add_argument("--json", action="store_true", help="print the service's JSON")
    add = actions.add_parser("add", help="register a camera; prints its id", parents=[after])
    add.add_argument("rtsp_url", help="the camera's URL (its main stream, with --sub)")
    add.add_argument("--sub", default="", metavar="URL", help="the camera's sub stream (MJPEG, MQTT, thumbnails)")
    add.add_argument("--name", default="")
    add.add_argument("--prefer", choices=PREFERENCES, default="default")
    rm = actions.add_parser("remove", help="unregister a camera", parents=[after])
    rm.add_argument("camera_id")
    cams.set_defaults(func=cmd_cameras)


def add_fleet_parser(sub: Any) -> argparse.ArgumentParser:
    """The `fleet` subcommand's arguments (the command: mqtt/reader.py)."""
    p = sub.add_parser("fleet", help="print every device and camera from the broker's retained topics",
                       description="Devices in trouble are listed first. Exit 0 when all is well, 1 when "
                                   "a camera is in error or a device offline or stale (stats older than "
                                   "three intervals), 4 when the broker cannot be read, 5 when all else is well "
                                   "but malformed messages were skipped (counted on stderr and as "
                                   "'malformed' in --json).")
    p.add_argument("--broker", default="localhost", help="broker host (default: localhost)")
    p.add_argument("--port", type=int, default=None, help="broker port (default: 1883, 8883 with TLS)")
    p.add_argument("--base-topic", default="rtsp2jpg", help="base topic of the devices (default: rtsp2jpg)")
    p.add_argument("--username", default="", help="broker user name")
    p.add_argument("--password", default=None, help="broker password (default: $MQTT_PASSWORD)")
    p.add_argument("--tls", action="store_true", help="connect with TLS")
    p.add_argument("--ca-file", default="", help="CA certificate for TLS (implies --tls)")
    p.add_argument("--insecure", action="store_true", help="TLS without hostname verification")
    p.add_argument("--timeout", type=float, default=10.0, help="seconds to wait for the broker (default: 10)")
    p.add_argument("--watch", action="store_true", help="keep running and reprint on every change")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    return p


def main(argv: Sequence[str] | None = None, *,
         supervisor_tick_hook: Callable[[threading.Event], None] | None = None) -> int:
    """`supervisor_tick_hook` is for tests only (tests/support/wedged_serve.py): passed to `serve`'s Service."""
    args = build_parser().parse_args(argv)
    try:
        if args.func is cmd_serve:
            return int(cmd_serve(args, supervisor_tick_hook))
        return int(args.func(args))
    except config.ConfigError as e:
        print(f"rtsp2jpg: configuration error: {redact(str(e))}", file=sys.stderr)
        return USAGE
