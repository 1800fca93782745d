"""RTP packets -> H.264/H.265 access units (RFC 6184, RFC 7798), the pure part: no I/O, no GStreamer.

The packets come from cameras we do not trust, so everything here is bounded and total: a depayloader
drops (and counts) an access unit it cannot rebuild exactly, because a decoder given a picture with a
hole in it shows garbage until the next keyframe, while a picture left out only costs that picture. Key
units carry the parameter sets they need, so a decoder may start at any of them (the demand-adaptive
buffer in capture/gop.py starts at every keyframe).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from rtsp2jpg.capture.rtsp.rtp import Packet

MAX_AU_BYTES = 8 * 1024 * 1024  # an access unit larger than this is dropped (counted in .dropped)
MAX_NALS = 1024  # NAL units per access unit; more -> the AU is dropped
MAX_PARAMETER_SET = 64 * 1024  # a parameter set larger than this is not remembered (real ones are < 1 KB)
MAX_MISORDER = 100  # packets this far behind are late or duplicates; farther behind may be a sender restart

START_CODE = b"\x00\x00\x00\x01"
_SEQ_MOD = 1 << 16


@dataclass(frozen=True)
class AccessUnit:
    """One compressed picture as a decoder takes it, whatever the packetization was."""

    data: bytes  # Annex B byte stream: each NAL unit preceded by b"\x00\x00\x00\x01"
    key: bool  # contains a random-access picture (H.264: an IDR slice; H.265: an IRAP picture)
    timestamp: int  # the RTP timestamp of its packets (32-bit, as sent)


class _Malformed(Exception):
    """The access unit being assembled cannot be rebuilt exactly (internal: it is dropped and counted)."""


class Depayloader:
    """RTP packets of one stream -> whole access units; an incomplete or malformed one is dropped.

    A unit ends at the marker bit, or at a packet with another timestamp (a camera that never sets the
    marker is then one packet late, not broken). A sequence gap, an FU without its start, or a packet
    type not depacketized here (H.264 STAP-B, MTAP, FU-B; H.265 PACI) drops the unit it hits, counted
    once in `dropped`. Duplicates and late packets are ignored; two consecutive ones more than
    MAX_MISORDER behind are a sender that restarted its sequence, and are followed.

    A key unit lacking some parameter sets gets the newest of each type (from the SDP, then in band)
    prepended, after a leading access unit delimiter, in VPS, SPS, PPS order.
    """

    codec = ""
    _HEADER = 1  # bytes of a NAL unit header
    _PS_TYPES: tuple[int, ...] = ()  # parameter-set NAL types, in the order a decoder needs them
    _AUD = -1  # access unit delimiter NAL type: it stays first

    def __init__(self, parameter_sets: Sequence[bytes] = ()) -> None:
        self.dropped = 0
        self._sets: dict[int, bytes] = {}  # parameter-set NAL type -> the newest such NAL unit
        for nal in parameter_sets:
            nal = bytes(nal)
            if len(nal) >= self._HEADER:
                self._remember(nal)
        self._last_seq: int | None = None
        self._stray: int | None = None  # the last packet ignored as far behind (a restart if the next follows it)
        self._ts: int | None = None  # timestamp of the unit being assembled, None between units
        self._nals: list[bytes] = []
        self._size = 0  # bytes of _nals with their start codes
        self._fu: bytearray | None = None  # the fragmented NAL unit being reassembled
        self._broken = False  # the unit being assembled is dropped already: ignore it to its end

    def push(self, packet: Packet) -> list[AccessUnit]:
        """The access units this packet completes (usually 0 or 1)."""
        out: list[AccessUnit] = []
        order = self._sequence(packet.sequence)
        if order < 0:
            return out
        if order > 0 and self._ts is not None:
            self._break()  # the lost packets may have been this unit's
        if self._ts is not None and packet.timestamp != self._ts:
            self._finish(out)
        if self._ts is None:
            self._ts, self._nals, self._size, self._fu, self._broken = packet.timestamp, [], 0, None, False
        if not self._broken:
            try:
                self._depacketize(packet.payload)
            except _Malformed:
                self._break()
        if packet.marker:
            self._finish(out)
        return out

    def _sequence(self, sequence: int) -> int:
        """0: the next packet; 1: after a gap (or a sender restart); -1: a duplicate or late one, to ignore."""
        sequence &= _SEQ_MOD - 1
        if self._last_seq is None:
            self._last_seq = sequence
            return 0
        ahead = (sequence - self._last_seq) % _SEQ_MOD
        if ahead == 1:
            order = 0
        elif 0 < ahead < _SEQ_MOD // 2:
            order = 1
        else:
            behind = (self._last_seq - sequence) % _SEQ_MOD
            if behind <= MAX_MISORDER or self._stray is None or sequence != (self._stray + 1) % _SEQ_MOD:
                self._stray = sequence if behind > MAX_MISORDER else None
                return -1
            order = 1  # two consecutive packets far behind: the sender restarted its sequence
        self._stray = None
        self._last_seq = sequence
        return order

    def _break(self) -> None:
        if not self._broken:
            self._broken = True
            self.dropped += 1
        self._nals, self._size, self._fu = [], 0, None

    def _finish(self, out: list[AccessUnit]) -> None:
        if not self._broken and self._fu is not None:
            self._break()  # ended inside a fragmented NAL unit
        if not self._broken and self._nals and self._ts is not None:
            unit = self._unit(self._nals, self._ts)
            if unit is None:
                self.dropped += 1
            else:
                out.append(unit)
        self._ts, self._nals, self._size, self._fu, self._broken = None, [], 0, None, False

    def _unit(self, nals: list[bytes], timestamp: int) -> AccessUnit | None:
        types = [self._type(nal) for nal in nals]
        key = any(self._key(t) for t in types)
        if key:
            nals = list(nals)
            first = 1 if types[0] == self._AUD else 0
            for rank, ps in enumerate(self._PS_TYPES):
                if ps in types or ps not in self._sets:
                    continue
                at = first
                while at < len(types) and types[at] in self._PS_TYPES[:rank + 1]:
                    at += 1  # after the sets a decoder needs before this one
                nals.insert(at, self._sets[ps])
                types.insert(at, ps)
        if len(nals) > MAX_NALS:
            return None
        data = b"".join(START_CODE + nal for nal in nals)
        if len(data) > MAX_AU_BYTES:
            return None
        return AccessUnit(data, key, timestamp)

    def _add(self, nal: bytes) -> None:
        """A complete NAL unit of the unit being assembled."""
        if len(nal) < self._HEADER:
            raise _Malformed
        if len(self._nals) >= MAX_NALS or self._size + len(START_CODE) + len(nal) > MAX_AU_BYTES:
            raise _Malformed
        self._nals.append(nal)
        self._size += len(START_CODE) + len(nal)
        self._remember(nal)

    def _single(self, nal: bytes) -> None:
        if self._fu is not None:
            raise _Malformed  # a fragmented NAL unit was not finished
        self._add(nal)

    def _aggregate(self, payload: bytes, header: int) -> None:
        """An aggregation packet: its header, then (16-bit size, NAL unit) repeated to the end exactly."""
        nals, at = [], header
        while at < len(payload):
            if at + 2 > len(payload):
                raise _Malformed
            size = int.from_bytes(payload[at:at + 2], "big")
            nal = payload[at + 2:at + 2 + size]
            if size < self._HEADER or len(nal) < size or not self._plain(self._type(nal)):
                raise _Malformed
            nals.append(nal)
            at += 2 + size
        if not nals:
            raise _Malformed
        for nal in nals:
            self._single(nal)

    def _fragment(self, start: bool, end: bool, header: bytes, data: bytes) -> None:
        """One fragment of a NAL unit; `header` is the NAL unit header it rebuilds."""
        if not self._plain(self._type(header)):
            raise _Malformed
        if start:
            if self._fu is not None:
                raise _Malformed
            self._fu = bytearray(header)
        elif self._fu is None or self._type(self._fu) != self._type(header):
            raise _Malformed  # its start was lost, or it belongs to another NAL unit
        if self._size + len(START_CODE) + len(self._fu) + len(data) > MAX_AU_BYTES:
            raise _Malformed
        self._fu += data
        if end:
            nal, self._fu = bytes(self._fu), None
            self._add(nal)

    def _remember(self, nal: bytes) -> None:
        kind = self._type(nal)
        if kind in self._PS_TYPES and len(nal) <= MAX_PARAMETER_SET:
            self._sets[kind] = nal

    # Per codec: the payload's packetization, a NAL unit's type, whether that type is a random-access
    # picture, and whether it is a NAL unit type at all (not a packetization structure).
    def _depacketize(self, payload: bytes) -> None: raise NotImplementedError
    @staticmethod
    def _type(nal: bytes | bytearray) -> int: raise NotImplementedError
    @staticmethod
    def _key(kind: int) -> bool: raise NotImplementedError
    @staticmethod
    def _plain(kind: int) -> bool: raise NotImplementedError


class H264Depayloader(Depayloader):
    """RFC 6184 packetization modes 0 and 1: single NAL units, STAP-A, FU-A."""

    codec = "h264"
    _HEADER = 1
    _PS_TYPES = (7, 8)  # SPS, PPS
    _AUD = 9

    @staticmethod
    def _type(nal: bytes | bytearray) -> int:
        return nal[0] & 0x1F

    @staticmethod
    def _key(kind: int) -> bool:
        return kind == 5

    @staticmethod
    def _plain(kind: int) -> bool:
        return 1 <= kind <= 23

    def _depacketize(self, payload: bytes) -> None:
        if not payload:
            raise _Malformed
        kind = payload[0] & 0x1F
        if self._plain(kind):
            self._single(payload)
        elif kind == 24:  # STAP-A
            self._aggregate(payload, 1)
        elif kind == 28:  # FU-A: indicator (F, NRI, 28), FU header (S, E, R, type)
            if len(payload) < 2:
                raise _Malformed
            fu = payload[1]
            self._fragment(bool(fu & 0x80), bool(fu & 0x40), bytes([(payload[0] & 0xE0) | (fu & 0x1F)]), payload[2:])
        else:
            raise _Malformed  # STAP-B, MTAP16/24, FU-B (interleaved mode only) or undefined


class H265Depayloader(Depayloader):
    """RFC 7798 without DONL (sprop-max-don-diff 0): single NAL units, aggregation packets, FUs."""

    codec = "h265"
    _HEADER = 2
    _PS_TYPES = (32, 33, 34)  # VPS, SPS, PPS
    _AUD = 35

    @staticmethod
    def _type(nal: bytes | bytearray) -> int:
        return (nal[0] >> 1) & 0x3F

    @staticmethod
    def _key(kind: int) -> bool:
        return 16 <= kind <= 21

    @staticmethod
    def _plain(kind: int) -> bool:
        return kind <= 47

    def _depacketize(self, payload: bytes) -> None:
        if len(payload) < 2:
            raise _Malformed
        kind = (payload[0] >> 1) & 0x3F
        if self._plain(kind):
            self._single(payload)
        elif kind == 48:  # AP
            self._aggregate(payload, 2)
        elif kind == 49:  # FU: 2-byte payload header (type 49), FU header (S, E, type)
            if len(payload) < 3:
                raise _Malformed
            fu = payload[2]
            header = bytes([(payload[0] & 0x81) | ((fu & 0x3F) << 1), payload[1]])
            self._fragment(bool(fu & 0x80), bool(fu & 0x40), header, payload[3:])
        else:
            raise _Malformed  # PACI or undefined


_DEPAYLOADERS: dict[str, type[Depayloader]] = {"h264": H264Depayloader, "h265": H265Depayloader}


def depayloader(codec: str, parameter_sets: Sequence[bytes] = ()) -> Depayloader:
    """The depayloader for "h264" or "h265" (ValueError for another codec)."""
    kind = _DEPAYLOADERS.get(codec.lower())
    if kind is None:
        raise ValueError(f"no RTP depayloader for codec {codec!r} (h264, h265)")
    return kind(parameter_sets)
