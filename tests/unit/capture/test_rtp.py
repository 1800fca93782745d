"""RTP parsing and H.264/H.265 depacketization (capture/rtsp/rtp.py) against a packetizer written here from
the RFCs: what goes in as access units comes back out, and hostile input is dropped and counted."""

from __future__ import annotations

import base64
import functools
import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rtsp2jpg.capture.rtsp.depay import MAX_AU_BYTES, MAX_NALS, AccessUnit, Depayloader, depayloader
from rtsp2jpg.capture.rtsp.fmtp import parameter_sets, unsupported
from rtsp2jpg.capture.rtsp.rtp import Packet, Timeline, parse_packet

CODECS = ("h264", "h265")
PS = {"h264": (7, 8), "h265": (32, 33, 34)}  # in the order a decoder needs them
AUD = {"h264": 9, "h265": 35}
KEY = {"h264": (5,), "h265": tuple(range(16, 22))}
OTHER = {  # neither key, nor parameter set, nor delimiter
    "h264": tuple(t for t in range(1, 24) if t not in (5, 7, 8, 9)),
    "h265": tuple(t for t in range(48) if not 16 <= t <= 21 and not 32 <= t <= 35),
}
SC = b"\x00\x00\x00\x01"
SOME = settings(max_examples=150, deadline=None)
FEW = settings(max_examples=100, deadline=None)


# --- a packetizer, from RFC 3550 / 6184 / 7798 ---------------------------------------------------------------

def header(codec: str, kind: int, extra: int = 0) -> bytes:
    """A NAL unit header; `extra` picks H.264 NRI or H.265 layer id and temporal id."""
    if codec == "h264":
        return bytes([((extra % 4) << 5) | kind])
    layer, tid = extra % 64, 1 + extra % 7
    return bytes([(kind << 1) | (layer >> 5), ((layer & 0x1F) << 3) | tid])


def nal_type(codec: str, nal: bytes) -> int:
    return nal[0] & 0x1F if codec == "h264" else (nal[0] >> 1) & 0x3F


def nal(codec: str, kind: int, body: bytes = b"\x42", extra: int = 0) -> bytes:
    return header(codec, kind, extra) + body


