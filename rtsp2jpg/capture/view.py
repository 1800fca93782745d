"""What a camera's pictures look like (Picture: masks, rotation, crop, time stamp, set per camera)
and what one request asks of a frame (View: format, quality, size, rotation, crop, time stamp).

Order, so no request can reveal a masked pixel: the camera thread fills the masks in the stream's
own picture, then applies the camera's crop and rotation, and stores that in the FrameSlot; a
request's crop and rotation then apply to the stored picture, and scaling comes last.
Pure numpy; encoding itself is opencv.py's.
"""

from __future__ import annotations

import json
import logging
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from rtsp2jpg.capture.masks import Masks, Polygon, parse_polygons

log = logging.getLogger(__name__)

ROTATIONS = (0, 90, 180, 270)
FORMATS = ("jpeg", "webp", "png")
Crop = tuple[float, float, float, float]  # x, y, width, height as fractions; () = whole picture
_CROP_DIGITS = 4  # fractions are rounded to this, so near-identical crops share one cache entry


def parse_rotate(raw: Any) -> int:
    """0, 90, 180 or 270 (clockwise degrees); ValueError otherwise."""
    if raw is None:
        return 0
    try:
        value = int(raw) if not isinstance(raw, bool) else -1
    except (TypeError, ValueError, OverflowError):  # OverflowError: inf (JSON 1e999, YAML .inf)
        value = -1
    if value not in ROTATIONS or (isinstance(raw, float) and raw != value):
        raise ValueError("must be 0, 90, 180 or 270")
    return value


def parse_crop(raw: Any) -> Crop | tuple[()]:
    """`x,y,w,h` fractions (a string or a list of 4 numbers); empty = no crop; ValueError otherwise."""
    if raw is None or raw == "" or (isinstance(raw, list | tuple) and not raw):
        return ()
    parts = re.split(r"\s*,\s*", raw.strip()) if isinstance(raw, str) else raw
    if not isinstance(parts, list | tuple) or len(parts) != 4:
        raise ValueError("must be x,y,w,h: four fractions (0-1) of the picture")
    try:
        x, y, w, h = (float(p) if not isinstance(p, bool) else math.nan for p in parts)
    except (TypeError, ValueError):
        raise ValueError("must be x,y,w,h: four fractions (0-1) of the picture") from None
    if not all(math.isfinite(v) for v in (x, y, w, h)) or min(x, y) < 0 or min(w, h) <= 0 \
            or x + w > 1 + 1e-9 or y + h > 1 + 1e-9:
        raise ValueError("must be x,y,w,h with x, y >= 0, w, h > 0, x + w <= 1 and y + h <= 1")
    return tuple(round(v, _CROP_DIGITS) for v in (x, y, w, h))  # type: ignore[return-value]


def crop_box(width: int, height: int, crop: Crop | tuple[()]) -> tuple[int, int, int, int]:
    """The crop in pixels (x0, y0, x1, y1), at least 1x1."""
    if not crop:
        return 0, 0, width, height
    x, y, w, h = crop
    x0, y0 = min(width - 1, int(x * width)), min(height - 1, int(y * height))
    x1 = max(x0 + 1, min(width, round((x + w) * width)))
    y1 = max(y0 + 1, min(height, round((y + h) * height)))
    return x0, y0, x1, y1


def transformed_size(width: int, height: int, crop: Crop | tuple[()], rotate: int) -> tuple[int, int]:
    x0, y0, x1, y1 = crop_box(width, height, crop)
    w, h = x1 - x0, y1 - y0
    return (h, w) if rotate in (90, 270) else (w, h)


