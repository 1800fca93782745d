"""`rtsp2jpg probe URL` and `rtsp2jpg snapshot URL -o FILE`: talk to a camera directly, no service needed.

`probe` is the first thing to run when a camera "doesn't work": it asks the camera for its stream
description, then tries every capture source the service would, in the same order, and reports
time to first frame, size and measured frame rate. Passwords are redacted everywhere it prints.
Progress goes to stderr, results to stdout; exit codes are tools.py's.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from typing import Any

from rtsp2jpg import config
from rtsp2jpg.capture import sources
from rtsp2jpg.capture.frames import bgr_of, size_of
from rtsp2jpg.cli.codes import CV2_MISSING, FAILED, NO_CV2, OK, USAGE
from rtsp2jpg.urls import UrlError, redact, validate_rtsp_url


def progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


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
        from rtsp2jpg.capture import opencv as pipeline
    except ImportError:
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
        result["width"], result["height"] = (int(n) for n in size_of(image))
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
    url = valid_url(args.url)
    pipeline, capture = _pipeline(args)
    caps = pipeline.capabilities()
    shown = redact(url)
    progress(f"probing {shown} (OpenCV {caps.cv2_version}; "
             f"backends {', '.join(k for k, v in caps.backends.items() if v) or 'none'})")
    report: dict[str, Any] = {"url": shown, "stream": None, "sources": []}
    progress("reading the stream description ...")
    report["stream"] = stream_info(url, capture.open_timeout_sec)
    specs = sources.candidates(url, capture, caps, "default")
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
    url = valid_url(args.url)
    pipeline, capture = _pipeline(args)
    specs = sources.candidates(url, capture, pipeline.capabilities(), args.prefer)
    progress(f"connecting to {redact(url)} ...")
    start = time.monotonic()
    for spec in specs:
        try:
            cap = pipeline.open_source(spec)
        except Exception as e:
            progress(f"{spec.label}: {redact(str(e))}")
            continue
        try:
            image = bgr_of(cap.retrieve()) if cap.grab() else None
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


def valid_url(url: str) -> str:
    try:
        return validate_rtsp_url(url)
    except UrlError as e:
        progress(f"rtsp2jpg: the URL {e}")
        raise SystemExit(USAGE) from None
