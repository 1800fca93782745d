"""Demand-adaptive decoding's pure part (capture/gop.py): what is kept, what the decoder gets, when
decoding continues. The GStreamer half is tested against a real stream in integration/capture."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from rtsp2jpg.capture.gop import FPS_UNITS, MAX_HOLD_SEC, MIN_HOLD_SEC, Demand, GopBuffer, Target, Unit, frame_rate


def unit(key: bool, size: int = 100, pts: int | None = None) -> Unit:
    return Unit(object(), key, size, pts)


def test_nothing_is_kept_before_the_first_keyframe() -> None:
    gop = GopBuffer()
    assert not gop.add(unit(False)) and not gop.started and gop.pending() == []
    assert gop.add(unit(True)) and gop.started and len(gop.pending()) == 1


def test_pending_continues_where_the_decoder_stopped_and_a_keyframe_restarts_it() -> None:
    gop = GopBuffer()
    units = [unit(True)] + [unit(False) for _ in range(4)]
    for u in units[:3]:
        gop.add(u)
    assert gop.pending() == units[:3]
    for u in units[3:]:
        gop.add(u)
    assert gop.pending() == units[3:]  # only what the decoder has not had
    assert gop.pending() == []
    key = unit(True)
    gop.add(key)
    assert gop.pending() == [key] and len(gop) == 1


def test_a_glance_takes_the_keyframe_alone_once_per_group_and_knows_its_age() -> None:
    gop = GopBuffer()
    units = [unit(True, pts=0)] + [unit(False, pts=i * 40_000_000) for i in (2, 1, 3)]  # 40 ms apart, reordered
    for u in units:
        gop.add(u)
    assert gop.keyframe_age() == 0.12  # by the newest timestamp, not the last unit's
    assert gop.pending(keyframe_only=True) == units[:1]
    assert gop.pending(keyframe_only=True) == []  # the decoder has it: a glance must decode the rest
    assert gop.pending() == units[1:]
    gop.add(unit(True, pts=None))
    assert gop.keyframe_age() == 0.0 and len(gop.pending(keyframe_only=True)) == 1
    assert GopBuffer().pending(keyframe_only=True) == [] and GopBuffer().keyframe_age() == 0.0


def test_an_oversized_group_is_dropped_until_the_next_keyframe() -> None:
    gop = GopBuffer(max_units=10, max_bytes=10_000)
    gop.add(unit(True))
    for _ in range(20):
        gop.add(unit(False))
    assert gop.overflows == 1 and len(gop) == 0 and gop.pending() == []
    gop.add(unit(True))
    assert len(gop) == 1 and gop.bytes == 100


@given(st.lists(st.tuples(st.booleans(), st.integers(1, 5000)), max_size=300),
       st.integers(1, 50), st.integers(1000, 100_000))
def test_the_buffer_stays_within_its_bounds_and_starts_at_a_keyframe(stream, max_units, max_bytes) -> None:
    gop = GopBuffer(max_units=max_units, max_bytes=max_bytes)
    handed: list[Unit] = []
    for key, size in stream:
        gop.add(unit(key, size))
        assert len(gop) <= max_units and gop.bytes <= max(max_bytes, 5000)
        if len(gop) % 3 == 0:
            handed += gop.pending()
    handed += gop.pending()
    assert all(u.size for u in handed)
    if gop.started:
        assert gop._units[0].key and sum(u.size for u in gop._units) == gop.bytes


def test_demand_holds_for_the_measured_keyframe_interval() -> None:
    now = [100.0]
    demand = Demand(lambda: now[0])
    assert not demand.continuous()  # nobody has read yet
    demand.read()
    assert not demand.continuous()  # one read is answered by a burst
    now[0] += 1.5
    demand.read()
    assert demand.continuous()  # a second within the hold: someone reads often
    now[0] += 1.9
    assert demand.continuous()
    now[0] += 0.2
    assert not demand.continuous()  # the hold ran out
    demand.read()
    assert not demand.continuous()  # and a read after it is a burst again
    demand.keyframe()
    now[0] += 4.0
    demand.keyframe()
    assert demand.hold_sec == 4.0 and not demand.continuous()
    now[0] += 100.0
    demand.keyframe()
    assert demand.hold_sec == MAX_HOLD_SEC
    now[0] += 0.1
    demand.keyframe()  # too short for a group of pictures: ignored
    assert demand.hold_sec == MAX_HOLD_SEC
    now[0] += 0.5
    demand.keyframe()
    assert demand.hold_sec == MAX_HOLD_SEC and MIN_HOLD_SEC == 1.0


def test_the_target_is_the_newest_picture_or_with_b_frames_the_one_before_the_last_unit() -> None:
    target = Target()
    assert target.after([unit(True, pts=0), unit(False, pts=40), unit(False, pts=80)]) == 80
    assert not target.reordered
    # decode order I P B: the B (pts 120) comes after the P (pts 160) it precedes
    reordered = Target()
    assert reordered.after([unit(True, pts=0), unit(False, pts=80), unit(False, pts=40)]) == 80
    assert reordered.reordered
    assert reordered.after([unit(False, pts=160)]) == 80  # the decoder holds 160 until the next unit
    assert reordered.after([unit(False, pts=120), unit(False, pts=240)]) == 160
    assert Target().after([unit(True)]) is None


def test_decoding_ahead_stops_when_the_next_keyframe_comes_before_the_next_read() -> None:
    now = [100.0]
    demand = Demand(lambda: now[0])
    assert demand.ahead()  # nothing measured yet: decode
    demand.keyframe()
    now[0] += 2.0
    demand.keyframe()  # a 2 s keyframe interval, the last at 102.0
    now[0] += 0.5
    demand.read()  # 102.5
    assert demand.ahead()  # one read: no read interval yet
    now[0] += 1.0
    demand.read()  # 103.5: reads every 1 s; the next at 104.5, the next keyframe at 104.0
    assert not demand.ahead()  # what arrives until then is never seen
    now[0] += 0.5
    demand.keyframe()  # 104.0: the group that the next read will see has begun
    assert demand.ahead()
    now[0] += 0.5
    demand.read()  # 104.5, the next at 105.5, the keyframe after 104.0 at 106.0
    assert demand.ahead()


def test_fast_readers_always_decode_ahead() -> None:
    now = [0.0]
    demand = Demand(lambda: now[0])
    for _ in range(60):  # 10 reads/s, a keyframe every 2 s
        now[0] += 0.1
        if round(now[0] * 10) % 20 == 0:
            demand.keyframe()
        demand.read()
        assert demand.ahead()


@given(fps=st.sampled_from([5, 7.5, 12.5, 15, 20, 24, 25, 29.97, 30, 50, 60]), start=st.integers(0, 2**40),
       bframes=st.integers(0, 3), extra=st.integers(0, 20))
def test_frame_rate_from_timestamps_in_decode_order(fps: float, start: int, bframes: int, extra: int) -> None:
    """A stream's rate from its units' timestamps as a 90 kHz RTP clock gives them, B-frames reordered
    (each anchor sent ahead of the B-frames shown before it); nothing until FPS_UNITS have come."""
    shown = [start + round(i * 90000 / fps) * 100000 // 9 for i in range(FPS_UNITS + extra)]
    decode_order: list[int] = []
    for at in range(0, len(shown), bframes + 1):
        group = shown[at:at + bframes + 1]
        decode_order += group[-1:] + group[:-1]
    assert frame_rate(decode_order[:FPS_UNITS - 1]) == 0.0
    assert abs(frame_rate(decode_order[:FPS_UNITS]) - fps) <= 0.01 * fps
    assert frame_rate([start] * FPS_UNITS) == 0.0


def test_frame_rate_keeps_to_the_rate_when_a_few_pictures_are_missing() -> None:
    stamps = [i * 40_000_000 for i in range(24) if i not in (3, 9, 10, 17)]  # 25 fps, four lost
    assert frame_rate(stamps[:FPS_UNITS]) == 25.0
