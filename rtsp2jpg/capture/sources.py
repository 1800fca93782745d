"""Which sources a camera tries, best first: pure policy over data tables, no cv2 (unit-tested without it).

`candidates()` returns SourceSpecs (GStreamer chains from chains.py, then OpenCV's FFmpeg backend);
opencv.py opens them. `PREFERENCES` is the one copy of the `prefer` vocabulary.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from rtsp2jpg.capture import chains
from rtsp2jpg.config import CaptureConfig


class SourceError(RuntimeError):
    """A source failed to open or to deliver a first frame; the message is free of credentials."""


@dataclass(frozen=True)
class SourceSpec:
    """One way to open a camera: `label` is what /status shows (`ffmpeg`, `gstreamer/avdec_h264`)."""

    label: str
    backend: str  # "ffmpeg" or "gstreamer"
    target: str  # the URL (ffmpeg) or the pipeline description (gstreamer)
    # FFmpeg open parameters by name (OPEN_TIMEOUT_MSEC, ...): opencv.py maps them to cv2.CAP_PROP_*
    params: tuple[tuple[str, int], ...] = ()
    pixel_format: str = "BGR"  # what the capture returns: BGR, or I420/NV12 converted on retrieve
    codec: str = ""  # h264/h265 when the source only works for that codec; "" = any
    # > 0: the source keeps only its newest frame by itself (appsink drop=true max-buffers=1), so the
    # camera grabs when a reader wants a frame or every poll_sec, not every frame (see Camera._pause).
    poll_sec: float = 0.0
    hardware: bool = False  # a hardware decoder: worth an RTSP DESCRIBE to skip the other codec's
    open_timeout_sec: float = 10.0  # GStreamer: longest wait for the first frame (OpenCV 4.6 has none)
    read_timeout_sec: float = 10.0  # GStreamer driven directly: longest wait for the next frame
    # Demand-adaptive decoding (GStreamer through PyGObject, `capture.decode: adaptive`): the receive
    # and decode halves of `target` (chains.GstPipeline); empty = decode every frame in one pipeline.
    receive: str = ""
    decode: str = ""
    # The camera URL where our own RTSP client receives instead of `receive` (capture.rtsp_client: own,
    # RTSP over TCP); it falls back to `receive` for a camera it cannot take. `tls_verify` for rtsps://.
    rtsp_url: str = ""
    tls_verify: bool = True
    # The codec libavcodec decodes directly (lavc.py) instead of `decode`'s GStreamer decoder; "" = GStreamer.
    lavc: str = ""

    def __repr__(self) -> str:  # keep passwords out of reprs that end up in tracebacks
        return f"SourceSpec({self.label!r})"


@dataclass(frozen=True)
class Capabilities:
    """What the OpenCV in use can do; reported by /health and logged once at start."""

    cv2_version: str
    cv2_file: str
    backends: dict[str, bool]
    decoders: dict[str, bool] = field(default_factory=dict)
    board: str = "generic"
    board_model: str = ""
    elements: frozenset[str] = frozenset()  # every pipeline element found (decoders.ELEMENTS)
    # GStreamer is driven through PyGObject (gst.py), not OpenCV's backend: needed for adaptive decoding.
    direct_gstreamer: bool = False
    lavc: bool = False  # libavcodec can be driven directly (lavc.py): adaptive decoding's software path

    @classmethod
    def nothing(cls) -> Capabilities:
        """No backend at all: for services built without capture (tests, tools)."""
        return cls(cv2_version="", cv2_file="", backends={"ffmpeg": False, "gstreamer": False})


def parse_build_info(text: str) -> dict[str, bool]:
    """Backends from `cv2.getBuildInformation()`: a line `GStreamer: NO` means no."""
    found = {"ffmpeg": False, "gstreamer": False}
    for line in text.splitlines():
        name, sep, value = line.strip().partition(":")
        if not sep:
            continue
        key = name.strip().lower()
        if key in found:
            found[key] = value.strip().upper().startswith("YES")
    return found


def _ffmpeg_source(url: str, cfg: CaptureConfig, caps: Capabilities) -> list[SourceSpec]:
    if not caps.backends.get("ffmpeg"):
        return []
    if cfg.tls_verify and tls_url(url):
        # FFmpeg's RTSP demuxer never checks the server's certificate (its tls_verify option is not
        # passed down to the TLS connection: with tls_verify 1, FFmpeg 5.1 and OpenCV 4.6 still
        # opened the self-signed test camera), so it would accept any camera, or any impostor.
        return []
    params = (("OPEN_TIMEOUT_MSEC", int(cfg.open_timeout_sec * 1000)),
              ("READ_TIMEOUT_MSEC", int(cfg.stall_timeout_sec * 1000)),
              # One decoder thread per camera: same CPU, a frame fresher per thread saved, ~5 MB less
              # (DESIGN 9). Skipped by opencv.py where this cv2 has no CAP_PROP_N_THREADS.
              ("N_THREADS", 1))
    return [SourceSpec("ffmpeg", "ffmpeg", url, params)]


def tls_url(url: str) -> bool:
    """True for rtsps:// (RTSP over TLS)."""
    return url[:6].lower() == "rtsps:"


