"""The demo's time code: every frame carries its wall-clock draw time as a grid of large black/white
blocks in its top-left corner that survives H.264/H.265 and JPEG at quality 50, so tests and benchmarks
measure snapshot age end to end (``decode_stamp``). `FrameMaker` draws such frames. Needs numpy only.
"""

from __future__ import annotations

import binascii
from typing import NamedTuple

import numpy as np

from rtsp2jpg.demo.caption import Caption

# --- The time code -------------------------------------------------------------------------------
# A 16x7 grid of 16 px blocks at (16, 16) in the luma plane: one sync row (a fixed pattern, which
# also gives the decoder its black and white levels), then 96 data bits, MSB first: 48-bit epoch
# milliseconds, 32-bit frame counter, CRC-16/CCITT of those 10 bytes. 16 px blocks on a 16 px grid
# line up with H.264 macroblocks and JPEG's 8x8 blocks, so each block codes as a flat DC value.
BLOCK = 16
CODE_COLS = 16
CODE_ROWS = 7
CODE_X = CODE_Y = BLOCK
CODE_WIDTH = CODE_COLS * BLOCK
CODE_HEIGHT = CODE_ROWS * BLOCK
SYNC = np.array([1, 0, 1, 1, 0, 0, 0, 1, 1, 1, 0, 1, 0, 0, 1, 0], dtype=bool)
_Y_BLACK, _Y_WHITE, _Y_GREY = 16, 235, 128  # limited-range luma: decodes to ~0, ~255, ~128 in BGR
_MS_MASK = (1 << 48) - 1  # 48-bit milliseconds last until the year 10889
MODES = ("live", "static", "black", "frozen")  # see FrameMaker.draw
_MIN_CONTRAST = 80.0  # sync-row black/white separation below this is not our code (blank, noise)


class Stamp(NamedTuple):
    """What a frame's code says: when it was drawn (epoch seconds) and its number in the stream."""

    time: float
    frame: int


def code_bits(ms: int, frame: int) -> np.ndarray:
    """The code grid (CODE_ROWS x CODE_COLS booleans, True = white) for a capture time and frame."""
    payload = (ms & _MS_MASK).to_bytes(6, "big") + (frame & 0xFFFFFFFF).to_bytes(4, "big")
    data = payload + binascii.crc_hqx(payload, 0xFFFF).to_bytes(2, "big")
    bits = np.unpackbits(np.frombuffer(data, dtype=np.uint8)).astype(bool)
    return np.concatenate([SYNC, bits]).reshape(CODE_ROWS, CODE_COLS)


def read_code(image: np.ndarray) -> Stamp | None:
    """Read the code from a full-size decoded frame (BGR, or grey); None if no valid code is there.

    Samples the centre 8x8 of each block, takes the black/white levels from the sync row, and
    rejects the frame unless the sync pattern matches, every block is clearly black or white, and
    the CRC holds, so blank, noisy or foreign images give None rather than a wrong time.
    """
    img = np.asarray(image)
    if img.ndim not in (2, 3) or img.shape[0] < CODE_Y + CODE_HEIGHT or img.shape[1] < CODE_X + CODE_WIDTH:
        return None
    region = img[CODE_Y : CODE_Y + CODE_HEIGHT, CODE_X : CODE_X + CODE_WIDTH].astype(np.float32)
    if region.ndim == 3:
        region = region[..., :3].mean(axis=2)  # B, G, R (an alpha channel would skew the levels)
    cells = region.reshape(CODE_ROWS, BLOCK, CODE_COLS, BLOCK)
    q = BLOCK // 4
    levels = cells[:, q : BLOCK - q, :, q : BLOCK - q].mean(axis=(1, 3))
    sync = levels[0]
    white, black = sync[SYNC], sync[~SYNC]
    if white.min() - black.max() < _MIN_CONTRAST:
        return None
    threshold = (white.mean() + black.mean()) / 2
    margin = (white.mean() - black.mean()) / 4
    data = levels[1:].ravel()
    if np.any(np.abs(data - threshold) < margin):
        return None
    raw = np.packbits(data > threshold).tobytes()
    if binascii.crc_hqx(raw[:10], 0xFFFF) != int.from_bytes(raw[10:12], "big"):
        return None
    return Stamp(int.from_bytes(raw[:6], "big") / 1000.0, int.from_bytes(raw[6:10], "big"))


def decode_stamp(image: np.ndarray) -> float | None:
    """Epoch seconds at which the demo server drew this frame, or None if it carries no valid code."""
    stamp = read_code(image)
    return None if stamp is None else stamp.time


# --- Streams and frames --------------------------------------------------------------------------


def _round_up_4(n: int) -> int:
    return (n + 3) & ~3


