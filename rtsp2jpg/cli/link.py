"""`rtsp2jpg link <id> --ttl 1h`: print a signed, expiring snapshot (or stream) link, made from the
config's http.link_secret / http.api_key, so no running service or network call is needed."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from rtsp2jpg import config
from rtsp2jpg.cli.codes import OK, USAGE
from rtsp2jpg.web import links


def add_link_parser(sub: Any) -> None:
    p = sub.add_parser("link", help="print a signed, expiring link to a camera's snapshot or stream")
    p.add_argument("camera_id", help="the camera's id")
    p.add_argument("--ttl", default="1h", help="how long it works: 90, 30m, 1h, 7d (default: 1h)")
    p.add_argument("--stream", action="store_true", help="a link to the MJPEG stream instead of the snapshot")
    p.add_argument("--base", default="", help="prefix such as http://pi.local:8080 (default: a relative URL)")
    p.add_argument("--config", "-c", help="YAML config file (default: $RTSP2JPG_CONFIG)")
    p.set_defaults(func=cmd_link)


def cmd_link(args: argparse.Namespace) -> int:
    cfg = config.load(args.config)
    key = links.link_key(cfg.http.link_secret, cfg.http.api_key)
    if key is None:
        print("rtsp2jpg: signed links need http.api_key or http.link_secret in the configuration", file=sys.stderr)
        return USAGE
    try:
        ttl = links.parse_ttl(args.ttl)
    except ValueError as e:
        print(f"rtsp2jpg: --ttl: {e}", file=sys.stderr)
        return USAGE
    if not 1 <= ttl <= cfg.http.link_max_ttl_sec:
        print(f"rtsp2jpg: --ttl must be from 1 s to http.link_max_ttl_sec ({cfg.http.link_max_ttl_sec:g} s)",
              file=sys.stderr)
        return USAGE
    url, _exp = links.make(key, "stream" if args.stream else "snapshot", args.camera_id, ttl)
    print(args.base.rstrip("/") + url)
    return OK
