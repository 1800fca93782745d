"""The JPEG cache of frames (frames.EncodeBudget): bounded per frame and in all, keyed by the output
size so a request above the frame never upscales nor adds a copy. Pure: a fake encoder, no servers."""

from __future__ import annotations

import gc
import threading
from typing import Any

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from rtsp2jpg.capture.frames import EncodeBudget, Frame, FrameSlot, fit_size

W, H = 640, 360


class FakeEncoder:
    """Bytes whose length is the output area / `ratio`, recording every call (after fit_size)."""

    def __init__(self, ratio: int = 100) -> None:
        self.ratio = ratio
        self.calls: list[tuple[int, int, int]] = []
        self.lock = threading.Lock()

    def __call__(self, image: Any, q: int, width: int, height: int) -> bytes:
        h, w = image.shape[:2]
        out = fit_size(w, h, width, height)
        with self.lock:
            self.calls.append((q, *out))
        return b"%d:%dx%d:" % (q, *out) + b"x" * (out[0] * out[1] // self.ratio)


def frame(budget: EncodeBudget, seq: int = 1) -> Frame:
    return Frame(seq, np.zeros((H, W, 3), np.uint8), 0.0, budget)


def test_fit_size_keeps_the_aspect_ratio_and_never_enlarges():
    assert fit_size(W, H) == (W, H)
    assert fit_size(W, H, 320) == (320, 180)
    assert fit_size(W, H, 0, 90) == (160, 90)
    assert fit_size(W, H, 320, 5000) == (320, 180)  # fits both: the tighter one wins
    assert fit_size(W, H, 641) == fit_size(W, H, 8192, 8192) == (W, H)
    assert fit_size(W, H, 1, 1) == (1, 1)


def test_sizes_above_the_frame_share_the_full_size_encoding():
    budget, encode = EncodeBudget(), FakeEncoder()
    f = frame(budget)
    full = f.jpeg(encode, 80)
    for width, height in ((641, 0), (0, 361), (8192, 8192), (W, H), (1000, 400)):
        assert f.jpeg(encode, 80, width, height) is full
    assert encode.calls == [(80, W, H)]
    assert budget.entries() == 1


def test_a_frame_keeps_only_its_most_recently_used_encodings():
    budget, encode = EncodeBudget(per_frame=4), FakeEncoder()
    f = frame(budget)
    for width in (100, 200, 300, 400):
        f.jpeg(encode, 80, width)
    f.jpeg(encode, 80, 100)  # used again: 200 is now the oldest
    f.jpeg(encode, 80, 500)
    assert budget.entries() == 4
    encode.calls.clear()
    f.jpeg(encode, 80, 100)
    f.jpeg(encode, 80, 200)
    assert encode.calls == [(80, 200, 112)], "only the evicted size is encoded again"


def test_the_byte_budget_evicts_the_least_recently_used_of_any_frame():
    encode = FakeEncoder(ratio=1)  # 640x360 -> ~230 KB
    budget = EncodeBudget(max_bytes=3 * W * H // 2)  # room for one full-size encoding plus change
    a, b = frame(budget, 1), frame(budget, 2)
    a.jpeg(encode, 80)
    b.jpeg(encode, 80)  # does not fit next to a's: a's goes
    assert budget.bytes <= budget.max_bytes and budget.entries() == 1
    encode.calls.clear()
    b.jpeg(encode, 80)
    a.jpeg(encode, 80)
    assert encode.calls == [(80, W, H)]


def test_an_encoding_larger_than_the_budget_is_served_but_not_cached():
    encode = FakeEncoder(ratio=1)
    budget = EncodeBudget(max_bytes=1000)
    f = frame(budget)
    small = f.jpeg(encode, 80, 16)
    big = f.jpeg(encode, 80)
    assert len(big) > 1000 and budget.entries() == 1 and budget.bytes == len(small)
    assert f.jpeg(encode, 80) == big and len(encode.calls) == 3


def test_a_dead_frame_gives_its_bytes_back():
    budget, encode = EncodeBudget(), FakeEncoder()
    f = frame(budget)
    for width in (100, 200, 0):
        f.jpeg(encode, 80, width)
    assert budget.entries() == 3
    del f
    gc.collect()
    assert budget.entries() == 0 and budget.bytes == 0


def test_two_readers_of_one_frame_wait_for_one_encode():
    budget, encode = EncodeBudget(), FakeEncoder()
    f = frame(budget)
    start = threading.Barrier(8)

    def read() -> None:
        start.wait()
        f.jpeg(encode, 70, 320)

    threads = [threading.Thread(target=read) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert encode.calls == [(70, 320, 180)]


def test_a_slot_made_alone_has_its_own_budget_and_a_service_shares_one():
    shared = EncodeBudget()
    assert FrameSlot(shared).budget is FrameSlot(shared).budget is shared
    assert FrameSlot().budget is not FrameSlot().budget


sizes = st.tuples(st.integers(1, 100), st.integers(0, 8192), st.integers(0, 8192))


@settings(max_examples=100, deadline=None)
@given(requests=st.lists(st.tuples(st.integers(0, 3), sizes), min_size=1, max_size=60),
       budget_kb=st.integers(1, 400), per_frame=st.integers(1, 6))
def test_the_cache_never_exceeds_its_budget_and_answers_like_the_encoder(requests, budget_kb, per_frame):
    encode = FakeEncoder(ratio=4)
    budget = EncodeBudget(max_bytes=budget_kb * 1024, per_frame=per_frame)
    frames = [frame(budget, seq) for seq in range(4)]
    for which, (q, width, height) in requests:
        f = frames[which]
        data = f.jpeg(encode, q, width, height)
        assert data == encode(f.image, q, width, height)  # the right size, cached or not
        if width >= W and height >= H or (width >= W and not height) or (height >= H and not width):
            assert data == f.jpeg(encode, q)  # above the frame: the frame-size encoding
        assert budget.bytes <= budget.max_bytes
        assert budget.bytes == sum(budget._lru.values())
        assert all(len(e) <= per_frame for e in budget._frames.values())
