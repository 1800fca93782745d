"""Pictures kept as YUV planes: JPEGs straight from I420 (libturbojpeg) match OpenCV's through BGR.

Real libjpeg-turbo and real OpenCV on synthetic pictures; the picture is made as a decoder makes
it (limited-range I420 from BGR), so a wrong range, plane order or size shows up as a lost PSNR.
"""

from __future__ import annotations

import gc
import threading

import cv2
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rtsp2jpg.capture import exif, opencv, turbo
from rtsp2jpg.capture.frames import Frame, bgr_of, fit_size, looks_blank, size_of
from rtsp2jpg.capture.opencv import YuvPicture, encode_jpeg
from tests.support.exif_reader import read_exif, text


def scene(width: int, height: int, seed: int = 1) -> np.ndarray:
    """Gradients, edges and noise: a picture where colour, range and plane mistakes all cost PSNR."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width]
    image = np.dstack([(xx * 255 // max(1, width - 1)), (yy * 255 // max(1, height - 1)),
                       ((xx + yy) % 64) * 4]).astype(np.float32)
    image += rng.normal(0, 6, image.shape)
    cv2.rectangle(image, (width // 4, height // 4), (width // 2, height // 2), (20, 200, 240), -1)
    return np.clip(image, 0, 255).astype(np.uint8)


def as_decoder_gives(bgr: np.ndarray, fmt: str = "I420") -> YuvPicture:
    """The limited-range planes a video decoder hands over for this picture."""
    i420 = cv2.cvtColor(bgr, cv2.COLOR_BGR2YUV_I420)
    if fmt == "I420":
        return YuvPicture(i420, "I420")
    h, w = bgr.shape[:2]
    u, v = i420[h:].reshape(2, h // 2, w // 2)
    nv12 = np.concatenate([i420[:h].reshape(-1), np.dstack([u, v]).reshape(-1)]).reshape(h * 3 // 2, w)
    return YuvPicture(nv12, "NV12")


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(((a.astype(np.float64) - b.astype(np.float64)) ** 2).mean())
    return 99.0 if mse == 0 else 10 * np.log10(255 ** 2 / mse)


def decoded(jpeg: bytes) -> np.ndarray:
    image = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
    assert image is not None, "not a JPEG"
    return image


def test_libturbojpeg_is_installed_where_the_tests_run() -> None:
    """setup.sh installs libturbojpeg0; without it every test below would check the fallback only."""
    assert turbo.available()


@settings(max_examples=25)
@given(w=st.integers(8, 200).map(lambda n: n * 2), h=st.integers(8, 120).map(lambda n: n * 2),
       quality=st.integers(40, 95), fit=st.sampled_from([0, 32, 100, 250, 400]))
def test_a_jpeg_from_planes_matches_opencvs_through_bgr(w: int, h: int, quality: int, fit: int) -> None:
    picture = as_decoder_gives(scene(w, h))
    reference = picture.bgr()  # what every reader saw before: the decoder's planes as BGR
    size = fit_size(w, h, fit, 0)
    direct = decoded(encode_jpeg(picture, quality, fit, 0))
    through_bgr = decoded(encode_jpeg(reference, quality, fit, 0))
    assert direct.shape[:2] == through_bgr.shape[:2] == (size[1], size[0])
    if size != (w, h):  # scaled per plane instead of in BGR: compared with the picture scaled in BGR
        reference = cv2.resize(reference, size, interpolation=cv2.INTER_AREA)
    # Same planes, same quantisation: as close to the picture as OpenCV's JPEG is (colour, range,
    # plane order or a size mistake would cost 10 dB and more).
    assert psnr(direct, reference) > psnr(through_bgr, reference) - (1.0 if size == (w, h) else 2.5)


def test_the_planes_path_is_the_one_taken_and_keeps_the_range(monkeypatch: pytest.MonkeyPatch) -> None:
    """A limited-range picture encoded as if it were full range looks washed out (26 dB here, measured);
    with the lookup table it is as close as OpenCV's JPEG (41 dB)."""
    calls: list[tuple[int, int]] = []
    real = turbo.encode_i420
    monkeypatch.setattr(turbo, "encode_i420", lambda planes, w, h, q: calls.append((w, h)) or real(planes, w, h, q))
    picture = as_decoder_gives(scene(320, 240))
    jpeg = encode_jpeg(picture, 85)
    assert calls == [(320, 240)]
    reference = picture.bgr()
    assert psnr(decoded(jpeg), reference) > psnr(decoded(encode_jpeg(reference, 85)), reference) - 1.0
    black = as_decoder_gives(np.zeros((16, 16, 3), np.uint8))  # Y = 16: black, not dark grey
    assert decoded(encode_jpeg(black, 95)).max() <= 4


