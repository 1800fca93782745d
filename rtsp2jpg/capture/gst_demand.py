"""Demand-adaptive decoding: receive always, decode only what someone will see.

A receiver and a decoder per camera instead of one pipeline: the receiver (receivers.py: our own
RTSP client, or rtspsrc's depayloader and parser) gives access units, and the decoder decodes those
it is handed: libavcodec driven directly for the software chains (lavc.py: no GStreamer plugin, a
third of the memory), else `decode` (appsrc, parser, the chain's decoder, an appsink). Between
them this module keeps the group of pictures since the last keyframe (gop.GopBuffer) and decides
per pull whether to feed the decoder (gop.Demand): while someone reads at least once per keyframe
interval every unit is decoded as it arrives; otherwise the units are only kept, and the next read
decodes them at full speed and gets the newest picture. The hardware chains work the same way:
only the decoder element differs.

`DemandPipeline` has the shape of gst.Pipeline that direct_gst.DirectCapture uses (pull, picture,
fps, close), so the camera loop does not know which one it drives.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any, Protocol

from rtsp2jpg.capture import gst, lavc
from rtsp2jpg.capture.gop import FPS_UNITS, Demand, GopBuffer, Target, Unit, frame_rate
from rtsp2jpg.capture.receivers import Receiver, gave_nothing, open_receiver
from rtsp2jpg.capture.rtsp.wire import Cancelled

log = logging.getLogger(__name__)

# A pull() that finds nothing to decode says "pictures are buffered" with this; picture() decodes.
BUFFERED = object()
_QUIET_SEC = 0.15  # a burst is over when the decoder gives nothing new for this long
_SLICE_SEC = 0.02


class DemandPipeline:
    """One camera's receiver and decoder; pull and picture from one thread, close from any."""

    def __init__(self, receiver: Receiver, decoder: Decoder, label: str, clock: Callable[[], float] = time.monotonic,
                 hold_sec: float | None = None) -> None:
        self.label = label
        self._rx = receiver
        self._dec = decoder
        self._gop = GopBuffer()
        self.demand = Demand(clock, hold_sec)
        self._caps: Any = None
        self._stamps: list[int] = []  # the newest units' timestamps, until they give the frame rate
        self._fps = 0.0
        self.failure = ""
        self.pushed = 0  # units handed to the decoder: what an idle camera does not spend
        self.behind_sec = 0.0  # how much older the last picture() is than the newest unit received

    @property
    def fps(self) -> float:
        """The stream's frame rate from its timestamps (either decoder): known while nobody reads too,
        and what /snapshot's default max_age is made of (1.5 frames)."""
        return self._fps

    @property
    def gop(self) -> GopBuffer:
        return self._gop

    @property
    def receiver(self) -> str:
        return self._rx.name

    def start(self) -> None:
        """Start the decoder (the receiver is already receiving: open_receiver started it)."""
        self._dec.start()

    def pull(self, timeout: float) -> Any | None:
        """Wait up to `timeout` s for new access units and take them all; then, if someone reads
        often (and will see them: Demand.ahead), decode them and return the newest picture, else
        return BUFFERED. None when the stream failed, ended or stalled."""
        if not self._receive(timeout):
            return None
        if not self.demand.continuous() or not self.demand.ahead():
            return BUFFERED
        sample = self._decode(timeout)
        return sample if sample is not None else (None if self.failure else BUFFERED)

    def picture(self, sample: Any, glance: bool = False) -> gst.RawPicture | None:
        """The picture of a pulled sample; BUFFERED decodes the buffered units first. Counts as a
        read (the decoder keeps running for a keyframe interval after it) unless it is a `glance`:
        the image-health check every few seconds must not keep every camera decoding. A glance
        decodes the group's keyframe alone where it can (`behind_sec` then says how old it is):
        one picture instead of up to a keyframe interval of them."""
        self.behind_sec = 0.0
        if not glance:
            self.demand.read()
        if sample is BUFFERED:
            sample = (self._glance() if glance else None) or self._decode(1.0)
            if sample is None:
                return None
        return self._dec.picture(sample)

    def close(self, wait: float = 1.0) -> None:
        self._rx.close(wait)
        self._dec.close(wait)

    # -- internals ---------------------------------------------------------------------------------

    def _receive(self, timeout: float) -> bool:
        """Move every waiting access unit into the buffer (at least one, within `timeout`)."""
        units = self._rx.units(timeout)
        if units is None:
            self.failure = self._rx.failure  # empty on a plain timeout: the caller words that
            return False
        caps = self._rx.caps
        if caps is not None and caps is not self._caps:
            self._caps = caps  # a new resolution or codec setup mid-stream (rtspsrc's parser says so)
            self._dec.set_caps(caps)
        stamps = [u.pts for u in units if u.pts is not None]
        if not self._fps:
            self._stamps = (self._stamps + stamps)[-FPS_UNITS:]
            self._fps = frame_rate(self._stamps)
        newest, now = (max(stamps) if stamps else None), time.monotonic()
        for unit in units:
            if self._gop.add(unit):
                # Units come in batches (our client reads the socket when the camera thread wakes):
                # when the keyframe arrived is told better by its timestamp than by the batch's time.
                late = (newest - unit.pts) / 1e9 if newest is not None and unit.pts is not None else 0.0
                self.demand.keyframe(now - min(max(late, 0.0), 1.0))
        return True

    def _glance(self) -> Any | None:
        """The decoded keyframe of the buffered group, if the decoder has not had it yet (a decoder
        that holds it back for reordering, with B-frames, gives nothing: the caller decodes the rest)."""
        units = self._gop.pending(keyframe_only=True)
        sample = self._decode(1.0, units) if units else None
        if sample is not None:
            self.behind_sec = self._gop.keyframe_age()
        return sample

    def _decode(self, timeout: float, units: list[Unit] | None = None) -> Any | None:
        """Feed the decoder `units` (default: all it has not had): the picture that completes them."""
        units = self._gop.pending() if units is None else units
        if not units:
            return None
        sample = self._dec.decode(units, timeout)
        if self._dec.failure:
            self.failure = self._dec.failure
            return None
        self.pushed += len(units)
        return sample


