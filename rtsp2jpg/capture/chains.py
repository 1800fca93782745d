"""GStreamer decoder chains as data, and the one pure function that turns them into pipelines.

Nothing here touches GStreamer or OpenCV: `gst_pipelines()` takes the codec, the set of elements
the machine has, the board and the capture config, and returns candidate pipelines best first.
Which one actually works is decided by trial (the camera keeps the first that yields a frame).

Cost (DESIGN 3 and 8): converting every frame to BGR inside the pipeline costs ~1.7x the decode
floor with OpenCV 4.6, because `appsink drop=true` throws most converted frames away. So every
chain hands raw YUV (I420 or NV12) to the appsink and the capture converts only retrieved frames.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import unquote

from rtsp2jpg.config import CaptureConfig
from rtsp2jpg.urls import split_credentials, validate_rtsp_url

CODECS = ("h264", "h265")
# depayloader and parser per codec
CODEC_ELEMENTS = {"h264": ("rtph264depay", "h264parse"), "h265": ("rtph265depay", "h265parse")}
# Keyframe-only decoding for decoders without a property for it: drop every non-keyframe access
# unit before the decoder (h264parse/h265parse flag them DELTA_UNIT). Works for any decoder.
DROP_DELTA = "identity drop-buffer-flags=delta-unit"


@dataclass(frozen=True)
class Chain:
    """One decoder element and what it needs around it.

    `convert` is the element that brings frames into system memory in `format` (Jetson's NVMM
    memory needs nvvidconv, a Pi's v4l2 buffers v4l2convert); empty when the decoder already
    outputs system memory. `keyframes` is the decoder property for keyframe-only decoding; empty
    means DROP_DELTA is put before the decoder instead. `boards` limits a chain to boards where it
    can work (empty = any); `not_boards` excludes boards known to lack the hardware (Pi 5 H.264).
    """

    element: str
    codec: str
    hardware: bool
    convert: str = ""
    format: str = "I420"
    decode_props: str = ""
    keyframes: str = ""
    boards: tuple[str, ...] = ()
    not_boards: tuple[str, ...] = ()

    @property
    def requires(self) -> tuple[str, ...]:
        return (self.element,) + ((self.convert.split()[0],) if self.convert else ())


# Preference order within a codec: Jetson, Raspberry Pi, NVIDIA desktop, VA (new), VA-API (old),
# generic V4L2 stateless, then software. Sources of the chains are cited in tests/unit/capture/test_decoders.py.
CHAINS: tuple[Chain, ...] = (
    # NVIDIA Jetson (L4T Accelerated GStreamer guide): nvv4l2decoder outputs NVMM memory; nvvidconv
    # copies it to system memory as I420. skip-frames=2 is "decode_key" (keyframes only).
    Chain("nvv4l2decoder", "h264", True, "nvvidconv", "I420", keyframes="skip-frames=2", boards=("jetson",)),
    Chain("nvv4l2decoder", "h265", True, "nvvidconv", "I420", keyframes="skip-frames=2", boards=("jetson",)),
    # Raspberry Pi 4 (and earlier): the stateful V4L2 H.264 decoder; v4l2convert leaves its buffers.
    # The Pi 5 has no H.264 decoder block at all.
    Chain("v4l2h264dec", "h264", True, "v4l2convert", "I420", not_boards=("rpi5",)),
    # NVIDIA desktop GPUs (nvcodec plugin): NV12 in system memory when downstream asks for it.
    Chain("nvh264dec", "h264", True, "", "NV12"),
    Chain("nvh265dec", "h265", True, "", "NV12"),
    # Intel/AMD: the va plugin (GStreamer >= 1.22), then the older gstreamer-vaapi.
    Chain("vah264dec", "h264", True, "", "NV12"),
    Chain("vah265dec", "h265", True, "", "NV12"),
    Chain("vaapih264dec", "h264", True, "", "NV12"),
    Chain("vaapih265dec", "h265", True, "", "NV12"),
    # Stateless V4L2 decoders (Pi 5 HEVC block, Rockchip, Allwinner).
    Chain("v4l2slh265dec", "h265", True, "", "NV12"),
    Chain("v4l2slh264dec", "h264", True, "", "NV12", not_boards=("rpi5",)),
    # Software (gst-libav). One thread per camera: frame threading adds a frame of delay per thread,
    # and cameras decode in parallel anyway (DESIGN 9). output-corrupt=false: a stream joined between
    # keyframes would otherwise yield grey concealment frames as pictures.
    Chain("avdec_h264", "h264", False, "", "I420", decode_props="max-threads=1 output-corrupt=false"),
    Chain("avdec_h265", "h265", False, "", "I420", decode_props="max-threads=1 output-corrupt=false"),
)

DECODER_ELEMENTS: tuple[str, ...] = tuple(dict.fromkeys(c.element for c in CHAINS))
# Every element a pipeline may need; the capabilities probe checks these.
ELEMENTS: tuple[str, ...] = tuple(dict.fromkeys(
    ("rtspsrc", "appsink", "identity")
    + tuple(e for pair in CODEC_ELEMENTS.values() for e in pair)
    + tuple(e for c in CHAINS for e in c.requires)))

ELEMENT_NAME = re.compile(r"^[a-z0-9_]+$")


@dataclass(frozen=True)
class GstPipeline:
    """A candidate: its label for /status, the launch string, the raw format the appsink gets."""

    label: str
    element: str
    codec: str
    hardware: bool
    description: str
    format: str
    keyframes_only: bool
    # The same chain cut in two for demand-adaptive decoding (gst_demand.py): the source up to the
    # depayloader's access units, and an appsrc named `src` feeding parser, decoder and appsink.
    # Empty for keyframe-only chains, which decode little anyway.
    receive: str = ""
    decode: str = ""


def quote(value: str) -> str:
    """A GStreamer parse-launch double-quoted string: backslash and quote escaped, nothing else special."""
    if any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in value):
        raise ValueError("control characters cannot be passed to a pipeline")
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def source_element(url: str, cfg: CaptureConfig) -> str:
    """`rtspsrc` for a validated URL; credentials go into user-id/user-pw (decoded, quoted),
    so they are not part of the location that GStreamer echoes in its messages."""
    validate_rtsp_url(url)  # the only way a URL reaches a pipeline
    bare, user, password = split_credentials(url)
    protocols = "tcp" if cfg.transport == "tcp" else "udp"
    # tcp-timeout bounds connecting to a silent host (default 20 s); in microseconds.
    timeout_us = int(cfg.open_timeout_sec * 1_000_000)
    parts = [f"rtspsrc location={quote(bare)} latency=0 protocols={protocols} tcp-timeout={timeout_us}"]
    if not cfg.tls_verify and bare.lower().startswith("rtsps:"):
        # Cameras ship self-signed certificates: no validation flag set, any certificate is accepted.
        parts.append("tls-validation-flags=0")
    if user:
        parts.append(f"user-id={quote(unquote(user))}")
    if password is not None:
        parts.append(f"user-pw={quote(unquote(password))}")
    return " ".join(parts)


def chain_allowed(chain: Chain, board: str) -> bool:
    if chain.boards and board not in chain.boards:
        return False
    return board not in chain.not_boards


def wanted_chains(decoder: str, codecs: Iterable[str], elements: frozenset[str], board: str) -> list[Chain]:
    """The chains `decoder` (auto|gstreamer|software|<element>) allows, present on this machine,
    in preference order: per codec, hardware before software."""
    out = []
    for codec in codecs:
        depay, parse = CODEC_ELEMENTS[codec]
        if not {"rtspsrc", "appsink", depay, parse} <= elements:
            continue
        for chain in CHAINS:
            if chain.codec != codec or not set(chain.requires) <= elements or not chain_allowed(chain, board):
                continue
            if decoder == "software" and chain.hardware:
                continue
            if decoder not in ("auto", "gstreamer", "software") and chain.element != decoder:
                continue
            out.append(chain)
    return out


def pipeline_for(chain: Chain, url: str, cfg: CaptureConfig, keyframes_only: bool = False) -> GstPipeline:
    """The launch string of one chain: source, depay, parse, [keyframe filter], decoder, [convert],
    raw YUV caps, and an appsink that keeps only the newest frame."""
    depay, parse = CODEC_ELEMENTS[chain.codec]
    decode = " ".join(p for p in (chain.element, chain.decode_props) if p)
    steps = [source_element(url, cfg), depay, parse]
    if keyframes_only:
        if chain.keyframes:
            decode += " " + chain.keyframes
        else:
            steps.append(DROP_DELTA)
    tail = [decode] + ([chain.convert] if chain.convert else [])
    tail += [f"video/x-raw,format={chain.format}", "appsink drop=true max-buffers=1 sync=false"]
    receive = decode_half = ""
    if not keyframes_only:
        # The parser stays in the receive half: its keyframe flags are the ones to trust
        # (rtph265depay flags some P-frames as keyframes) and with config-interval=-1 it repeats the
        # parameter sets before every keyframe, so a burst after an idle spell starts clean.
        # max-buffers bounds what waits between two pulls (the camera pulls at least every 0.25 s);
        # when full, rtspsrc waits rather than anything being dropped.
        receive = " ! ".join([steps[0], depay, f"{parse} config-interval=-1",
                              f"video/x-{chain.codec},stream-format=byte-stream,alignment=au",
                              "appsink name=au sync=false max-buffers=500"])
        # A parser here too: our own RTSP client's units (receivers.py) are bare Annex B access units,
        # and decoders want the caps a parser finds (size, profile, frame rate).
        decode_half = " ! ".join(["appsrc name=src is-live=true format=time", parse] + tail)
    return GstPipeline(label=f"gstreamer/{chain.element}", element=chain.element, codec=chain.codec,
                       hardware=chain.hardware, description=" ! ".join(steps + tail), format=chain.format,
                       keyframes_only=keyframes_only, receive=receive, decode=decode_half)


# With a read throttle at least this long, a camera gets keyframes only: IP cameras send one every
# 1-4 s, so a consumer that takes a frame this rarely sees frames no older than it accepts anyway.
KEYFRAME_THROTTLE_SEC = 4.0


def keyframes_wanted(cfg: CaptureConfig) -> bool:
    return cfg.keyframes_only or cfg.read_throttle_sec >= KEYFRAME_THROTTLE_SEC


def gst_pipelines(url: str, cfg: CaptureConfig, elements: frozenset[str], board: str,
                  codec: str | None = None) -> list[GstPipeline]:
    """Candidate GStreamer pipelines for `url`, best first (pure: no I/O, no GStreamer).

    `codec` (or `cfg.codec` when pinned) narrows to one codec; otherwise both are listed, H.264
    first, and the stream's SDP or the trial decides. An unusable URL yields no candidates.
    """
    if cfg.decoder == "ffmpeg":
        return []
    if cfg.decoder not in ("auto", "gstreamer", "software") and not ELEMENT_NAME.match(cfg.decoder):
        return []
    chosen = codec or (cfg.codec if cfg.codec in CODECS else None)
    codecs = (chosen,) if chosen else CODECS
    keyframes = keyframes_wanted(cfg)
    try:
        return [pipeline_for(c, url, cfg, keyframes) for c in wanted_chains(cfg.decoder, codecs, elements, board)]
    except ValueError:  # invalid URL or credentials that cannot be quoted: FFmpeg may still take it
        return []