def crop_rotate(image: np.ndarray, crop: Crop | tuple[()], rotate: int) -> np.ndarray:
    """`image` cropped, then rotated clockwise; a view where possible (encoders take strided arrays)."""
    if crop:
        x0, y0, x1, y1 = crop_box(image.shape[1], image.shape[0], crop)
        image = image[y0:y1, x0:x1]
    if rotate:
        image = np.rot90(image, k=-(rotate // 90))  # np.rot90 turns counter-clockwise
    return image


PICTURE_KEYS = ("privacy_masks", "rotate", "crop", "timestamp")


def parse_settings(data: Mapping[str, Any]) -> dict[str, Any]:
    """A camera's picture settings from JSON (POST /register, the registry), validated; ValueError
    names the key. Absent keys take their defaults."""
    timestamp = data.get("timestamp", False)
    if not isinstance(timestamp, bool):
        raise ValueError("timestamp: must be true or false")
    out: dict[str, Any] = {"timestamp": timestamp}
    for key, parse in (("privacy_masks", parse_polygons), ("rotate", parse_rotate), ("crop", parse_crop)):
        try:
            out[key] = parse(data.get(key))
        except ValueError as e:
            raise ValueError(f"{key}: {e}") from None
    return out


@dataclass(frozen=True)
class View:
    """One request's rendering of a frame; with the output size, the key of its cached encoding."""

    fmt: str = "jpeg"
    quality: int = 85
    width: int = 0
    height: int = 0
    rotate: int = 0
    crop: Crop | tuple[()] = ()
    stamp: bool = False


class Picture:
    """A camera's picture settings: applied once per stored frame (masks, crop, rotation) and read by
    every encode (camera id for EXIF, name and default for the drawn time stamp)."""

    def __init__(self, camera_id: str = "", name: str = "", masks: tuple[Polygon, ...] = (),
                 rotate: int = 0, crop: Crop | tuple[()] = (), timestamp: bool = False) -> None:
        self.camera_id = camera_id
        self.name = name or camera_id
        self.masks = Masks(masks)
        self.rotate = rotate
        self.crop = crop
        self.timestamp = timestamp

    @classmethod
    def from_settings(cls, camera_id: str, name: str, data: Mapping[str, Any]) -> Picture:
        s = parse_settings(data)
        return cls(camera_id, name, s["privacy_masks"], s["rotate"], s["crop"], s["timestamp"])

    @classmethod
    def from_json(cls, camera_id: str, name: str, text: str) -> Picture:
        """The registry's stored settings; unreadable ones (a damaged file) fail closed: whole picture masked."""
        try:
            data = json.loads(text)
            if not isinstance(data, dict):
                raise ValueError("not an object")
            return cls.from_settings(camera_id, name, data)
        except ValueError as e:
            log.error("%s: stored picture settings unreadable (%s); masking the whole picture until the "
                      "camera is registered again", camera_id, e)
            return cls(camera_id, name, (((0.0, 0.0), (1.0, 0.0), (1.0, 1.0), (0.0, 1.0)),))

    @property
    def changes_pixels(self) -> bool:
        return bool(self.masks) or bool(self.rotate) or bool(self.crop)

    def prepare(self, image: np.ndarray) -> np.ndarray:
        """The picture readers may see: masks filled first, then the camera's crop and rotation,
        copied into one contiguous array so every encode of it starts from the same pixels."""
        image = self.masks.apply(image)
        if self.crop or self.rotate:
            image = np.ascontiguousarray(crop_rotate(image, self.crop, self.rotate))
        return image

    def settings(self) -> dict[str, Any]:
        """As /status and the registry show them (JSON-ready)."""
        return {"privacy_masks": [[list(p) for p in poly] for poly in self.masks.polygons],
                "rotate": self.rotate, "crop": list(self.crop), "timestamp": self.timestamp}


def settings_json(settings: Mapping[str, Any]) -> str:
    """parse_settings() output as the registry stores it."""
    return json.dumps(Picture.from_settings("", "", settings).settings())


def same_settings(picture: Picture | None, settings: Mapping[str, Any]) -> bool:
    """Whether a running camera's picture is what `settings` (parse_settings output) ask for."""
    return json.loads(settings_json(settings)) == (picture or Picture()).settings()