@pytest.mark.parametrize("case", ["nv12", "odd size", "webp", "stamp", "no library"])
def test_everything_else_goes_through_bgr(case: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(turbo, "encode_i420", lambda *a: pytest.fail("took the planes path"))
    fmt, stamp, width = "jpeg", "", 0
    picture = as_decoder_gives(scene(320, 240), "NV12" if case == "nv12" else "I420")
    if case == "odd size":
        width = 161  # 161 x 121: I420 needs even sizes
    elif case == "webp":
        fmt = "webp"
    elif case == "stamp":
        stamp = "2026-12-03 10:00:00.000 cam"
    elif case == "no library":
        monkeypatch.setattr(turbo, "available", lambda: False)
    data = encode_jpeg(picture, 85, width, 0, fmt=fmt, stamp=stamp)
    assert decoded(data).shape[:2] == ((121, 161) if width else (240, 320))
    assert data == encode_jpeg(picture.bgr(), 85, width, 0, fmt=fmt, stamp=stamp)  # exactly OpenCV's


def test_a_frame_of_planes_holds_no_bgr_and_serves_every_view() -> None:
    picture = as_decoder_gives(scene(640, 360))
    frame = Frame(7, picture, 1_780_000_000.25)
    assert (frame.width, frame.height) == (640, 360) and frame.pixels is picture
    assert frame.image.shape == (360, 640, 3)  # BGR made on demand, not kept
    assert frame.pixels is picture and picture.data.nbytes == 640 * 360 * 3 // 2
    jpeg = frame.jpeg(encode_jpeg, 80)
    assert text(read_exif(jpeg)[exif.TAG_SUBSEC_TIME_ORIGINAL]) == "250"  # EXIF in the planes path's JPEG too
    assert decoded(frame.jpeg(encode_jpeg, 80, 320)).shape[:2] == (180, 320)


def test_a_concealed_grey_picture_looks_blank_as_planes_too() -> None:
    grey = as_decoder_gives(np.full((64, 64, 3), 128, np.uint8))
    assert looks_blank(grey) and looks_blank(grey.bgr())
    real = as_decoder_gives(scene(64, 64))
    assert not looks_blank(real) and not looks_blank(real.bgr())


@pytest.mark.parametrize("planes", [np.zeros((10, 8), np.uint8), np.zeros((12, 9), np.uint8),
                                    np.zeros((12, 16), np.uint8)[:, ::2]], ids=["short", "long", "strided"])
def test_turbo_refuses_what_is_not_packed_i420(planes: np.ndarray) -> None:
    with pytest.raises(ValueError, match="not packed I420"):
        turbo.encode_i420(planes, 8, 8, 80)


def test_a_threads_turbojpeg_handle_is_destroyed_when_the_thread_ends(monkeypatch: pytest.MonkeyPatch) -> None:
    lib = turbo._load()
    destroyed: list[int] = []
    real = lib.tjDestroy
    monkeypatch.setattr(lib, "tjDestroy", lambda handle: destroyed.append(handle) or real(handle))
    jpegs: list[bytes] = []
    grey = np.full((12, 8), 128, np.uint8)
    worker = threading.Thread(target=lambda: jpegs.extend(turbo.encode_i420(grey, 8, 8, 80) for _ in range(3)))
    worker.start()
    worker.join()
    gc.collect()
    assert len(jpegs) == 3 and jpegs[0].startswith(b"\xff\xd8")
    assert len(destroyed) == 1  # one handle for the thread's three encodes, gone with the thread


def test_the_range_tables_are_exact_its_tables_exact() -> None:
    """16 -> 0 and 235 -> 255 (Y), 128 stays 128 (U, V): the ends of video range are JPEG's ends."""
    assert opencv._Y_FULL[16] == 0 and opencv._Y_FULL[235] == 255 and opencv._Y_FULL[0] == 0
    assert opencv._C_FULL[128] == 128 and opencv._C_FULL[16] == 0 and opencv._C_FULL[240] == 255


@given(st.integers(1, 60), st.integers(1, 40), st.sampled_from(["I420", "NV12", "BGR"]))
def test_a_pictures_size_is_the_same_in_every_layout(half_w: int, half_h: int, layout: str) -> None:
    """size_of answers for planes without converting them, and agrees with their BGR conversion."""
    w, h = 2 * half_w, 2 * half_h
    bgr = np.zeros((h, w, 3), np.uint8)
    pixels = bgr if layout == "BGR" else as_decoder_gives(bgr, layout)
    assert size_of(pixels) == (w, h)
    assert bgr_of(pixels).shape[:2] == (h, w)
    assert (Frame(1, pixels, 0.0).width, Frame(1, pixels, 0.0).height) == (w, h)
