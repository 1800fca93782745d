"""OpenCV: the only module that imports cv2 (captures, YUV planes, encodings).

sources.py decides which sources a camera tries (pure); `open_source()` turns one into a `Capture`
with timeouts set, so no call blocks for ever. GStreamer sources hand raw
YUV to the appsink; `Capture.retrieve()` takes only the frames someone wants, and keeps them YUV
(YuvPicture): BGR is made only where pixels are needed as BGR (DESIGN 3).
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from typing import Any

import cv2
import numpy as np

from rtsp2jpg.capture import board, direct_gst, gst, lavc, turbo
from rtsp2jpg.capture import chains as decoders
from rtsp2jpg.capture.frames import fit_size
from rtsp2jpg.capture.sources import Capabilities, SourceError, SourceSpec, parse_build_info
from rtsp2jpg.urls import UrlError, redact, validate_rtsp_url

log = logging.getLogger(__name__)


# FFmpeg demuxer options are process-wide in OpenCV (an environment variable read at open time).
# FFmpeg probes the stream before open() returns: by default ~1.1 s of it, so the first frame was
# 1.2 s old; `fflags;nobuffer` dropped those probed packets, keyframe included, so the first frame
# waited for the next keyframe instead (2.15 s at a 2 s GOP). A probe bounded to 32 KB or 0.1 s
# (the SDP already gives the codec parameters; a keyframe and a few frames fit) opens in ~0.12 s
# with the first keyframe kept: first frame ~0.1 s old (measured: bench/first_snapshot.py).
# max_delay bounds the wait for reordered RTP packets: only UDP reorders, and over TCP it only
# delayed the first frame (+0.2 s), so it is set for UDP alone.
FFMPEG_OPTIONS = "rtsp_transport;{transport}|probesize;32768|analyzeduration;100000"
FFMPEG_UDP_OPTIONS = "|max_delay;500000"
# GStreamer sources are driven through PyGObject where it is installed (see gst.py for why);
# OpenCV's own GStreamer backend is the fallback.
DIRECT_GSTREAMER = gst.available()


# YUV layouts an appsink may hand over, and the conversion a BGR copy of each takes.
_TO_BGR = {"I420": cv2.COLOR_YUV2BGR_I420, "NV12": cv2.COLOR_YUV2BGR_NV12}
YUV_FORMATS = frozenset(_TO_BGR)


class YuvPicture:
    """A retrieved picture in the decoder's layout: (height * 3/2, width) of I420 or NV12, limited
    range. Kept as it is in the slot (1.4 MB at 720p instead of 2.8 MB of BGR); encode_jpeg makes
    plain JPEGs from it without BGR (turbo.py), and bgr() converts for everything else."""

    __slots__ = ("data", "format", "width", "height")

    def __init__(self, data: np.ndarray, fmt: str) -> None:
        self.data = data
        self.format = fmt
        self.height, self.width = data.shape[0] * 2 // 3, data.shape[1]

    def bgr(self) -> np.ndarray:
        return cv2.cvtColor(self.data, _TO_BGR[self.format])

    def grey(self) -> np.ndarray:
        return self.data[: self.height]  # the Y plane (both layouts start with it)


def capabilities(finder: Callable[[str], bool] | None = None, model_path: str = board.DEVICE_TREE_MODEL,
                 tegra_path: str = board.TEGRA_RELEASE) -> Capabilities:
    """Backends (FFmpeg through cv2; GStreamer through cv2 or PyGObject), the GStreamer elements present, the board."""
    backends = parse_build_info(cv2.getBuildInformation())
    # PyGObject drives GStreamer without cv2's help, so a pip wheel of OpenCV (no GStreamer) can still
    # use the board's decoders when the distribution's GStreamer and python3-gi are installed.
    backends["gstreamer"] = backends["gstreamer"] or DIRECT_GSTREAMER
    elements = board.available_elements(decoders.ELEMENTS, finder) if backends["gstreamer"] else frozenset()
    found = board.detect_board(model_path, tegra_path)
    return Capabilities(cv2_version=cv2.__version__, cv2_file=getattr(cv2, "__file__", "?"), backends=backends,
                        decoders={name: name in elements for name in decoders.DECODER_ELEMENTS},
                        board=found.kind, board_model=found.model, elements=elements,
                        direct_gstreamer=DIRECT_GSTREAMER, lavc=DIRECT_GSTREAMER and lavc.available())


def configure_ffmpeg(transport: str) -> None:
    """Set FFmpeg's demuxer options once, before any capture opens (they are read per open)."""
    options = FFMPEG_OPTIONS.format(transport=transport) + (FFMPEG_UDP_OPTIONS if transport == "udp" else "")
    os.environ["OPENCV_FFMPEG_CAPTURE_OPTIONS"] = options


