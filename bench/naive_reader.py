"""The reader rtsp2jpg replaces, as a subprocess for the CPU benchmark.

`read`: `cap.read()` + `cv2.imencode` every frame, as the original rtsp2jpg does.
`grab`: a bare `cap.grab()` loop (OpenCV's own floor: demux + decode, no conversion).
Writes its frame count to `count_file` every few frames (the bench starts measuring at the first
and divides CPU by frames, since a loaded machine's source may deliver fewer than nominal).
Usage: python -m bench.naive_reader read|grab URL COUNT_FILE
"""

from __future__ import annotations

import os
import sys
from pathlib import Path


def main(argv: list[str]) -> int:
    mode, url, count_file = argv
    os.environ.setdefault("OPENCV_FFMPEG_CAPTURE_OPTIONS", "rtsp_transport;tcp")
    import cv2

    cap = cv2.VideoCapture(url, cv2.CAP_FFMPEG)
    if not cap.isOpened():
        print(f"cannot open {url}", file=sys.stderr)
        return 1
    frames = 0
    while True:
        if mode == "grab":
            if not cap.grab():
                return 1
        else:
            ok, image = cap.read()
            if not ok:
                return 1
            cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 85])
        frames += 1
        if frames % 5 == 1:
            Path(count_file).write_text(str(frames))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