class FrameMaker:
    """Draws I420 frames: a scrolling striped background, a moving bar and the time code.

    Everything that does not move is precomputed, so a frame costs a few numpy slice copies (the
    server must stay cheap next to the encoder in CPU benchmarks). Strides follow GStreamer's
    default I420 layout (rows padded to 4 bytes).
    """

    PERIOD = 256  # background repeats every PERIOD px horizontally, so scrolling is a slice
    SCROLL = 4  # px per frame (even, so chroma scrolls by whole samples)
    BAR = 32  # moving bar width, px
    NOISE = 12  # luma noise amplitude; see __init__
    JITTER = 32  # noise field offset range, px

    def __init__(self, width: int, height: int, mode: str = "live") -> None:
        if mode not in MODES:
            raise ValueError(f"mode must be one of {', '.join(MODES)}")
        self.width, self.height, self.mode = width, height, mode
        self._drawn = False
        ys, cs, ch = _round_up_4(width), _round_up_4((width + 1) // 2), (height + 1) // 2
        self.size = ys * height + 2 * cs * ch
        self._buf = np.empty(self.size, dtype=np.uint8)
        self._y = self._buf[: ys * height].reshape(height, ys)[:, :width]
        self._u = self._buf[ys * height : ys * height + cs * ch].reshape(ch, cs)[:, : width // 2]
        self._v = self._buf[ys * height + cs * ch :].reshape(ch, cs)[:, : width // 2]
        self._buf[:] = _Y_GREY  # padding, once

        x = np.arange(width + self.PERIOD, dtype=np.float32)
        y = np.arange(height, dtype=np.float32)[:, None]
        self._bg_y = (128 + 90 * np.sin(2 * np.pi * (x / self.PERIOD + y / 160))).astype(np.uint8)
        # Rows from here down scroll; above it the background stands still. A whole picture panning
        # is what a moved camera looks like: the image-health check rightly called it a scene change.
        self._band = (height * 3 // 5) & ~1
        cx = np.arange((width + self.PERIOD) // 2, dtype=np.float32)
        cy = np.arange(ch, dtype=np.float32)[:, None]
        self._bg_u = np.repeat((128 + 50 * np.sin(2 * np.pi * cx / (self.PERIOD / 2)))[None].astype(np.uint8), ch, 0)
        self._bg_v = (128 + 50 * np.cos(2 * np.pi * (cx / (self.PERIOD / 2) + cy / 90))).astype(np.uint8)
        # Sensor-like noise, shifted by a different offset each frame so the encoder cannot predict
        # it, so residuals look like a camera's rather than a cartoon's. Measured at 720p25: same
        # bitrate (rate control fills the budget anyway), ~20% dearer to decode, no dearer to encode.
        rng = np.random.default_rng(0)
        self._noise = rng.integers(0, self.NOISE + 1, (height + self.JITTER, width + self.JITTER), np.uint8)
        # Quiet zone: one grey block around the code, neutral chroma, so it decodes to clean grey.
        self._quiet_y = CODE_Y + CODE_HEIGHT + BLOCK, CODE_X + CODE_WIDTH + BLOCK
        # The same time and frame number in figures, right of the quiet zone (where the stream is wide enough).
        self._caption = Caption(self._quiet_y[1] + BLOCK // 2, CODE_Y, width, height)

    def draw(self, ms: int, frame: int) -> np.ndarray:
        """The frame (a reused buffer, valid until the next call) for capture time ``ms``.

        Modes, for image-health tests: ``static`` keeps the scene still (noise and clock still
        change), ``black`` draws nothing but black, ``frozen`` repeats its first frame exactly."""
        if self.mode == "black":
            self._y[:], self._u[:], self._v[:] = _Y_BLACK, 128, 128
            return self._buf
        if self.mode == "frozen" and self._drawn:
            return self._buf
        self._drawn = True
        frame_scene = 0 if self.mode == "static" else frame  # static: the scene stands, noise and code move
        off = (frame_scene * self.SCROLL) % self.PERIOD
        w, band = self.width, self._band
        # A fixed camera's view: the upper part stands, the lower part moves (a road with traffic).
        self._y[:band] = self._bg_y[:band, :w]
        self._y[band:] = self._bg_y[band:, off : off + w]
        self._u[: band // 2] = self._bg_u[: band // 2, : w // 2]
        self._u[band // 2 :] = self._bg_u[band // 2 :, off // 2 : off // 2 + w // 2]
        self._v[: band // 2] = self._bg_v[: band // 2, : w // 2]
        self._v[band // 2 :] = self._bg_v[band // 2 :, off // 2 : off // 2 + w // 2]
        bx = (frame_scene * 3 * self.SCROLL) % max(1, w - self.BAR)
        self._y[:, bx : bx + self.BAR] = _Y_WHITE
        ox, oy = frame * 7 % self.JITTER, frame * 13 % self.JITTER
        np.add(self._y, self._noise[oy : oy + self.height, ox : ox + w], out=self._y)
        qy, qx = self._quiet_y
        self._y[:qy, :qx] = _Y_GREY
        self._u[: qy // 2, : qx // 2] = 128
        self._v[: qy // 2, : qx // 2] = 128
        bits = code_bits(ms, frame)
        self._y[CODE_Y : CODE_Y + CODE_HEIGHT, CODE_X : CODE_X + CODE_WIDTH] = np.where(
            bits.repeat(BLOCK, 0).repeat(BLOCK, 1), _Y_WHITE, _Y_BLACK
        )
        self._caption.draw(self._y, self._u, self._v, ms, frame)
        return self._buf


# --- Serving --------------------------------------------------------------------------------------
