"""Which image format a snapshot answers in: the URL's extension if it has one, else the `Accept`
header; JPEG when neither says (the default every existing client expects). MJPEG stays JPEG.
"""

from __future__ import annotations

FORMATS = ("jpeg", "webp", "png")  # order on a tie: JPEG (by far the cheapest encode), WebP, PNG (largest)
CONTENT_TYPES = {"jpeg": "image/jpeg", "webp": "image/webp", "png": "image/png"}
EXTENSIONS = {"jpg": "jpeg", "jpeg": "jpeg", "webp": "webp", "png": "png"}
_BY_TYPE = {v: k for k, v in CONTENT_TYPES.items()}
MAX_ACCEPT = 2048  # longer headers are read this far only: parsing stays bounded


class NotAcceptable(ValueError):
    """The client excluded every format we make (`image/*;q=0`, `*/*;q=0`)."""


def _ranges(accept: str) -> list[tuple[str, float]]:
    out = []
    for item in accept[:MAX_ACCEPT].split(",")[:64]:
        media, *params = (p.strip() for p in item.split(";"))
        q = 1.0
        for p in params:
            key, _, value = p.partition("=")
            if key.strip().lower() == "q":
                try:
                    q = min(1.0, max(0.0, float(value)))
                except ValueError:
                    q = 0.0
                if q != q:  # nan
                    q = 0.0
        if media:
            out.append((media.lower(), q))
    return out


def etag(seq: int, fmt: str, stream: str = "main") -> str:
    """A snapshot's entity tag: the frame's sequence number, with the format and the stream unless JPEG
    and main (each stream counts its own frames, so a 304 must not span streams or formats)."""
    suffix = "".join(f"-{part}" for part in (stream, fmt) if part not in ("main", "jpeg"))
    return f'"{seq}{suffix}"'


def negotiate(accept: str | None) -> str:
    """The format `accept` prefers: the highest q; on a tie FORMATS order, so a browser's `<img>`
    (`image/webp,...,image/*`) keeps getting JPEG, whose encode costs ~1/30 of WebP's; `image/webp`
    alone, or above JPEG's q, gets WebP. No image type named at all: JPEG."""
    if not accept:
        return "jpeg"
    ranges = _ranges(accept)
    scores: dict[str, float] = {}
    for fmt in FORMATS:
        media = CONTENT_TYPES[fmt]
        exact = [q for m, q in ranges if m == media]
        if exact:
            scores[fmt] = exact[0]  # an explicit type's q wins over wildcards (RFC 9110 12.5.1)
            continue
        wild = [q for m, q in ranges if m in ("image/*", "*/*")]
        if wild:
            scores[fmt] = max(wild)
    if not scores:
        return "jpeg"  # e.g. `Accept: application/json` only: answer in the default anyway
    best = max(FORMATS, key=lambda f: (scores.get(f, 0.0), -FORMATS.index(f)))
    if scores.get(best, 0.0) <= 0:
        raise NotAcceptable("none of image/jpeg, image/webp, image/png is acceptable")
    return best
