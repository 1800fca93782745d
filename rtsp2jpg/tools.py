"""Operator commands: `probe` and `snapshot` (a camera, no service needed) and `cameras` (a running service).

Progress goes to stderr, results to stdout, so `rtsp2jpg probe URL --json | jq` and
`rtsp2jpg snapshot URL -o - > x.jpg` work. Exit codes (also in docs/troubleshooting.md):
0 ok; 1 the camera gave no frame / the service refused the request; 2 bad usage or configuration;
3 OpenCV (cv2) missing; 4 the service could not be reached.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import time
import urllib.error
import urllib.request
from typing import Any

from rtsp2jpg import config
from rtsp2jpg.urls import UrlError, redact, validate_rtsp_url

OK, FAILED, USAGE, NO_CV2, UNREACHABLE = 0, 1, 2, 3, 4


def progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# --- probe and snapshot: talk to the camera directly ---------------------------------------------

def stream_info(url: str, timeout: float) -> dict[str, Any] | None:
    """Codec, size and nominal frame rate from the stream's caps (GStreamer's discoverer), or None."""
    try:
        import gi

        gi.require_version("Gst", "1.0")
        gi.require_version("GstPbutils", "1.0")
        from gi.repository import Gst, GstPbutils
    except (ImportError, ValueError):
        return None
    Gst.init(None)
    try:
        info = GstPbutils.Discoverer.new(int(timeout * Gst.SECOND)).discover_uri(url)
    except Exception as e:  # GLib.Error: unreachable, refused, timed out, unsupported
        return {"error": redact(str(getattr(e, "message", e)))}
    for video in info.get_video_streams():
        caps = video.get_caps()
        num, den = video.get_framerate_num(), video.get_framerate_denom()
        return {"codec": GstPbutils.pb_utils_get_codec_description(caps), "caps": caps.get_structure(0).get_name(),
                "width": video.get_width(), "height": video.get_height(),
                "fps": round(num / den, 2) if den else None}
    return {"error": "no video stream in the answer"}


def _pipeline(args: argparse.Namespace) -> Any:
    try:
        from rtsp2jpg import pipeline
    except ImportError:
        from rtsp2jpg.cli import CV2_MISSING

        progress(CV2_MISSING)
        raise SystemExit(NO_CV2) from None
    cfg = config.load(getattr(args, "config", None))
    capture = cfg.capture
    if args.timeout:
        capture = dataclasses.replace(capture, open_timeout_sec=args.timeout, stall_timeout_sec=args.timeout)
    pipeline.configure_ffmpeg(capture.transport)
    return pipeline, capture


def try_source(pipeline: Any, spec: Any, seconds: float) -> dict[str, Any]:
    """Open one source, time its first frame, then count frames for `seconds`."""
    result: dict[str, Any] = {"source": spec.label, "ok": False}
    start = time.monotonic()
    try:
        capture = pipeline.open_source(spec)
    except Exception as e:
        result["error"] = redact(str(e))
        return result
    try:
        result["open_sec"] = round(time.monotonic() - start, 3)
        if not capture.grab():
            result["error"] = "opened, but no frame within the timeout"
            return result
        image = capture.retrieve()
        result["first_frame_sec"] = round(time.monotonic() - start, 3)
        if image is None:
            result["error"] = "first frame could not be decoded"
            return result
        result["height"], result["width"] = (int(n) for n in image.shape[:2])
        frames, t0 = 0, time.monotonic()
        while time.monotonic() - t0 < seconds and capture.grab():
            frames += 1
        elapsed = time.monotonic() - t0
        result["fps"] = round(frames / elapsed, 2) if elapsed > 0 else None
        result["ok"] = True
        return result
    finally:
        capture.release()


def cmd_probe(args: argparse.Namespace) -> int:
    url = _valid_url(args.url)
    pipeline, capture = _pipeline(args)
    caps = pipeline.capabilities()
    shown = redact(url)
    progress(f"probing {shown} (OpenCV {caps.cv2_version}; "
             f"backends {', '.join(k for k, v in caps.backends.items() if v) or 'none'})")
    report: dict[str, Any] = {"url": shown, "stream": None, "sources": []}
    progress("reading the stream description ...")
    report["stream"] = stream_info(url, capture.open_timeout_sec)
    specs = pipeline.candidates(url, capture, caps, "default")
    if not specs:
        progress("no capture source can open this URL with this OpenCV build")
    for spec in specs:
        progress(f"trying {spec.label} ...")
        report["sources"].append(try_source(pipeline, spec, args.seconds))
    working = [s for s in report["sources"] if s["ok"]]
    report["ok"] = bool(working)
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print(format_probe(report))
    return OK if working else FAILED


def format_probe(report: dict[str, Any]) -> str:
    lines = [f"camera  {report['url']}"]
    info = report.get("stream")
    if info is None:
        lines.append("stream  (GStreamer's discoverer is not available here)")
    elif "error" in info:
        lines.append(f"stream  not described: {info['error']}")
    else:
        lines.append(f"stream  {info['codec']}, {info['width']}x{info['height']}, {info['fps']} fps (nominal)")
    for s in report["sources"]:
        if s["ok"]:
            lines.append(f"source  {s['source']}: OK, first frame after {s['first_frame_sec']:.2f}s "
                         f"(open {s['open_sec']:.2f}s), {s['width']}x{s['height']}, {s['fps']} fps measured")
        else:
            lines.append(f"source  {s['source']}: FAILED: {s.get('error', '?')}")
    working = [s["source"] for s in report["sources"] if s["ok"]]
    lines.append(f"result  {'works with ' + ', '.join(working) if working else 'no source delivered a frame'}")
    return "\n".join(lines)


def cmd_snapshot(args: argparse.Namespace) -> int:
    url = _valid_url(args.url)
    pipeline, capture = _pipeline(args)
    specs = pipeline.candidates(url, capture, pipeline.capabilities(), args.prefer)
    progress(f"connecting to {redact(url)} ...")
    start = time.monotonic()
    for spec in specs:
        try:
            cap = pipeline.open_source(spec)
        except Exception as e:
            progress(f"{spec.label}: {redact(str(e))}")
            continue
        try:
            image = cap.retrieve() if cap.grab() else None
        finally:
            cap.release()
        if image is None:
            progress(f"{spec.label}: opened, but no frame within the timeout")
            continue
        jpeg = pipeline.encode_jpeg(image, args.quality, args.width or 0, 0)
        if args.output == "-":
            sys.stdout.buffer.write(jpeg)
            sys.stdout.buffer.flush()
        else:
            with open(args.output, "wb") as fh:
                fh.write(jpeg)
        h, w = image.shape[:2]
        progress(f"wrote {args.output} ({len(jpeg)} bytes, from {w}x{h}) via {spec.label} "
                 f"in {time.monotonic() - start:.2f}s")
        return OK
    progress("no frame: every capture source failed (run `rtsp2jpg probe URL` for details)")
    return FAILED


def _valid_url(url: str) -> str:
    try:
        return validate_rtsp_url(url)
    except UrlError as e:
        progress(f"rtsp2jpg: the URL {e}")
        raise SystemExit(USAGE) from None


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
            body = {"rtsp_url": _valid_url(args.rtsp_url), "prefer": args.prefer}
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
