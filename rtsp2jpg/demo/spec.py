"""The demo server's stream grammar and the encoder pipeline of each stream (pure: no GStreamer here).

``NAME=WIDTHxHEIGHT@FPS[:h264|h265][:MODE][,KEY=VALUE...]``; the options make a stream look like a
real camera's rather than a test pattern's (see ``StreamSpec``). Split out of server.py, which
runs the streams.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from rtsp2jpg.demo.timecode import BLOCK, CODE_HEIGHT, CODE_WIDTH, CODE_X, CODE_Y

_SPEC_RE = re.compile(r"^(?P<name>[\w.-]+)=(?P<w>\d+)x(?P<h>\d+)@(?P<fps>\d+)(?::(?P<codec>h264|h265))?"
                      r"(?::(?P<mode>live|static|black|frozen))?(?P<options>(?:,[a-z_]+=[\w.]+)*)$")
_SIZE_RE = re.compile(r"^(\d+)x(\d+)$")
GRAMMAR = "NAME=WIDTHxHEIGHT@FPS[:h264|h265][:MODE][,gop=S][,bframes=N][,bitrate=KBPS][,audio=aac|pcma]" \
          "[,resize=WxH][,resize_sec=S]"
# Audio tracks as cameras send them: AAC (most current models) or G.711 A-law (older ones, intercoms).
# Pink noise at a low level: a microphone in a quiet room, cheap to encode at 16 kHz mono.
# (sample rate, encoder and payloader): G.711 is 8 kHz by definition.
AUDIO = {
    "aac": (16000, "avenc_aac bitrate=32000 ! rtpmp4gpay"),
    "pcma": (8000, "alawenc ! rtppcmapay"),
}
_AUDIO_SRC = "audiotestsrc name=asrc is-live=true wave=pink-noise volume=0.05 ! audio/x-raw,rate={rate},channels=1"


def _int(text: str, key: str, low: int, high: int) -> int:
    if not text.isdigit() or not low <= int(text) <= high:
        raise ValueError(f"{key} must be a whole number {low}..{high}, got {text!r}")
    return int(text)


@dataclass(frozen=True)
class StreamSpec:
    """One mount, served at ``rtsp://HOST:PORT/NAME``.

    MODE (timecode.MODES): live (default), static (still scene, noise and clock tick), black, frozen.
    Options, comma-separated after the rest:

    - ``gop=S``: a keyframe every S seconds (default 2; cameras use 1-4, some up to 10).
    - ``bframes=N``: N B-frames between references (default 0). H.264 then goes High profile
      without tune=zerolatency, H.265 gets ``bframes=N`` through x265's option string: pictures
      arrive in decode order, not display order, as from cameras with B-frames ("smart codec").
    - ``bitrate=KBPS``: the encoder's target (default ~ what a camera spends, see ``bitrate_kbps``).
    - ``audio=aac|pcma``: a second media stream, 16 kHz mono, as cameras with a microphone send
      (16 kHz mono AAC, or 8 kHz G.711 A-law).
    - ``resize=WxH``: alternate between the stream's size and this one every ``resize_sec``
      (default 5) in the same RTSP session (new parameter sets in band), as when a camera's
      resolution is changed in its settings without a restart.
    """

    name: str
    width: int
    height: int
    fps: int
    codec: str = "h264"
    mode: str = "live"
    gop_sec: int = 2
    bframes: int = 0
    bitrate: int = 0  # kbit/s; 0 = bitrate_kbps's default
    audio: str = ""
    resize: tuple[int, int] | None = None
    resize_sec: int = 5

    @classmethod
    def parse(cls, text: str) -> StreamSpec:
        """Parse and validate a ``--stream`` value; ValueError says what is wrong."""
        m = _SPEC_RE.match(text.strip())
        if not m:
            raise ValueError(f"bad stream {text!r}: expected {GRAMMAR}")
        try:
            options = _options(m["options"])
        except ValueError as e:
            raise ValueError(f"bad stream {text!r}: {e}") from None
        spec = cls(m["name"], int(m["w"]), int(m["h"]), int(m["fps"]), m["codec"] or "h264", m["mode"] or "live",
                   **options)
        for w, h in [(spec.width, spec.height)] + ([spec.resize] if spec.resize else []):
            if w % 2 or h % 2:
                raise ValueError(f"bad stream {text!r}: width and height must be even (I420)")
            if w < CODE_X + CODE_WIDTH + BLOCK or h < CODE_Y + CODE_HEIGHT + BLOCK:
                raise ValueError(f"bad stream {text!r}: at least {CODE_X + CODE_WIDTH + BLOCK}x"
                                 f"{CODE_Y + CODE_HEIGHT + BLOCK} needed for the time code")
        if spec.mode == "frozen" and (spec.codec != "h264" or spec.bframes):
            raise ValueError(f"bad stream {text!r}: frozen needs h264 without B-frames (a constant quantizer)")
        if not 1 <= spec.fps <= 120:
            raise ValueError(f"bad stream {text!r}: fps must be 1..120")
        return spec

    @property
    def bitrate_kbps(self) -> int:
        """``bitrate=`` or about what an IP camera spends (~2.3 Mbit/s at 720p25, ~5.2 at 1080p25);
        the encoder undershoots on easy frames."""
        return self.bitrate or max(256, self.width * self.height * self.fps // 10_000)

    def sizes(self) -> list[tuple[int, int]]:
        """The picture sizes the stream takes, in turn (one unless ``resize=``)."""
        return [(self.width, self.height)] + ([self.resize] if self.resize else [])

    def caps(self, width: int, height: int) -> str:
        return f"video/x-raw,format=I420,width={width},height={height},framerate={self.fps}/1"

    def launch(self) -> str:
        """The media factory's pipeline description.

        No do-timestamp: the pusher stamps every buffer (see server._Pusher). x264 runs with one
        thread: sliced threads with zerolatency made FFmpeg silently mis-decode P-frames
        (DESIGN §9). The leaky queue before the payloader lets the pipeline drop encoded
        frames rather than stall if a TCP client stops reading. A safety net only: with 1.22.0 a
        SIGSTOPped TCP client did not stall another one even without it (120 s, 720p25: the
        other kept 25 fps at ~0.1 s age either way).
        """
        gop = self.fps * self.gop_sec
        if self.codec == "h265":
            # tune=zerolatency turns B-frames off. Without it the shortest lookahead x265 takes
            # (bframes + 1) and one frame thread: ~0.5 s old at the client against ~0.65 s with the
            # preset's, and ~0.1 s with zerolatency (measured, 360p25; the cost of B-frames here).
            tune = "tune=zerolatency"
            if self.bframes:
                tune = f'option-string="bframes={self.bframes}:rc-lookahead={self.bframes + 1}:frame-threads=1"'
            enc = (f"x265enc {tune} speed-preset=ultrafast key-int-max={gop} "
                   f"bitrate={self.bitrate_kbps} ! h265parse config-interval=-1")
            pay = "rtph265pay"
        else:
            # A frozen camera repeats one picture exactly: a constant quantizer encodes the same input
            # the same way at every keyframe, so the decoded frames are bit-identical (a hung encoder).
            rate = "pass=quant quantizer=26" if self.mode == "frozen" else f"bitrate={self.bitrate_kbps}"
            # ultrafast alone sets bframes=0 and CAVLC; the properties override it: High profile with
            # CABAC and 8x8 transforms, as cameras with B-frames send.
            tune, profile = ("tune=zerolatency", "")
            if self.bframes:
                tune = f"bframes={self.bframes} b-adapt=false cabac=true dct8x8=true"
                profile = " ! video/x-h264,profile=high"
            enc = (f"x264enc {tune} speed-preset=ultrafast threads=1 key-int-max={gop} "
                   f"{rate}{profile} ! h264parse config-interval=-1")
            pay = "rtph264pay"
        audio = ""
        if self.audio:
            rate, encode = AUDIO[self.audio]
            audio = f" {_AUDIO_SRC.format(rate=rate)} ! {encode} name=pay1 pt=97"
        return (f"( appsrc name=src is-live=true block=false format=time "
                f"leaky-type=downstream max-buffers=2 caps={self.caps(self.width, self.height)} ! {enc} "
                f"! queue leaky=downstream max-size-buffers={self.fps} max-size-bytes=0 max-size-time=0 "
                f"! {pay} name=pay0 pt=96 config-interval=1{audio} )")


def _options(text: str) -> dict[str, object]:
    """The ``,key=value`` part of a spec as StreamSpec keyword arguments; ValueError if unknown or bad."""
    out: dict[str, object] = {}
    for item in filter(None, text.split(",")):
        key, _, value = item.partition("=")
        if key in out or (key == "gop" and "gop_sec" in out):
            raise ValueError(f"{key} given twice")
        if key == "gop":
            out["gop_sec"] = _int(value, key, 1, 60)
        elif key == "bframes":
            out["bframes"] = _int(value, key, 0, 4)
        elif key == "bitrate":
            out["bitrate"] = _int(value, key, 64, 100_000)
        elif key == "resize_sec":
            out["resize_sec"] = _int(value, key, 1, 3600)
        elif key == "audio":
            if value not in AUDIO:
                raise ValueError(f"audio must be one of {', '.join(AUDIO)}, got {value!r}")
            out["audio"] = value
        elif key == "resize":
            m = _SIZE_RE.match(value)
            if not m:
                raise ValueError(f"resize must be WIDTHxHEIGHT, got {value!r}")
            out["resize"] = (int(m[1]), int(m[2]))
        else:
            raise ValueError(f"unknown option {key!r}")
    return out