# How often a camera on a GStreamer source checks the stream is alive when nobody wants a frame.
# Keyframe-only sources are not polled: their frames are rare, and counting them gives the real fps.
GST_POLL_SEC = 0.25


def _gstreamer_sources(url: str, cfg: CaptureConfig, caps: Capabilities) -> list[SourceSpec]:
    if not caps.backends.get("gstreamer"):
        return []
    adaptive = cfg.decode == "adaptive" and caps.direct_gstreamer
    own = adaptive and own_client(url, cfg)
    specs = []
    for p in chains.gst_pipelines(url, cfg, caps.elements, caps.board):
        lavc = p.codec if adaptive and p.decode and lavc_decodes(p, cfg, caps) else ""
        specs.append(SourceSpec(
            f"libavcodec/{p.codec}" if lavc else p.label, "gstreamer", p.description, pixel_format=p.format,
            codec=p.codec, poll_sec=0.0 if p.keyframes_only else GST_POLL_SEC, open_timeout_sec=cfg.open_timeout_sec,
            read_timeout_sec=cfg.stall_timeout_sec, hardware=p.hardware,
            receive=p.receive if adaptive else "", decode=p.decode if adaptive else "",
            rtsp_url=url if own and p.receive else "", tls_verify=cfg.tls_verify, lavc=lavc))
    return specs


def lavc_decodes(p: chains.GstPipeline, cfg: CaptureConfig, caps: Capabilities) -> bool:
    """Whether libavcodec driven directly takes the place of a software chain's avdec element: with
    `decoder: auto` or `software` (naming `gstreamer` or the element keeps GStreamer's)."""
    return caps.lavc and not p.hardware and cfg.decoder in ("auto", "software")


def own_client(url: str, cfg: CaptureConfig) -> bool:
    """Whether our RTSP client (capture/rtsp/session.py) may receive `url`: RTSP over TCP, TLS or not."""
    return cfg.rtsp_client == "own" and cfg.transport == "tcp" and url.lower().startswith(("rtsp://", "rtsps://"))


# backend name -> builder(url, capture config, capabilities) -> sources; `candidates` orders them.
SOURCE_BUILDERS: dict[str, Callable[[str, CaptureConfig, Capabilities], list[SourceSpec]]] = {
    "ffmpeg": _ffmpeg_source,
    "gstreamer": _gstreamer_sources,
}
# The `prefer` vocabulary of /register, the registry and `rtsp2jpg snapshot --prefer`: one copy.
PREFERENCES = ("default", "ffmpeg", "gstreamer")
ORDER = {"default": ("gstreamer", "ffmpeg"), "gstreamer": ("gstreamer", "ffmpeg"), "ffmpeg": ("ffmpeg", "gstreamer")}


def candidates(url: str, cfg: CaptureConfig, caps: Capabilities, prefer: str = "default") -> list[SourceSpec]:
    """The sources to try for `url`, best first.

    `decoder: ffmpeg` pins the FFmpeg backend; any other decoder setting narrows the GStreamer
    candidates (gstreamer: all, software: avdec_*, <element>: that one) and keeps FFmpeg as the
    last resort, so a pinned element that is missing or fails still leaves the camera working
    (the status then says `ffmpeg`). `prefer` (from /register) puts one backend first.
    """
    if cfg.decoder == "ffmpeg":
        order: Sequence[str] = ("ffmpeg",)
    elif cfg.decoder == "auto" and prefer == "default":
        return _auto_order(url, cfg, caps)
    else:
        order = ORDER.get(prefer, ORDER["default"])
    out: list[SourceSpec] = []
    for backend in order:
        builder = SOURCE_BUILDERS.get(backend)
        if builder:
            out += builder(url, cfg, caps)
    return out


def _auto_order(url: str, cfg: CaptureConfig, caps: Capabilities) -> list[SourceSpec]:
    """`decoder: auto`: hardware GStreamer, then software GStreamer where it decodes adaptively
    (PyGObject), then OpenCV's FFmpeg backend.

    FFmpeg through OpenCV decodes every frame whether anyone looks or not; adaptive decoding costs
    the demux only while nobody reads (bench/cpu_decoders.py). Without PyGObject, software
    GStreamer (OpenCV's backend, 1.16x the floor against FFmpeg's 1.03x) goes after FFmpeg unless
    keyframe-only decoding is wanted, which FFmpeg cannot do.
    """
    gst = _gstreamer_sources(url, cfg, caps)
    hardware = [s for s in gst if s.hardware]
    software = [s for s in gst if not s.hardware]
    ffmpeg = _ffmpeg_source(url, cfg, caps)
    if chains.keyframes_wanted(cfg) or any(s.decode for s in software):
        return hardware + software + ffmpeg
    return hardware + ffmpeg + software
