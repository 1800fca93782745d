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
from rtsp2jpg.cli.direct import progress, valid_url

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
            url = valid_url(args.rtsp_url)
            body = {"streams": {"main": url, "sub": valid_url(args.sub)}} if args.sub else {"rtsp_url": url}
            body["prefer"] = args.prefer
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
