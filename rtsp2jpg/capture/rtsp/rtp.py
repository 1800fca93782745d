"""RTP packets (RFC 3550), the pure part: the header a depayloader needs, and RTP time as nanoseconds.

The packets come from cameras we do not trust: `parse_packet` raises ValueError for anything malformed
(depay.py rebuilds the access units, fmtp.py reads the SDP's codec parameters).
"""

from __future__ import annotations

from dataclasses import dataclass

_TS_MOD = 1 << 32


@dataclass(frozen=True)
class Packet:
    """One RTP packet as far as depacketization needs it (the SSRC is the session's business)."""

    payload_type: int
    sequence: int  # 16-bit
    timestamp: int  # 32-bit RTP timestamp as sent
    marker: bool
    payload: bytes  # after CSRCs, header extension, and with padding removed


def parse_packet(data: bytes) -> Packet:
    """ValueError unless version 2 and every length (CSRC count, extension, padding) fits in data; an empty
    payload is a ValueError too."""
    data = bytes(data)
    if len(data) < 12:
        raise ValueError(f"RTP packet of {len(data)} bytes is shorter than its 12-byte header")
    first, second = data[0], data[1]
    if first >> 6 != 2:
        raise ValueError(f"RTP version {first >> 6}, not 2")
    start = 12 + 4 * (first & 0x0F)
    if first & 0x10:  # header extension: 16-bit profile, 16-bit length in 32-bit words, then the words
        if start + 4 > len(data):
            raise ValueError("RTP header extension runs past the packet")
        start += 4 + 4 * int.from_bytes(data[start + 2:start + 4], "big")
    if start > len(data):
        raise ValueError("RTP CSRC list or header extension runs past the packet")
    end = len(data)
    if first & 0x20:  # padding: the last byte counts the padding bytes, itself included
        padding = data[-1]
        if padding == 0 or end - padding < start:
            raise ValueError(f"RTP padding of {padding} bytes does not fit the packet")
        end -= padding
    if end <= start:
        raise ValueError("RTP packet without payload")
    return Packet(
        payload_type=second & 0x7F,
        sequence=int.from_bytes(data[2:4], "big"),
        timestamp=int.from_bytes(data[4:8], "big"),
        marker=bool(second & 0x80),
        payload=data[start:end],
    )


class Timeline:
    """RTP timestamps -> nanoseconds, unwrapping the 32-bit wrap-around (modular difference to the previous
    timestamp, so reordered B-frames a little earlier stay earlier). The first timestamp maps to
    `offset_ns` (default 10 s, so pictures presented before the first one, as with B-frames, stay positive).
    A stream running back further than that is clamped at 0 rather than going negative."""

    def __init__(self, clock_rate: int = 90000, offset_ns: int = 10_000_000_000) -> None:
        if clock_rate <= 0:
            raise ValueError(f"RTP clock rate {clock_rate} is not positive")
        self.clock_rate = clock_rate
        self.offset_ns = offset_ns
        self._last: int | None = None
        self._ticks = 0  # since the first timestamp, unwrapped

    def ns(self, timestamp: int) -> int:
        timestamp %= _TS_MOD
        if self._last is not None:
            step = (timestamp - self._last) % _TS_MOD
            self._ticks += step - _TS_MOD if step >= _TS_MOD // 2 else step
        self._last = timestamp
        return max(0, self.offset_ns + self._ticks * 1_000_000_000 // self.clock_rate)