class Capture:
    """An opened cv2.VideoCapture: grab every frame, retrieve only the ones someone wants."""

    def __init__(self, spec: SourceSpec, cap: Any, primed: bool = False) -> None:
        self.spec = spec
        self._cap = cap
        self._yuv = spec.pixel_format in YUV_FORMATS
        self._primed = primed  # a first frame was grabbed while opening: the next grab() is free
        self.behind_sec = 0.0  # FFmpeg gives the newest picture only

    def grab(self) -> bool:
        if self._primed:
            self._primed = False
            return True
        return bool(self._cap.grab())

    def retrieve(self, glance: bool = False) -> np.ndarray | YuvPicture | None:
        """The grabbed frame: BGR, or raw YUV (height * 3/2 rows of one channel) as a YuvPicture."""
        ok, image = self._cap.retrieve()
        if not ok or image is None or not image.size:
            return None
        if self._yuv:
            if image.ndim != 2 or image.shape[0] % 3:
                return None
            return YuvPicture(image, self.spec.pixel_format)
        return image

    def nominal_fps(self) -> float:
        """The stream's frame rate as the source reports it (GStreamer: from the caps), 0 if unknown."""
        try:
            fps = float(self._cap.get(cv2.CAP_PROP_FPS))
        except cv2.error:
            return 0.0
        return round(fps, 2) if 0 < fps < 1000 else 0.0

    def release(self) -> None:
        self._cap.release()


# Pipeline descriptions whose open was abandoned and is still blocked in OpenCV (see _open_gstreamer).
_BLOCKED: dict[str, int] = {}
_BLOCKED_LOCK = threading.Lock()


def _open_through_opencv(spec: SourceSpec) -> Capture:
    """Open a GStreamer pipeline with OpenCV's backend (where PyGObject is missing), waiting for its
    first frame at most `spec.open_timeout_sec`.

    OpenCV 4.6's GStreamer backend has no open or read timeout: a server that accepts PLAY and
    sends nothing keeps the first grab() waiting for ever. So the open and the first grab run in a
    helper thread; past the timeout the caller moves on and the helper releases the capture if
    its grab ever returns (if it never does, that thread and pipeline stay behind: logged).
    rtspsrc has no total deadline (its tcp-timeout is per read): a camera dripping a byte every
    0.3 s held an open for as long as it dripped (measured: > 40 s with a 3 s open timeout), so
    while one open of a pipeline is still blocked, no second one is started: one left-behind
    thread per source at most, not one per reconnect.
    """
    with _BLOCKED_LOCK:
        if _BLOCKED.get(spec.target):
            raise SourceError(f"{spec.label}: an earlier open of this stream is still blocked; not starting another")
    lock = threading.Lock()
    done = threading.Event()
    box: dict[str, Any] = {}

    def work() -> None:
        cap = None
        ok = False
        try:
            cap = cv2.VideoCapture(spec.target, cv2.CAP_GSTREAMER)
            ok = bool(cap.isOpened() and cap.grab())
        except cv2.error as e:
            box["error"] = redact(str(e)).strip()
        with lock:
            box.update(cap=cap, ok=ok)
            abandoned = box.get("abandoned", False)
            done.set()
        if abandoned:
            with _BLOCKED_LOCK:
                _BLOCKED[spec.target] -= 1
                if not _BLOCKED[spec.target]:
                    del _BLOCKED[spec.target]
            if cap is not None:
                cap.release()
            log.info("%s: an abandoned open finally returned; released", spec.label)

    threading.Thread(target=work, name=f"open-{spec.label}", daemon=True).start()
    done.wait(spec.open_timeout_sec)
    with lock:
        if not done.is_set():
            box["abandoned"] = True
            with _BLOCKED_LOCK:
                _BLOCKED[spec.target] = _BLOCKED.get(spec.target, 0) + 1
            log.warning("%s: no frame within %.0fs; the blocked open is left to finish in the background",
                        spec.label, spec.open_timeout_sec)
            raise SourceError(f"{spec.label}: no frame within the open timeout")
    cap = box.get("cap")
    if box.get("error"):
        raise SourceError(f"{spec.label}: {box['error']}")
    if not box.get("ok"):
        if cap is not None:
            cap.release()
        raise SourceError(f"{spec.label}: could not open the stream (unreachable, refused, no frame)")
    return Capture(spec, cap, primed=True)


