"""Where adaptive decoding's access units come from: our own RTSP client (rtsp/session.py and rtp.py) or,
where it cannot, rtspsrc's receive pipeline. gst_demand.DemandPipeline takes either; both give gop.Units.

The two differ in who wakes up when: rtspsrc's threads take every packet as it comes, ours lets the
packets wait in the socket until the camera thread asks (see rtsp/session.py for the figures).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any, Protocol

from rtsp2jpg.capture import gst
from rtsp2jpg.capture.gop import Unit
from rtsp2jpg.capture.rtsp import depay, fmtp, rtp
from rtsp2jpg.capture.rtsp.session import Session, SessionError, Unsupported
from rtsp2jpg.capture.rtsp.wire import Cancelled, ExchangeCancelled

log = logging.getLogger(__name__)


class Receiver(Protocol):
    name: str  # for /status and logs: "rtsp2jpg" or "rtspsrc"
    failure: str  # why units() returned None, "" for a plain timeout
    caps: Any  # what the decoder's appsrc is told it gets: a caps string or Gst.Caps; may change

    def start(self) -> None: ...
    def units(self, timeout: float) -> list[Unit] | None: ...
    def close(self, wait: float = 1.0) -> None: ...


class GstReceiver:
    """rtspsrc ! depay ! parse ! appsink (chains.pipeline_for's `receive`), pulled until it is empty."""

    name = "rtspsrc"

    def __init__(self, description: str, label: str) -> None:
        self._pipe = gst.Pipeline(description, label)
        self._gst = gst._gst()[0]
        self.caps: Any = None
        self.failure = ""

    def start(self) -> None:
        self._pipe.start()

    def units(self, timeout: float) -> list[Unit] | None:
        sample = self._pipe.pull(timeout)
        if sample is None:
            self.failure = self._pipe.failure
            return None
        out = []
        while sample is not None:
            unit = self._unit(sample)
            if unit is not None:
                out.append(unit)
            sample = self._pipe.pull(0.0005) if not self._pipe.failure else None
        return out

    def _unit(self, sample: Any) -> Unit | None:
        buf = sample.get_buffer()
        if buf is None:
            return None
        caps = sample.get_caps()
        if caps is not None and (self.caps is None or not caps.is_equal(self.caps)):
            self.caps = caps  # a new resolution or codec setup mid-stream
        pts = buf.pts if buf.pts != gst.NO_PTS else None
        key = not buf.has_flags(self._gst.BufferFlags.DELTA_UNIT)
        return Unit(buf, key, buf.get_size(), pts, time.monotonic())

    def close(self, wait: float = 1.0) -> None:
        self._pipe.close(wait)


class RtspReceiver:
    """Our RTSP session's video packets, depayloaded into access units (Annex B bytes, RTP times in ns)."""

    name = "rtsp2jpg"

    def __init__(self, url: str, timeout: float, label: str, cancelled: Cancelled | None = None,
                 tls_verify: bool = True) -> None:
        self.label = label
        self._session = Session(url, timeout, cancelled, tls_verify)  # Unsupported unless rtsp(s)://
        self._depay: depay.Depayloader | None = None
        self._timeline = rtp.Timeline()
        self.caps: Any = None
        self.failure = ""
        self.malformed = 0  # packets that were not RTP

    def start(self) -> None:
        """The RTSP handshake. Unsupported: use rtspsrc; gst.PipelineError: the camera failed definitely."""
        try:
            track = self._session.open()
        except SessionError as e:
            raise gst.PipelineError(f"{self.label}: {e}") from None
        except ExchangeCancelled:
            raise gst.PipelineError(f"{self.label}: stopped while opening") from None
        self._depay = depay.depayloader(track.codec, fmtp.parameter_sets(track.codec, track.fmtp))
        self._timeline = rtp.Timeline(track.clock_rate)
        self.caps = f"video/x-{track.codec},stream-format=byte-stream,alignment=au"

    def units(self, timeout: float) -> list[Unit] | None:
        """At least one access unit within `timeout` s (all that are complete), or None."""
        depayloader = self._depay
        if depayloader is None:
            self.failure = "not started"
            return None
        deadline = time.monotonic() + timeout
        out: list[Unit] = []
        while not out:
            left = deadline - time.monotonic()
            try:
                packets = self._session.packets(max(0.0, left))
            except SessionError as e:
                self.failure = str(e)
                return None
            if not packets and left <= 0:
                return None
            now = time.monotonic()
            for data in packets:
                try:
                    packet = rtp.parse_packet(data)
                except ValueError:
                    self.malformed += 1
                    continue
                for au in depayloader.push(packet):
                    out.append(Unit(au.data, au.key, len(au.data), self._timeline.ns(au.timestamp), now))
        return out

    def close(self, wait: float = 1.0) -> None:
        self._session.close()


# Cameras whose session our client opened but which gave it no keyframe: rtspsrc receives them for
# the next GAVE_NOTHING_SEC (a camera that needs something only rtspsrc does keeps working; one that was
# merely restarting comes back to our client). Bounded: the oldest entry goes first.
_GAVE_NOTHING: dict[str, float] = {}
_GAVE_NOTHING_MAX = 256
GAVE_NOTHING_SEC = 600.0


def gave_nothing(url: str, clock: Callable[[], float] = time.monotonic) -> None:
    """Our client's session on `url` opened but no keyframe came: rtspsrc gets the next attempts."""
    log.warning("a camera gave our RTSP client no picture: rtspsrc receives it for the next %g s", GAVE_NOTHING_SEC)
    _GAVE_NOTHING.pop(url, None)
    _GAVE_NOTHING[url] = clock() + GAVE_NOTHING_SEC
    while len(_GAVE_NOTHING) > _GAVE_NOTHING_MAX:
        del _GAVE_NOTHING[next(iter(_GAVE_NOTHING))]


def _ours(url: str, clock: Callable[[], float] = time.monotonic) -> bool:
    until = _GAVE_NOTHING.get(url)
    if until is not None and clock() >= until:
        del _GAVE_NOTHING[url]
        until = None
    return bool(url) and until is None


def open_receiver(receive: str, url: str, timeout: float, label: str,
                  cancelled: Cancelled | None = None, tls_verify: bool = True) -> Receiver:
    """Ours where `url` is given and the camera speaks what it needs, else rtspsrc's `receive` pipeline;
    started. gst.PipelineError when the camera failed definitely (no second login is tried then)."""
    if _ours(url):
        own = None
        try:
            own = RtspReceiver(url, timeout, label, cancelled, tls_verify)
            own.start()
            return own
        except Unsupported as e:
            log.info("%s: receiving with rtspsrc (%s)", label, e)
        except BaseException:
            if own is not None:
                own.close()
            raise
    receiver = GstReceiver(receive, label)
    try:
        receiver.start()
    except BaseException:
        receiver.close()
        raise
    return receiver
