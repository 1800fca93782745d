"""An SDP a=fmtp line's codec parameters (RFC 6184, RFC 7798): the parameter sets a decoder starts
with, and whether depay.py can take the stream's packetization at all.
"""

from __future__ import annotations

import base64
import binascii
import re

_PT_PREFIX = re.compile(r"^\s*\d+\s+")
_CODECS = ("h264", "h265")


def _fmtp(fmtp: str) -> dict[str, str]:
    """An a=fmtp value's parameters, names lower-case (a leading payload type is tolerated)."""
    params: dict[str, str] = {}
    for item in _PT_PREFIX.sub("", fmtp).split(";"):
        name, sep, value = item.partition("=")
        if sep and name.strip():
            params[name.strip().lower()] = value.strip()
    return params


def _decode(value: str) -> list[bytes]:
    nals = []
    for part in value.split(","):
        part = "".join(part.split())
        try:
            nal = base64.b64decode(part + "=" * (-len(part) % 4), validate=True)
        except (binascii.Error, ValueError):
            continue
        if nal:
            nals.append(nal)
    return nals


def parameter_sets(codec: str, fmtp: str) -> list[bytes]:
    """The parameter-set NAL units from an SDP a=fmtp value (the part after the payload type, e.g.
    'packetization-mode=1;profile-level-id=42e01f;sprop-parameter-sets=Z0IAH5WoFAFuQA==,aM48gA=='),
    base64-decoded; for h265 the order is VPS, SPS, PPS (sprop-vps, sprop-sps, sprop-pps, each may hold
    several comma-separated). Bad base64 or missing fields -> those sets are skipped (never an exception);
    a codec other than h264/h265 is a ValueError."""
    name = codec.lower()
    if name not in _CODECS:
        raise ValueError(f"no parameter sets for codec {codec!r} (h264, h265)")
    fields = ("sprop-parameter-sets",) if name == "h264" else ("sprop-vps", "sprop-sps", "sprop-pps")
    params = _fmtp(fmtp)
    return [nal for field in fields for nal in _decode(params.get(field, ""))]


def unsupported(codec: str, fmtp: str) -> str:
    """Why this depayloader cannot take the stream, "" if it can: H.264 packetization-mode=2 (interleaved)
    and H.265 sprop-max-don-diff > 0 (DONL fields) are not supported; the caller then uses another receiver."""
    name = codec.lower()
    if name not in _CODECS:
        return f"codec {codec!r} is not h264 or h265"
    params = _fmtp(fmtp)
    if name == "h264":
        mode = params.get("packetization-mode", "0") or "0"
        if mode == "2":
            return "H.264 packetization-mode=2 (interleaved) is not supported"
        if mode not in ("0", "1"):
            return f"H.264 packetization-mode={mode[:20]!r} is unknown"
        return ""
    don = params.get("sprop-max-don-diff", "0") or "0"
    if not (don.isascii() and don.isdigit()) or len(don) > 6:
        return f"H.265 sprop-max-don-diff={don[:20]!r} is not a number"
    if int(don) > 0:
        return f"H.265 sprop-max-don-diff={int(don)} (DONL fields) is not supported"
    if params.get("tx-mode", "SRST").upper() not in ("", "SRST"):
        return "H.265 multi-stream transmission (tx-mode MSM) is not supported"
    return ""