def open_source(spec: SourceSpec) -> Capture:
    """Open `spec` (blocking at most its open timeout); raise SourceError with a redacted reason."""
    if spec.backend == "gstreamer":
        return direct_gst.open_direct(spec, YuvPicture) if DIRECT_GSTREAMER else _open_through_opencv(spec)
    try:  # FFmpeg opens anything it has a protocol for (file:, concat:, http:): only rtsp(s) gets here
        validate_rtsp_url(spec.target)
    except UrlError as e:
        raise SourceError(f"{spec.label}: refusing to open: the URL {e}") from None
    api = cv2.CAP_FFMPEG
    params = [x for name, value in spec.params if hasattr(cv2, "CAP_PROP_" + name)
              for x in (getattr(cv2, "CAP_PROP_" + name), value)]
    try:
        cap = cv2.VideoCapture(spec.target, api, params)
    except cv2.error as e:
        raise SourceError(f"{spec.label}: {redact(str(e)).strip()}") from None
    if not cap.isOpened():
        cap.release()
        raise SourceError(f"{spec.label}: could not open the stream (unreachable, refused or timed out)")
    return Capture(spec, cap)


# Encoder parameters per format: WebP's quality means the same 1-100 as JPEG's; PNG is lossless at
# level 1 (measured, 720p demo frame on a loaded 2-core box: 54 ms and 1.41 MB vs 82 ms and 1.37 MB
# at the default 3; JPEG q85 took 2.6 ms, WebP q85 85 ms).
_FORMATS = {"jpeg": (".jpg", cv2.IMWRITE_JPEG_QUALITY), "webp": (".webp", cv2.IMWRITE_WEBP_QUALITY),
            "png": (".png", None)}


# Video's limited range (Y 16-235, U/V 16-240) to JPEG's full range 0-255, as cvtColor's I420 to BGR does.
_Y_FULL = np.clip(np.round((np.arange(256) - 16) * 255 / 219), 0, 255).astype(np.uint8)
_C_FULL = np.clip(np.round((np.arange(256) - 128) * 255 / 224 + 128), 0, 255).astype(np.uint8)


def _planes_jpeg(picture: YuvPicture, quality: int, size: tuple[int, int]) -> bytes | None:
    """A JPEG straight from I420 planes (2.4 ms at 720p instead of 4.7 ms through BGR), fitted to `size`;
    None where this path does not apply (NV12, an odd size, no libturbojpeg)."""
    w, h = size
    if picture.format != "I420" or w % 2 or h % 2 or not turbo.available():
        return None
    pw, ph = picture.width, picture.height
    y, chroma = picture.data[:ph], picture.data[ph:]  # U then V, each (ph/2, pw/2) packed
    if (w, h) != (pw, ph):
        y = cv2.resize(y, (w, h), interpolation=cv2.INTER_AREA)
        u, v = chroma.reshape(2, ph // 2, pw // 2)
        chroma = np.concatenate([cv2.resize(c, (w // 2, h // 2), interpolation=cv2.INTER_AREA) for c in (u, v)])
    out = np.empty((h * 3 // 2, w), np.uint8)
    cv2.LUT(y, _Y_FULL, dst=out[:h])
    cv2.LUT(chroma.reshape(-1, w), _C_FULL, dst=out[h:])
    return turbo.encode_i420(out, w, h, quality)


def encode_jpeg(image: np.ndarray | YuvPicture, quality: int, width: int = 0, height: int = 0, *,
                fmt: str = "jpeg", stamp: str = "") -> bytes:
    """`image` encoded (JPEG unless `fmt` says webp or png), scaled to fit width/height (0 = keep)
    without changing the aspect ratio, with `stamp` drawn into its bottom-left corner if given."""
    if isinstance(image, YuvPicture):
        size = fit_size(image.width, image.height, width, height)
        data = _planes_jpeg(image, quality, size) if fmt == "jpeg" and not stamp else None
        if data is not None:
            return data
        image = image.bgr()
    h, w = image.shape[:2]
    size = fit_size(w, h, width, height)  # the same rule Frame.encode keys its cache by
    if size != (w, h):
        image = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
    elif stamp:
        image = image.copy()  # the frame's pixels are shared by every encode: draw on a copy
    if stamp:
        image = draw_stamp(image, stamp)
    ext, option = _FORMATS[fmt]
    params = [option, int(quality)] if option is not None else [cv2.IMWRITE_PNG_COMPRESSION, 1]
    ok, buf = cv2.imencode(ext, image, params)
    if not ok:  # pragma: no cover - imencode fails only on invalid images, which retrieve() filters
        raise ValueError(f"{fmt} encoding failed")
    return buf.tobytes()


def draw_stamp(image: np.ndarray, text: str) -> np.ndarray:
    """Draw `text` (ASCII) white on a dark band at the bottom left, sized to the picture's width."""
    h, w = image.shape[:2]
    scale = max(0.35, min(2.0, w / 1400))
    thickness = max(1, round(scale * 1.5))
    (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, thickness)
    pad = max(2, th // 3)
    top = max(0, h - th - base - 2 * pad)
    image[top:h, 0:min(w, tw + 2 * pad)] //= 4  # darken, so the text reads on any scene
    cv2.putText(image, text, (pad, h - base - pad), cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255),
                thickness, cv2.LINE_AA)
    return image
