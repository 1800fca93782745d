"""Operator commands: `cameras list|add|remove` against a running service, plus the parsers of `probe` and
`snapshot` (probe.py: a camera directly, no service needed).

Progress goes to stderr, results to stdout, so `rtsp2jpg probe URL --json | jq` and
`rtsp2jpg snapshot URL -o - > x.jpg` work. Exit codes (also in docs/troubleshooting.md):
0 ok; 1 the camera gave no frame / the service refused the request; 2 bad usage or configuration;
3 OpenCV (cv2) missing; 4 the service could not be reached.
"""

from __future__ import annotations

import argparse
import json
import os
import urllib.error
import urllib.request
from typing import Any

from rtsp2jpg.cli.codes import FAILED, OK, UNREACHABLE, USAGE
from rtsp2jpg.cli.direct import cmd_probe, cmd_snapshot, progress, valid_url

# --- cameras: talk to a running service ----------------------------------------------------------

class ServiceError(Exception):
    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code


def call(args: argparse.Namespace, method: str, path: str, body: Any = None) -> Any:
    headers = {"Accept": "application/json"}
    key = args.api_key or os.environ.get("RTSP2JPG_API_KEY", "")
    if key:
        headers["Authorization"] = f"Bearer {key}"
    data = None
    if body is not None:
        data = json.dumps(body).encode()
        headers["Content-Type"] = "application/json"
    base = args.url.rstrip("/")
    if not base.startswith(("http://", "https://")):
        raise ServiceError(USAGE, f"--url must start with http:// or https://, got {base!r}")
    req = urllib.request.Request(base + path, data=data, method=method, headers=headers)  # noqa: S310
    try:
        with urllib.request.urlopen(req, timeout=args.timeout) as resp:  # noqa: S310 - scheme checked above
            return json.loads(resp.read() or b"null")
    except urllib.error.HTTPError as e:
        try:
            detail = json.loads(e.read()).get("detail", e.reason)
        except (ValueError, AttributeError):
            detail = e.reason
        raise ServiceError(FAILED, f"{method} {path}: HTTP {e.code}: {detail}") from None
    except (urllib.error.URLError, OSError) as e:
        reason = getattr(e, "reason", e)
        raise ServiceError(UNREACHABLE, f"cannot reach the service at {base}: {reason}") from None


def cmd_cameras(args: argparse.Namespace) -> int:
    try:
        if args.action == "list":
            cams = call(args, "GET", "/cameras")
            if args.json:
                print(json.dumps(cams, indent=2))
            else:
                print(format_cameras(cams))
        elif args.action == "add":
            body = {"rtsp_url": valid_url(args.rtsp_url), "prefer": args.prefer}
            if args.name:
                body["name"] = args.name
            res = call(args, "POST", "/register", body)
            progress(f"camera {res['id']}: {res['status']}")
            print(res["id"])
        else:
            res = call(args, "DELETE", f"/cameras/{urllib.request.quote(args.camera_id, safe='')}")
            progress(f"camera {args.camera_id}: {res.get('message', 'removed')}")
    except ServiceError as e:
        progress(f"rtsp2jpg: {e}")
        return e.code
    return OK


def format_cameras(cams: list[dict[str, Any]]) -> str:
    rows = [("ID", "STATUS", "FPS", "SOURCE", "BACKEND", "NAME", "URL")]
    for c in cams:
        rows.append((c["id"], c["status"], f"{c.get('fps') or 0:g}", c.get("source") or "", c.get("backend") or "-",
                     c.get("name") or "", c.get("url") or ""))
    widths = [max(len(str(r[i])) for r in rows) for i in range(len(rows[0]) - 1)]
    return "\n".join("  ".join(str(v).ljust(w) for v, w in zip(r, widths, strict=False)) + "  " + str(r[-1])
                     for r in rows)


def _service_options(parser: argparse.ArgumentParser, url: Any, key: Any, timeout: Any) -> None:
    parser.add_argument("--url", default=url, help="the service (default: $RTSP2JPG_URL or http://127.0.0.1:8080)")
    parser.add_argument("--api-key", default=key,
                        help="API key (default: $RTSP2JPG_API_KEY; the variable keeps it out of `ps`)")
    parser.add_argument("--timeout", type=float, default=timeout, help="HTTP timeout in seconds (default 10)")


def add_parsers(sub: Any) -> None:
    """Register `probe`, `snapshot` and `cameras` on the CLI's subparsers."""
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
    snap.add_argument("--prefer", choices=("default", "ffmpeg", "gstreamer"), default="default")
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
    add.add_argument("rtsp_url")
    add.add_argument("--name", default="")
    add.add_argument("--prefer", choices=("default", "ffmpeg", "gstreamer"), default="default")
    rm = actions.add_parser("remove", help="unregister a camera", parents=[after])
    rm.add_argument("camera_id")
    cams.set_defaults(func=cmd_cameras)
