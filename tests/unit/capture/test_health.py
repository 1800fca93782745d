"""Image health on drawn demo frames: uniform, frozen and scene-change pictures are named; a live or a
still scene with sensor noise and a ticking clock never is (the false alarms the checks must avoid)."""

from __future__ import annotations

import cv2
import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from rtsp2jpg.capture.health import HealthCheck, thumbnail
from rtsp2jpg.config import HealthConfig
from rtsp2jpg.demo.timecode import FrameMaker

W, H = 320, 180
CFG = HealthConfig(frozen_sec=10, scene_hold_sec=20)


def bgr(maker: FrameMaker, i: int) -> np.ndarray:
    return cv2.cvtColor(maker.draw(1_700_000_000_000 + 40 * i, i).reshape(H * 3 // 2, W), cv2.COLOR_YUV2BGR_I420)


def run(mode: str, seconds: int = 40, step: int = 2) -> list[str | None]:
    maker, check = FrameMaker(W, H, mode), HealthCheck(CFG)
    return [check.evaluate(bgr(maker, t * 25), float(t)) for t in range(0, seconds, step)]


def test_live_and_static_scenes_raise_no_alarm():
    assert run("live") == [None] * 20
    assert run("static") == [None] * 20  # still scene: noise and the clock still change


def test_black_is_uniform_at_once():
    answers = run("black", 4)
    assert all(a and a.startswith("uniform picture") for a in answers)


def test_frozen_after_frozen_sec():
    answers = run("frozen", 30)
    assert answers[:5] == [None] * 5  # 0-8 s
    assert all(a and a.startswith("frozen picture") for a in answers[5:])  # from 10 s on


def test_a_sudden_scene_change_is_reported_for_the_hold_time_then_clears():
    live, check = FrameMaker(W, H), HealthCheck(CFG)
    assert check.evaluate(bgr(live, 0), 0.0) is None
    # The camera turned to another view: bright sky over dark ground, with texture.
    moved = np.random.default_rng(0).integers(0, 20, (H, W, 3), dtype=np.uint8)
    moved[: H // 2] += 225
    assert check.evaluate(moved, 2.0) is None  # changed: reported once the new view holds
    assert "scene change" in (check.evaluate(moved, 4.0) or "")
    assert "scene change" in (check.evaluate(moved[:, ::-1].copy(), 12.0) or "")  # still within the hold time
    assert check.evaluate(moved, 25.0) is None


def test_a_scene_that_keeps_changing_is_no_scene_change():
    """A pan or a truck passing the lens: every check differs from the last, no view holds."""
    a = np.random.default_rng(1).integers(0, 20, (H, W, 3), dtype=np.uint8)
    b = a.copy()
    a[: H // 2] += 225
    b[H // 2:] += 225
    check = HealthCheck(CFG)
    assert [check.evaluate(a if t % 2 else b, float(t)) for t in range(20)] == [None] * 20


def test_reset_forgets_a_frozen_history():
    maker, check = FrameMaker(W, H, "frozen"), HealthCheck(CFG)
    for t in range(0, 12, 2):
        check.evaluate(bgr(maker, t), float(t))
    check.reset()
    assert check.evaluate(bgr(maker, 99), 12.0) is None


@settings(max_examples=30, deadline=None)
@given(st.integers(8, 400), st.integers(8, 400), st.integers(0, 255))
def test_thumbnail_of_any_size(w, h, level):
    thumb = thumbnail(np.full((h, w, 3), level, np.uint8))
    assert thumb.shape == (9, 16) and np.allclose(thumb, level)
