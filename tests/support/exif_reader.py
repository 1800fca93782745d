"""A small EXIF reader for tests (no imaging library needed): the tags of IFD0 and the Exif IFD."""

from __future__ import annotations

import struct

from rtsp2jpg.capture import exif


def read_exif(jpeg: bytes) -> dict[int, bytes]:
    """Tag -> raw value of IFD0 and the Exif IFD of the first APP1 'Exif' segment of `jpeg`."""
    assert jpeg[:2] == b"\xff\xd8"
    at = 2
    while True:
        marker, length = jpeg[at:at + 2], struct.unpack(">H", jpeg[at + 2:at + 4])[0]
        assert marker[0] == 0xFF and marker[1] not in (0xD9, 0xDA), "no EXIF before the image data"
        if marker == b"\xff\xe1" and jpeg[at + 4:at + 10] == b"Exif\0\0":
            tiff = jpeg[at + 10:at + 2 + length]
            break
        at += 2 + length
    assert tiff[:4] == b"MM\0\x2a"
    out: dict[int, bytes] = {}

    def ifd(offset: int) -> None:
        (count,) = struct.unpack(">H", tiff[offset:offset + 2])
        for i in range(count):
            tag, kind, n, value = struct.unpack(">HHI4s", tiff[offset + 2 + 12 * i: offset + 14 + 12 * i])
            size = n * {2: 1, 4: 4, 7: 1}[kind]
            raw = value[:size] if size <= 4 else tiff[struct.unpack(">I", value)[0]:][:size]
            out[tag] = raw
            if tag == exif.TAG_EXIF_IFD:
                ifd(struct.unpack(">I", raw)[0])

    ifd(struct.unpack(">I", tiff[4:8])[0])
    return out


def text(raw: bytes) -> str:
    assert raw.endswith(b"\0")
    return raw[:-1].decode("ascii")
