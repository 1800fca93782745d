"""One capture loop as the service runs it, for bench/cpu_decoders.py: grab every frame, retrieve
(convert to BGR) one per `--every` seconds, and report snapshot ages from the demo's time code.

Usage: python bench/decoder_reader.py MODE URL SECONDS [--every 1.0] [--poll S]
MODE: ffmpeg | gst-adaptive (the default: demand-adaptive decoding, capture/gst_demand.py, received by our
own RTSP client) | gst-adaptive-rtspsrc (the same, received by rtspsrc)
| gst-bgr (videoconvert to BGR in the pipeline, the old way) | gst-yuv (I420 to the
appsink, converted on retrieve) | gst-key (gst-yuv, keyframes only) | gst-yuv-threads (libav's
default threading); GStreamer modes run through PyGObject (capture/gst.py) as the service does, or
through OpenCV's GStreamer backend with the suffix `-opencv` (gst-yuv-opencv, ...).
Like the service, a GStreamer source is grabbed every `--poll` seconds (default:
the source's poll_sec) and when a retrieve is due, not every frame; `--poll 0` grabs every frame.
Prints one JSON line: frames, retrieved, ages (seconds), waits (seconds from a retrieve being due to
its picture: what a request waits for, burst decoding included).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time

from rtsp2jpg.capture import opencv as pipeline
from rtsp2jpg.capture import sources
from rtsp2jpg.capture.frames import grey_of
from rtsp2jpg.config import CaptureConfig
from rtsp2jpg.demo.timecode import decode_stamp


def spec_for(mode: str, url: str, caps: sources.Capabilities) -> sources.SourceSpec:
    if mode == "ffmpeg":
        pipeline.configure_ffmpeg("tcp")
        return sources.candidates(url, CaptureConfig(decoder="ffmpeg"), caps)[0]
    mode = mode.removesuffix("-opencv")
    cfg = CaptureConfig(decoder="software", codec="h264", keyframes_only=mode == "gst-key",
                        decode="adaptive" if mode.startswith("gst-adaptive") else "always",
                        rtsp_client="rtspsrc" if mode == "gst-adaptive-rtspsrc" else "own")
    spec = sources.candidates(url, cfg, caps)[0]
    if mode == "gst-bgr":
        target = spec.target.replace("video/x-raw,format=I420", "videoconvert ! video/x-raw,format=BGR")
        return dataclasses.replace(spec, target=target, pixel_format="BGR")
    if mode == "gst-yuv-threads":
        return dataclasses.replace(spec, target=spec.target.replace(" max-threads=1", ""))
    return spec


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("mode")
    ap.add_argument("url")
    ap.add_argument("seconds", type=float)
    ap.add_argument("--every", type=float, default=1.0)
    ap.add_argument("--poll", type=float, default=-1.0)
    args = ap.parse_args()
    caps = pipeline.capabilities()
    spec = spec_for(args.mode, args.url, caps)
    poll = spec.poll_sec if args.poll < 0 else args.poll
    cap = pipeline._open_through_opencv(spec) if args.mode.endswith("-opencv") else pipeline.open_source(spec)
    frames = retrieved = 0
    ages: list[float] = []
    waits: list[float] = []
    end = time.monotonic() + args.seconds
    next_retrieve = 0.0
    while time.monotonic() < end:
        if poll:
            time.sleep(max(0.0, min(poll, next_retrieve - time.monotonic())))
        if not cap.grab():
            print("grab failed", file=sys.stderr)
            break
        frames += 1
        now = time.monotonic()
        if now >= next_retrieve:
            image = cap.retrieve()
            if retrieved:  # the first is the open's picture
                waits.append(round(time.monotonic() - next_retrieve, 4))
            retrieved += 1
            next_retrieve = now + args.every
            stamp = decode_stamp(grey_of(image)) if image is not None else None  # as the service: no BGR
            if stamp is not None:
                ages.append(round(time.time() - stamp, 4))
    cap.release()
    print(json.dumps({"frames": frames, "retrieved": retrieved, "ages": ages, "waits": waits}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