def rtp(payload: bytes, seq: int, ts: int, marker: bool = False, pt: int = 96, csrcs: int = 0,
        ext: bytes | None = None, pad: int = 0) -> bytes:
    """An RTP packet; `ext` (a multiple of 4 bytes) is a header extension, `pad` bytes of padding."""
    first = 0x80 | (0x20 if pad else 0) | (0x10 if ext is not None else 0) | csrcs
    out = bytes([first, (0x80 if marker else 0) | pt]) + (seq % 65536).to_bytes(2, "big")
    out += (ts % 2**32).to_bytes(4, "big") + b"\x12\x34\x56\x78"
    out += b"".join((0xC0000000 + i).to_bytes(4, "big") for i in range(csrcs))
    if ext is not None:
        out += b"\xbe\xde" + (len(ext) // 4).to_bytes(2, "big") + ext
    out += payload
    if pad:
        out += bytes(pad - 1) + bytes([pad])
    return out


def aggregate(codec: str, nals: Sequence[bytes]) -> bytes:
    """STAP-A (H.264) or AP (H.265) of `nals`."""
    if codec == "h264":
        head = bytes([max(n[0] & 0x60 for n in nals) | 24])
    else:
        head = bytes([(nals[0][0] & 0x81) | (48 << 1), nals[0][1]])
    return head + b"".join(len(n).to_bytes(2, "big") + n for n in nals)


def fragments(codec: str, unit: bytes, mtu: int) -> list[bytes]:
    """FU-A (H.264) or FU (H.265) packets of `unit`, each payload <= mtu."""
    size = 1 if codec == "h264" else 2
    body = unit[size:]
    chunk = max(1, mtu - size - 1)
    pieces = [body[i:i + chunk] for i in range(0, len(body), chunk)] or [b""]
    out = []
    for i, piece in enumerate(pieces):
        flags = (0x80 if i == 0 else 0) | (0x40 if i == len(pieces) - 1 else 0)
        if codec == "h264":
            head = bytes([(unit[0] & 0xE0) | 28, flags | (unit[0] & 0x1F)])
        else:
            head = bytes([(unit[0] & 0x81) | (49 << 1), unit[1], flags | nal_type(codec, unit)])
        out.append(head + piece)
    return out


def payloads(codec: str, nals: Sequence[bytes], mtu: int, rnd: random.Random) -> list[bytes]:
    """RTP payloads for one access unit: a NAL unit over the MTU fragmented, others alone or aggregated."""
    out: list[bytes] = []
    i = 0
    while i < len(nals):
        if len(nals[i]) > mtu:
            out += fragments(codec, nals[i], mtu)
            i += 1
            continue
        group = [nals[i]]
        size = 2 + 2 + len(nals[i])
        while i + len(group) < len(nals) and rnd.random() < 0.6:
            nxt = nals[i + len(group)]
            if len(nxt) > mtu or size + 2 + len(nxt) > mtu:
                break
            group.append(nxt)
            size += 2 + len(nxt)
        out.append(nals[i] if len(group) == 1 and rnd.random() < 0.7 else aggregate(codec, group))
        i += len(group)
    return out


@dataclass(frozen=True)
class Unit:
    nals: tuple[bytes, ...]
    key: bool
    ts: int
    marker: bool  # False: ended by the next unit's timestamp
    with_ps: bool  # carries every parameter-set type itself


@dataclass(frozen=True)
class Sent:
    packet: bytes
    unit: int  # index of its access unit
    first: bool  # the unit's first packet


def packetize(codec: str, units: Sequence[Unit], mtu: int, seq: int, rnd: random.Random) -> list[Sent]:
    """The whole stream, every packet with a random RTP header shape (CSRCs, extension, padding)."""
    out = []
    for index, unit in enumerate(units):
        parts = payloads(codec, unit.nals, mtu, rnd)
        for i, part in enumerate(parts):
            ext = None if rnd.random() < 0.7 else rnd.randbytes(4 * rnd.randrange(3))
            pad = 0 if rnd.random() < 0.7 else rnd.randrange(1, 9)
            packet = rtp(part, seq, unit.ts, unit.marker and i == len(parts) - 1,
                         csrcs=rnd.choice((0, 0, 0, 1, 15)), ext=ext, pad=pad)
            out.append(Sent(packet, index, i == 0))
            seq += 1
    return out


def run(dep: Depayloader, packets: Iterable[bytes]) -> list[AccessUnit]:
    return [au for p in packets for au in dep.push(parse_packet(p))]


def annexb(nals: Iterable[bytes]) -> bytes:
    return b"".join(SC + n for n in nals)


def expected(codec: str, units: Sequence[Unit], sdp: Sequence[bytes]) -> list[tuple[bytes, bool, int]]:
    """What a decoder must get: every unit as sent, key units without parameter sets with the newest ones."""
    known = {nal_type(codec, n): n for n in sdp}
    out = []
    for unit in units:
        nals = list(unit.nals)
        for n in nals:
            if nal_type(codec, n) in PS[codec]:
                known[nal_type(codec, n)] = n
        if unit.key and not unit.with_ps:
            at = 1 if nal_type(codec, nals[0]) == AUD[codec] else 0
            nals[at:at] = [known[t] for t in PS[codec] if t in known]
        out.append((annexb(nals), unit.key, unit.ts))
    return out


def got(units: Iterable[AccessUnit]) -> list[tuple[bytes, bool, int]]:
    return [(au.data, au.key, au.timestamp) for au in units]


# --- strategies ------------------------------------------------------------------------------------------------

@functools.cache
def nals(codec: str, kinds: tuple[int, ...]) -> st.SearchStrategy[bytes]:
    """NAL units of `kinds`, most small, some to fragment; the bodies from a seed (drawing bytes is slow)."""
    sizes = st.one_of(st.integers(0, 40), st.integers(0, 3000))
    return st.builds(lambda kind, size, seed, extra: nal(codec, kind, random.Random(seed).randbytes(size), extra),
                     st.sampled_from(kinds), sizes, st.integers(0, 2**16), st.integers(0, 255))


@functools.cache
def nal_lists(codec: str, kinds: tuple[int, ...], min_size: int) -> st.SearchStrategy[list[bytes]]:
    return st.lists(nals(codec, kinds), min_size=min_size, max_size=2)


_steps = st.integers(-3000, 100_000).filter(bool)


@st.composite
def streams(draw: st.DrawFn, codec: str, in_band: bool = True, max_units: int = 6) -> list[Unit]:
    ts = draw(st.one_of(st.integers(0, 2**32 - 1), st.integers(2**32 - 200_000, 2**32 - 1)))
    count = draw(st.integers(1, max_units))
    out = []
    for i in range(count):
        key = draw(st.booleans())
        parts = [nal(codec, AUD[codec], b"\x10")] if draw(st.booleans()) else []
        with_ps = key and in_band and draw(st.booleans())
        if with_ps:
            parts += [draw(nals(codec, (t,))) for t in PS[codec]]
        parts += draw(nal_lists(codec, OTHER[codec], 0))
        if key:
            parts.append(draw(nals(codec, KEY[codec])))
        parts += draw(nal_lists(codec, KEY[codec], 0) if key else nal_lists(codec, OTHER[codec], 1))
        marker = i == count - 1 or draw(st.booleans())
        out.append(Unit(tuple(parts), key, ts, marker, with_ps))
        ts = (ts + draw(_steps)) % 2**32  # B-frames run back a little
    return out


@st.composite
def sdp_sets(draw: st.DrawFn, codec: str) -> list[bytes]:
    kinds = draw(st.lists(st.sampled_from(PS[codec]), unique=True))
    return [draw(nals(codec, (t,))) for t in sorted(kinds, key=PS[codec].index)]


mtus = st.one_of(st.integers(12, 64), st.integers(64, 1500))
seqs = st.one_of(st.integers(0, 65535), st.integers(65400, 65535))


# --- parse_packet ------------------------------------------------------------------------------------------------

@SOME
@given(pt=st.integers(0, 127), seq=st.integers(0, 65535), ts=st.integers(0, 2**32 - 1), marker=st.booleans(),
       csrcs=st.integers(0, 15), ext=st.none() | st.binary(max_size=12).map(lambda b: b + bytes(-len(b) % 4)),
       pad=st.integers(0, 255), payload=st.binary(min_size=1, max_size=200))
def test_parse_packet_reads_every_header_shape(pt: int, seq: int, ts: int, marker: bool, csrcs: int,
                                               ext: bytes | None, pad: int, payload: bytes) -> None:
    packet = parse_packet(rtp(payload, seq, ts, marker, pt, csrcs, ext, pad))
    assert packet == Packet(pt, seq, ts, marker, payload)


@SOME
@given(st.binary(max_size=80) | st.binary(min_size=12, max_size=40).map(lambda b: bytes([0x80 | b[0] & 0x3F]) + b[1:]))
def test_parse_packet_takes_any_bytes_to_a_packet_or_a_value_error(data: bytes) -> None:
    try:
        packet = parse_packet(data)
    except ValueError:
        return
    assert data[0] >> 6 == 2 and packet.payload and len(packet.payload) <= len(data) - 12
    assert packet.payload in data and packet.sequence == int.from_bytes(data[2:4], "big")


@pytest.mark.parametrize("data", [
    b"",
    b"\x80\x60\x00\x01",  # shorter than the header
    rtp(b"x", 1, 2)[:12],  # no payload
    bytes([0x40]) + rtp(b"xy", 1, 2)[1:],  # version 1
    bytes([0x82]) + rtp(b"\x00" * 7, 1, 2)[1:],  # 2 CSRCs in 7 bytes
    bytes([0x90]) + rtp(b"\x00\x00", 1, 2)[1:],  # extension header cut
    bytes([0x90]) + rtp(b"\xbe\xde\x00\x05" + b"\x00" * 8, 1, 2)[1:],  # extension longer than the packet
    rtp(b"abc", 1, 2, pad=4)[:-1] + b"\x09",  # padding longer than the payload
    bytes([0xA0]) + rtp(b"abc\x00", 1, 2)[1:],  # padding of 0 bytes
    rtp(b"", 1, 2, pad=3),  # nothing but padding
])
def test_parse_packet_refuses_what_does_not_fit(data: bytes) -> None:
    with pytest.raises(ValueError):
        parse_packet(data)


# --- round trip ----------------------------------------------------------------------------------------------

@SOME
@given(data=st.data(), codec=st.sampled_from(CODECS), mtu=mtus, seq=seqs, rnd=st.integers(0, 2**32).map(random.Random))
def test_access_units_come_back_as_sent(data: st.DataObject, codec: str, mtu: int, seq: int,
                                        rnd: random.Random) -> None:
    units = data.draw(streams(codec))
    sdp = data.draw(sdp_sets(codec))
    dep = depayloader(codec, sdp)
    out = run(dep, (s.packet for s in packetize(codec, units, mtu, seq, rnd)))
    assert got(out) == expected(codec, units, sdp)
    assert dep.dropped == 0 and dep.codec == codec


@FEW
@given(data=st.data(), codec=st.sampled_from(CODECS), mtu=mtus, seq=seqs, rnd=st.integers(0, 2**32).map(random.Random))
def test_loss_drops_exactly_the_damaged_units_and_late_or_duplicate_packets_are_ignored(
        data: st.DataObject, codec: str, mtu: int, seq: int, rnd: random.Random) -> None:
    """Any packet but a unit's first may be lost or come late (ignored then): that unit is dropped, counted
    once, and every other one comes through whole. (A unit's first packet lost is undetectable when the next
    one can stand alone; test_a_gap_before_a_standalone_packet_starts_a_unit.) No in-band parameter sets
    here: which of them a damaged key unit delivered would depend on where the loss was."""
    units = data.draw(streams(codec, in_band=False, max_units=8))
    sdp = data.draw(sdp_sets(codec))
    sent = packetize(codec, units, mtu, seq, rnd)
    damaged: set[int] = set()
    order: list[tuple[float, bytes]] = []  # (arrival, packet)
    for i, s in enumerate(sent):
        fate = rnd.random() if not s.first and s.unit < len(units) - 1 else 1.0
        if fate < 0.1:
            damaged.add(s.unit)
            if fate < 0.05:  # late: after up to 3 later packets; else lost
                order.append((i + rnd.randrange(1, 4) + 0.5, s.packet))
            continue
        order.append((i, s.packet))
        if rnd.random() < 0.05:
            order.append((i + rnd.randrange(3) + 0.25, s.packet))  # a duplicate
    order.sort(key=lambda o: o[0])
    dep = depayloader(codec, sdp)
    out = run(dep, (packet for _, packet in order))
    want = expected(codec, units, sdp)
    assert got(out) == [w for i, w in enumerate(want) if i not in damaged]
    assert dep.dropped == len(damaged)


@functools.cache
def hostile_payloads(codec: str) -> st.SearchStrategy[bytes]:
    """Payloads of every packet type, most of them cut short or with garbage behind a valid header."""
    kinds = (24, 25, 26, 27, 28, 29, 0, 30, 31, 1, 5, 7, 8) if codec == "h264" else (48, 49, 50, 51, 63, 0, 19, 32, 34)
    return st.builds(lambda kind, extra, tail, cut: (header(codec, kind, extra) + tail)[:cut],
                     st.sampled_from(kinds), st.integers(0, 255), st.binary(max_size=30), st.integers(1, 40))


@FEW
@given(data=st.data(), codec=st.sampled_from(CODECS), mtu=mtus, seq=seqs, rnd=st.integers(0, 2**32).map(random.Random))
def test_hostile_streams_never_raise_and_every_unit_is_bounded(data: st.DataObject, codec: str, mtu: int,
                                                               seq: int, rnd: random.Random) -> None:
    """Valid streams dropped, reordered, duplicated, corrupted and mixed with arbitrary packets."""
    units = data.draw(streams(codec))
    packets = [parse_packet(s.packet) for s in packetize(codec, units, mtu, seq, rnd)]
    noise = data.draw(st.lists(st.builds(
        Packet, st.just(96), st.integers(0, 65535), st.sampled_from([u.ts for u in units] + [0, 2**32 - 1]),
        st.booleans(), hostile_payloads(codec) | st.binary(min_size=1, max_size=20)), max_size=30))
    corrupt = data.draw(st.lists(hostile_payloads(codec), max_size=10))
    mixed: list[Packet] = []
    for p in packets:
        if corrupt and rnd.random() < 0.1:
            p = Packet(p.payload_type, p.sequence, p.timestamp, p.marker, corrupt.pop())
        if rnd.random() < 0.9:
            mixed.insert(len(mixed) - rnd.randrange(3) if mixed and rnd.random() < 0.1 else len(mixed), p)
        if rnd.random() < 0.05:
            mixed.append(p)
        if noise and rnd.random() < 0.2:
            mixed.append(noise.pop())
    mixed += noise
    dep = depayloader(codec, data.draw(sdp_sets(codec)))
    stamps = {p.timestamp for p in mixed}
    dropped = 0
    for p in mixed:
        for au in dep.push(p):
            assert au.data.startswith(SC) and len(au.data) <= MAX_AU_BYTES and au.timestamp in stamps
        assert dep.dropped >= dropped
        dropped = dep.dropped


# --- the rules, one by one -------------------------------------------------------------------------------------

def push_all(dep: Depayloader, packets: Iterable[tuple[int, int, bool, bytes]]) -> list[AccessUnit]:
    return [au for seq, ts, marker, payload in packets for au in dep.push(Packet(96, seq, ts, marker, payload))]


@pytest.mark.parametrize("codec", CODECS)
def test_one_lost_fragment_drops_its_unit_only(codec: str) -> None:
    big = nal(codec, OTHER[codec][0], bytes(range(256)) * 8)
    parts = fragments(codec, big, 500)
    assert len(parts) >= 4
    packets = [(i, 1000, i == len(parts) - 1, p) for i, p in enumerate(parts)]
    packets += [(len(parts) + i, 4000, i == len(parts) - 1, p) for i, p in enumerate(parts)]
    dep = depayloader(codec)
    assert got(push_all(dep, packets[:2] + packets[3:])) == [(SC + big, False, 4000)]
    assert dep.dropped == 1


@pytest.mark.parametrize("codec", CODECS)
def test_a_gap_before_a_standalone_packet_starts_a_unit(codec: str) -> None:
    """The documented limit of loss detection: the packet after a gap starts the next unit if it can."""
    slice_ = nal(codec, OTHER[codec][0])
    dep = depayloader(codec)
    out = push_all(dep, [(0, 0, True, slice_), (2, 3000, True, slice_)])  # seq 1 (3000's SEI) lost
    assert got(out) == [(SC + slice_, False, 0), (SC + slice_, False, 3000)] and dep.dropped == 0


@pytest.mark.parametrize("codec", CODECS)
def test_a_fragment_without_its_start_drops_its_unit(codec: str) -> None:
    parts = fragments(codec, nal(codec, OTHER[codec][0], bytes(100)), 40)
    dep = depayloader(codec)
    out = push_all(dep, [(5, 7, False, parts[1]), (6, 7, True, parts[2]), (7, 8, True, nal(codec, KEY[codec][0]))])
    assert got(out) == [(SC + nal(codec, KEY[codec][0]), True, 8)] and dep.dropped == 1


@pytest.mark.parametrize("codec", CODECS)
def test_a_new_timestamp_ends_the_unit_without_a_marker(codec: str) -> None:
    a, b = nal(codec, OTHER[codec][0], b"a"), nal(codec, OTHER[codec][0], b"b")
    dep = depayloader(codec)
    assert push_all(dep, [(65535, 2**32 - 1, False, a), (0, 2**32 - 1, False, b)]) == []
    assert got(push_all(dep, [(1, 10, False, b)])) == [(SC + a + SC + b, False, 2**32 - 1)]
    assert got(push_all(dep, [(2, 10, True, a)])) == [(SC + b + SC + a, False, 10)]


@pytest.mark.parametrize(("codec", "payload"), [
    ("h264", bytes([25, 0, 2, 0x41, 0x42])),  # STAP-B
    ("h264", bytes([26]) + bytes(8)), ("h264", bytes([27]) + bytes(8)),  # MTAPs
    ("h264", bytes([29, 0x81, 0x42])),  # FU-B
    ("h264", b"\x00\x42"), ("h264", b"\x1e\x42"), ("h264", b"\x1f\x42"),
    ("h264", bytes([24, 0, 9, 0x41])),  # STAP-A size past the end
    ("h264", bytes([24, 0, 2, 0x41, 0x42, 0])),  # a stray byte after the last unit
    ("h264", bytes([24, 0, 1, 0x18])),  # STAP-A in a STAP-A
    ("h264", bytes([24, 0, 0])),  # an empty unit
    ("h264", bytes([28])),  # FU-A without its header
    ("h264", bytes([28, 0x80 | 28, 1])),  # FU-A of an FU-A
    ("h265", bytes([50 << 1, 1, 0, 0])),  # PACI
    ("h265", bytes([63 << 1, 1, 0, 0])),
    ("h265", b"\x02"),  # a 1-byte NAL header
    ("h265", bytes([48 << 1, 1, 0, 1, 2])),  # an AP unit of 1 byte
    ("h265", bytes([48 << 1, 1, 0, 5, 2, 1])),  # an AP size past the end
    ("h265", bytes([49 << 1, 1])),  # FU without its header
    ("h265", bytes([49 << 1, 1, 0x80 | 48, 1])),  # FU of an AP
])
def test_a_malformed_or_unsupported_packet_drops_its_unit(codec: str, payload: bytes) -> None:
    good = nal(codec, OTHER[codec][0])
    dep = depayloader(codec)
    out = push_all(dep, [(1, 1, False, good), (2, 1, False, payload), (3, 1, True, good), (4, 2, True, good)])
    assert got(out) == [(SC + good, False, 2)] and dep.dropped == 1


@pytest.mark.parametrize("codec", CODECS)
def test_fragmented_unit_interrupted_or_unfinished_drops_its_unit(codec: str) -> None:
    parts = fragments(codec, nal(codec, OTHER[codec][0], bytes(100)), 40)
    good = nal(codec, OTHER[codec][0])
    dep = depayloader(codec)
    out = push_all(dep, [(1, 1, False, parts[0]), (2, 1, True, good),  # a single unit inside a fragmented one
                         (3, 2, False, parts[0]), (4, 2, True, parts[1]),  # marker before the last fragment
                         (5, 3, False, parts[0]), (6, 4, True, good)])  # new timestamp before the last fragment
    assert got(out) == [(SC + good, False, 4)] and dep.dropped == 3
    other = fragments(codec, nal(codec, OTHER[codec][1], bytes(100)), 40)
    out = push_all(dep, [(7, 5, False, parts[0]), (8, 5, False, parts[0]), (9, 5, False, parts[1]),
                         (10, 5, True, parts[2]),  # a second start inside a fragmented unit
                         (11, 6, False, parts[0]), (12, 6, False, parts[1]), (13, 6, True, other[2]),  # other's end
                         (14, 7, True, good)])
    assert got(out) == [(SC + good, False, 7)] and dep.dropped == 5


@pytest.mark.parametrize("codec", CODECS)
def test_duplicates_and_old_packets_are_ignored_and_a_restarted_sequence_is_followed(codec: str) -> None:
    a = nal(codec, OTHER[codec][0], b"a")
    dep = depayloader(codec)
    out = push_all(dep, [(100, 1, True, a), (100, 2, True, a), (60, 3, True, a), (101, 4, True, a)])
    assert got(out) == [(SC + a, False, 1), (SC + a, False, 4)]
    # 30000 behind: one such packet is ignored as very late, the next in sequence after it means a restart
    back = (101 - 30000) % 65536
    out = push_all(dep, [(back, 5, True, a), (back + 1, 6, True, a), (back + 2, 7, True, a)])
    assert got(out) == [(SC + a, False, 6), (SC + a, False, 7)] and dep.dropped == 0


@pytest.mark.parametrize("codec", CODECS)
def test_units_over_the_bounds_are_dropped_and_the_next_one_comes_through(codec: str) -> None:
    small = nal(codec, OTHER[codec][0])
    dep = depayloader(codec)
    out = push_all(dep, [(i, 1, False, small) for i in range(MAX_NALS + 1)])  # one unit too many
    assert out == [] and dep.dropped == 1  # at once: the unit is not kept to its end
    assert push_all(dep, [(MAX_NALS + 1, 1, True, small)]) == [] and dep.dropped == 1
    out = push_all(dep, [(MAX_NALS + 2 + i, 2, i == MAX_NALS - 1, small) for i in range(MAX_NALS)])
    assert len(out) == 1 and len(out[0].data) == MAX_NALS * (4 + len(small)) and dep.dropped == 1
    huge = nal(codec, OTHER[codec][0], bytes(MAX_AU_BYTES + 200_000))  # in fragments of 64 KB
    parts = fragments(codec, huge, 65000)
    seq = 2 * MAX_NALS + 2
    out = push_all(dep, [(seq + i, 3, False, p) for i, p in enumerate(parts[:-1])])
    assert out == [] and dep.dropped == 2  # at once: the fragments are not kept to the end
    assert push_all(dep, [(seq + len(parts) - 1, 3, True, parts[-1])]) == [] and dep.dropped == 2
    out = push_all(dep, [(seq + len(parts), 4, True, small)])
    assert got(out) == [(SC + small, False, 4)] and dep.dropped == 2


# --- parameter sets ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("codec", CODECS)
def test_key_units_get_the_sdp_parameter_sets_and_then_the_newest_in_band(codec: str) -> None:
    sdp = [nal(codec, t, b"sdp") for t in PS[codec]]
    key, other = nal(codec, KEY[codec][0]), nal(codec, OTHER[codec][0])
    aud = nal(codec, AUD[codec], b"\x10")
    new = nal(codec, PS[codec][-2], b"new")  # an SPS
    dep = depayloader(codec, sdp)
    out = push_all(dep, [(1, 1, True, key), (2, 2, True, other), (3, 3, False, aud), (4, 3, True, key),
                         (5, 4, False, new), (6, 4, True, key), (7, 5, True, key)])
    with_new = [new if nal_type(codec, s) == nal_type(codec, new) else s for s in sdp]
    assert got(out) == [(annexb(sdp + [key]), True, 1), (annexb([other]), False, 2),
                        (annexb([aud] + sdp + [key]), True, 3),
                        (annexb(with_new + [key]), True, 4),  # the SPS it had stays in its place
                        (annexb(with_new + [key]), True, 5)]


@pytest.mark.parametrize("codec", CODECS)
def test_a_unit_with_some_parameter_sets_gets_the_others_in_decoding_order(codec: str) -> None:
    sdp = [nal(codec, t, b"sdp") for t in PS[codec]]
    key = nal(codec, KEY[codec][0])
    last = nal(codec, PS[codec][-1], b"in band")  # a PPS alone
    dep = depayloader(codec, sdp)
    out = push_all(dep, [(1, 1, False, last), (2, 1, True, key)])
    assert got(out) == [(annexb(sdp[:-1] + [last, key]), True, 1)]
    dep = depayloader(codec, sdp)
    first = nal(codec, PS[codec][0], b"in band")  # an SPS (H.264) or VPS (H.265) alone
    out = push_all(dep, [(1, 1, False, aggregate(codec, [first, key])), (2, 1, True, key)])
    assert got(out) == [(annexb([first] + sdp[1:] + [key, key]), True, 1)]


@pytest.mark.parametrize("codec", CODECS)
def test_parameter_sets_over_64_kb_or_of_other_types_are_not_remembered(codec: str) -> None:
    huge = nal(codec, PS[codec][0], bytes(64 * 1024))
    key, other = nal(codec, KEY[codec][0]), nal(codec, OTHER[codec][0])
    dep = depayloader(codec, [huge, other, b""])
    parts = fragments(codec, huge, 1400)
    out = push_all(dep, [(i, 1, False, p) for i, p in enumerate(parts)] + [(len(parts), 2, True, key)])
    assert got(out) == [(SC + huge, False, 1), (SC + key, True, 2)]


# --- SDP -------------------------------------------------------------------------------------------------------

H264_FMTP = "packetization-mode=1;profile-level-id=42e01f;sprop-parameter-sets=Z0IAH5WoFAFuQA==,aM48gA=="
H265_FMTP = ("profile-space=0;profile-id=1;tier-flag=0;level-id=93;interop-constraints=B00000000000;"
             "sprop-vps=QAEMAf//AWAAAAMAsAAAAwAAAwBdLAUg;"
             "sprop-sps=QgEBAWAAAAMAsAAAAwAAAwBdoAWCAeFja5JMvTcBAQEAgA==;"
             "sprop-pps=RAHA8vA8kA==")


def test_parameter_sets_of_real_fmtp_lines() -> None:
    assert [nal_type("h264", n) for n in parameter_sets("h264", H264_FMTP)] == [7, 8]
    assert parameter_sets("h264", H264_FMTP)[1] == b"\x68\xce\x3c\x80"
    assert [nal_type("h265", n) for n in parameter_sets("h265", H265_FMTP)] == [32, 33, 34]
    reordered = ";".join(reversed(H265_FMTP.split(";")))
    assert parameter_sets("h265", reordered) == parameter_sets("h265", H265_FMTP)  # VPS, SPS, PPS whatever the order
    assert unsupported("h264", H264_FMTP) == "" and unsupported("h265", H265_FMTP) == ""
    assert len(parameter_sets("h264", "96 " + H264_FMTP)) == 2  # a leading payload type is tolerated
    unpadded = "sprop-parameter-sets=Z0IAH5WoFAFuQA,!!,aM48gA,="
    assert parameter_sets("h264", unpadded) == parameter_sets("h264", H264_FMTP)
    assert parameter_sets("h265", "sprop-sps=QgEB") == [b"\x42\x01\x01"] and parameter_sets("h265", "") == []


@pytest.mark.parametrize(("codec", "fmtp", "refused"), [
    ("h264", "packetization-mode=2;sprop-interleaving-depth=4", True),
    ("h264", " Packetization-Mode = 2 ", True),
    ("h264", "packetization-mode=7", True),
    ("h264", "packetization-mode=0", False),
    ("h264", "packetization-mode=1", False),
    ("h264", "", False),
    ("h265", "sprop-max-don-diff=2", True),
    ("h265", "sprop-max-don-diff=x", True),
    ("h265", "sprop-max-don-diff=\u00b2", True),  # a digit to str.isdigit, not to int()
    ("h265", "sprop-max-don-diff=0;sprop-depack-buf-nalus=0", False),
    ("h265", "tx-mode=MSM", True),
    ("h265", "tx-mode=SRST", False),
    ("vp8", "", True),
])
def test_unsupported_names_interleaved_and_donl_streams(codec: str, fmtp: str, refused: bool) -> None:
    assert bool(unsupported(codec, fmtp)) is refused


def test_unsupported_says_why() -> None:
    assert "interleaved" in unsupported("h264", "packetization-mode=2")
    assert "DONL" in unsupported("h265", "sprop-max-don-diff=1") and "MSM" in unsupported("h265", "tx-mode=MSM")


fmtp_values = st.text(max_size=30) | st.sampled_from(["0", "1", "2", "", "=", ",", "Z0IAH5WoFAFuQA==", "QAEM,"])
fmtp_names = st.sampled_from(["packetization-mode", "sprop-parameter-sets", "sprop-vps", "sprop-sps", "sprop-pps",
                              "sprop-max-don-diff", "tx-mode", "profile-level-id"]) | st.text(max_size=10)


@SOME
@given(codec=st.sampled_from(CODECS), fmtp=st.text(max_size=200) | st.lists(
    st.tuples(fmtp_names, st.sampled_from("= :"), fmtp_values).map("".join), max_size=8).map(";".join))
def test_fmtp_of_any_text_never_raises(codec: str, fmtp: str) -> None:
    sets = parameter_sets(codec, fmtp)
    assert all(isinstance(n, bytes) and n for n in sets)
    assert isinstance(unsupported(codec, fmtp), str)
    depayloader(codec, sets)


@SOME
@given(codec=st.sampled_from(CODECS), groups=st.lists(st.lists(st.binary(min_size=1, max_size=40), max_size=3),
                                                      min_size=3, max_size=3),
       strip=st.booleans(), junk=st.booleans())
def test_parameter_sets_decode_every_valid_entry_in_order(codec: str, groups: list[list[bytes]], strip: bool,
                                                          junk: bool) -> None:
    def field(values: list[bytes]) -> str:
        texts = [base64.b64encode(v).decode().rstrip("=" if strip else "") for v in values]
        return ",".join(texts + (["%%"] if junk else []))
    if codec == "h264":
        fmtp, want = f"packetization-mode=1;sprop-parameter-sets={field(groups[0])}", groups[0]
    else:
        fmtp = f"sprop-pps={field(groups[2])};sprop-sps={field(groups[1])};sprop-vps={field(groups[0])}"
        want = groups[0] + groups[1] + groups[2]
    assert parameter_sets(codec, fmtp) == want


def test_only_h264_and_h265_have_a_depayloader() -> None:
    assert depayloader("h264").codec == "h264" and depayloader("H265").codec == "h265"
    with pytest.raises(ValueError):
        depayloader("mjpeg")
    with pytest.raises(ValueError):
        parameter_sets("vp8", "")


# --- Timeline --------------------------------------------------------------------------------------------------

@SOME
@given(start=st.integers(0, 2**32 - 1) | st.integers(2**32 - 10**6, 2**32 - 1),
       steps=st.lists(st.integers(0, 10**6), max_size=40), rate=st.sampled_from([90000, 8000, 1000]))
def test_timeline_unwraps_monotone_timestamps(start: int, steps: list[int], rate: int) -> None:
    line = Timeline(rate)
    assert line.ns(start) == 10_000_000_000
    ts, total, last = start, 0, 10_000_000_000
    for step in steps:
        ts, total = (ts + step) % 2**32, total + step
        now = line.ns(ts)
        assert now >= last and now == 10_000_000_000 + total * 1_000_000_000 // rate
        last = now


@SOME
@given(start=st.integers(0, 2**32 - 1), ahead=st.integers(1, 10**6), back=st.integers(1, 90000))
def test_timeline_keeps_a_slightly_earlier_timestamp_earlier(start: int, ahead: int, back: int) -> None:
    line = Timeline()
    line.ns(start)
    later = line.ns((start + ahead) % 2**32)
    earlier = line.ns((start + ahead - back) % 2**32)
    assert earlier < later and later - earlier == pytest.approx(back * 1e9 / 90000, abs=1)
    assert line.ns((start + ahead) % 2**32) == later


def test_timeline_clamps_at_zero_and_refuses_a_bad_clock() -> None:
    line = Timeline(offset_ns=1000)
    line.ns(5)
    assert line.ns(0) == 0
    with pytest.raises(ValueError):
        Timeline(0)