class Decoder(Protocol):
    """The decode half: GstDecoder (the chain's GStreamer decoder) or lavc.Decoder (libavcodec)."""

    failure: str

    def start(self) -> None: ...
    def set_caps(self, caps: Any) -> None: ...
    def decode(self, units: list[Unit], timeout: float) -> Any | None: ...
    def picture(self, sample: Any) -> gst.RawPicture | None: ...
    def close(self, wait: float = 1.0) -> None: ...


class GstDecoder:
    """appsrc ! parse ! decoder ! appsink (chains.pipeline_for's `decode`), fed units and pulled."""

    def __init__(self, description: str, label: str) -> None:
        self._pipe = gst.Pipeline(description, label, guarded=False)
        self._src = self._pipe.element("src")
        self._gst = gst._gst()[0]
        self._target = Target()
        self.failure = ""

    def start(self) -> None:
        if self._src is None:
            raise gst.PipelineError(f"{self._pipe.label}: the decode pipeline has no appsrc named src")
        self._pipe.start()

    def set_caps(self, caps: Any) -> None:
        self._src.set_property("caps", self._gst.Caps.from_string(caps) if isinstance(caps, str) else caps)

    def picture(self, sample: Any) -> gst.RawPicture | None:
        return self._pipe.picture(sample)

    def close(self, wait: float = 1.0) -> None:
        self._pipe.close(wait)

    def decode(self, units: list[Unit], timeout: float) -> Any | None:
        """Push `units` and wait for the picture that completes them (the decoder runs in its own
        thread: a burst is over when the target timestamp comes out or nothing new comes for a while)."""
        for unit in units:
            flow = self._src.emit("push-buffer", self._buffer(unit))
            if flow != self._gst.FlowReturn.OK:
                self.failure = f"the decoder refused data ({flow.value_nick})"
                return None
        target = self._target.after(units)
        deadline = time.monotonic() + max(timeout, 0.2 + 0.01 * len(units))
        quiet_until = time.monotonic() + max(_QUIET_SEC, 0.004 * len(units))  # ~4 ms per picture to start
        newest = None
        while True:
            now = time.monotonic()
            if now >= deadline or now >= quiet_until:
                break
            sample = self._pipe.pull(_SLICE_SEC)
            if self._pipe.failure:
                self.failure = f"decoder: {self._pipe.failure}"
                return None
            if sample is None:
                continue
            newest, quiet_until = sample, time.monotonic() + _QUIET_SEC
            pts = sample.get_buffer().pts
            if target is None or pts == gst.NO_PTS or pts >= target:
                break
        return newest

    def _buffer(self, unit: Unit) -> Any:
        """The unit as a Gst.Buffer: rtspsrc's already is one; our client's bytes are copied into one."""
        if not isinstance(unit.data, bytes):
            return unit.data
        buf = self._gst.Buffer.new_wrapped(unit.data)
        if unit.pts is not None:
            buf.pts = unit.pts
        if not unit.key:
            buf.set_flags(self._gst.BufferFlags.DELTA_UNIT)
        return buf


def _decoder(decode: str, lavc_codec: str, label: str) -> Decoder:
    """libavcodec directly where the spec asks for it and it opens, else the GStreamer decode half."""
    if lavc_codec:
        try:
            return lavc.Decoder(lavc_codec, label)
        except lavc.DecoderError as e:
            log.warning("%s; decoding with GStreamer instead", e)
    return GstDecoder(decode, label)


def open_demand(receive: str, decode: str, label: str, timeout: float, url: str = "",
                cancelled: Cancelled | None = None, tls_verify: bool = True,
                lavc_codec: str = "") -> tuple[DemandPipeline, Any]:
    """Start the receiver (ours on `url` where given and possible, else rtspsrc's `receive`) and the
    decoder, and decode the first picture within `timeout` s: (pipeline, sample).

    PipelineError (redacted) when either fails or no picture comes in time; nothing is left running.
    """
    deadline = time.monotonic() + timeout
    receiver = open_receiver(receive, url, timeout, label, cancelled, tls_verify)
    try:
        decoder = _decoder(decode, lavc_codec, label)
    except BaseException:
        receiver.close()
        raise
    pipe = DemandPipeline(receiver, decoder, label)
    try:
        pipe.start()
        sample = None
        while sample is None:
            left = deadline - time.monotonic()
            if left <= 0 or not pipe._receive(left):
                break
            if pipe.gop.started:
                pipe.demand.read()  # the open's own read: the first picture is wanted at once
                sample = pipe._decode(max(0.0, deadline - time.monotonic()))
                if pipe.failure:
                    break
    except BaseException:
        pipe.close()
        raise
    if sample is None:
        why = pipe.failure or f"no frame within the open timeout ({timeout:g} s)"
        if url and pipe.receiver == "rtsp2jpg" and not pipe.gop.started and not (cancelled and cancelled()):
            gave_nothing(url)  # a session that never gave a keyframe: perhaps rtspsrc does better
        pipe.close()
        raise gst.PipelineError(f"{label}: {why}")
    return pipe, sample
