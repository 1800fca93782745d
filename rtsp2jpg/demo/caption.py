"""The demo picture's human-readable caption: the clock (local time, ms) and the frame number, drawn
beside the machine-readable time code so a newcomer sees what the code says.

A 5x7 dot font of the few characters needed, scaled once into boolean glyphs; drawing a frame's
caption is ~20 numpy slice assignments into the luma plane (no cv2: the demo needs numpy alone).
"""

from __future__ import annotations

import time

import numpy as np

_FONT = {  # 5 columns x 7 rows, '#' = a dot
    "0": ".###.#...##..###.#.###..##...#.###.",
    "1": "..#...##....#....#....#....#...###.",
    "2": ".###.#...#....#...#...#...#...#####",
    "3": "####.....#....#.###.....#....#####.",
    "4": "...#...##..#.#.#..#.#####...#....#.",
    "5": "######....####.....#....##...#.###.",
    "6": "..##..#...#....####.#...##...#.###.",
    "7": "#####....#...#...#...#....#....#...",
    "8": ".###.#...##...#.###.#...##...#.###.",
    "9": ".###.#...##...#.####....#...#..##..",
    ":": ".......#....#.........#....#.......",
    ".": "..........................##...##..",
    "f": "..##..#..#.#...###...#....#....#...",
    "r": "..........#.##.##..##....#....#....",
    "a": "...........###.....#.#####...#.####",
    "m": "..........##.#.#.#.##.#.##.#.##.#.#",
    "e": "...........###.#...#######.....###.",
    " ": "",
}
_COLS, _ROWS = 5, 7
_Y_TEXT, _Y_BACK = 235, 16  # limited-range luma: white on black


def _glyph(pattern: str, scale: int) -> np.ndarray:
    dots = np.array([c == "#" for c in pattern.ljust(_COLS * _ROWS, ".")], dtype=bool).reshape(_ROWS, _COLS)
    return dots.repeat(scale, 0).repeat(scale, 1)


class Caption:
    """Draws `HH:MM:SS.mmm` and `frame N` into an I420 frame's planes at (x, y), if they fit."""

    CHARS = 12  # the longest line: "21:30:05.123"

    def __init__(self, x: int, y: int, width: int, height: int) -> None:
        self.scale = max(2, min(6, (width - x - 8) // (self.CHARS * (_COLS + 1))))
        self.step = (_COLS + 1) * self.scale
        self.line = (_ROWS + 3) * self.scale
        self.x, self.y = x + (x & 1), y + (y & 1)  # even: whole chroma samples
        self.box = (self.CHARS * self.step + self.scale, 2 * self.line + self.scale)
        self.fits = self.x + self.box[0] <= width and self.y + self.box[1] <= height
        self._glyphs = {c: _glyph(p, self.scale) for c, p in _FONT.items()}

    def lines(self, ms: int, frame: int) -> tuple[str, str]:
        seconds = ms // 1000
        return time.strftime("%H:%M:%S", time.localtime(seconds)) + f".{ms % 1000:03d}", f"frame {frame}"

    def draw(self, y_plane: np.ndarray, u: np.ndarray, v: np.ndarray, ms: int, frame: int) -> None:
        if not self.fits:
            return
        bw, bh = self.box
        y_plane[self.y: self.y + bh, self.x: self.x + bw] = _Y_BACK
        u[self.y // 2: (self.y + bh) // 2, self.x // 2: (self.x + bw) // 2] = 128
        v[self.y // 2: (self.y + bh) // 2, self.x // 2: (self.x + bw) // 2] = 128
        for row, text in enumerate(self.lines(ms, frame)):
            top = self.y + self.scale + row * self.line
            for i, ch in enumerate(text[: self.CHARS]):
                glyph = self._glyphs.get(ch)
                if glyph is None:
                    continue
                left = self.x + self.scale + i * self.step
                region = y_plane[top: top + glyph.shape[0], left: left + glyph.shape[1]]
                region[glyph] = _Y_TEXT
