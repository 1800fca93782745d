"""The one SDP reader: the first video track of a DESCRIBE reply (codec, control URL, payload type, fmtp).

probe.py wants only the codec; session.py needs the rest to SETUP the track and to start decoding at
the first keyframe with the parameter sets the SDP carries.
"""

from __future__ import annotations

from dataclasses import dataclass

ENCODINGS = {"H264": "h264", "H265": "h265", "HEVC": "h265"}


@dataclass(frozen=True)
class Track:
    codec: str  # h264 / h265; "" for a video encoding we do not know
    control: str  # the track's URL for SETUP, resolved against the base
    payload_type: int
    clock_rate: int
    fmtp: str  # the a=fmtp value after the payload type, "" if none
    aggregate: str = ""  # the session's URL for PLAY and TEARDOWN (the session-level control, else the base)


def video_track(sdp: str, base: str = "") -> Track | None:
    """The first `m=video` media of `sdp`: its first payload type with a known rtpmap (else its first),
    the control attribute resolved against `base` (Content-Base, else the request URL). None without video."""
    in_video, seen_video, in_session, payloads = False, False, True, []
    control, session_control = "", ""
    rtpmap: dict[str, tuple[str, int]] = {}
    fmtp: dict[str, str] = {}
    for raw in sdp.splitlines():
        line = raw.strip()
        if line.startswith("m="):
            if in_video:
                break  # only the first video media
            fields, in_session = line[2:].split(), False
            in_video = bool(fields) and fields[0] == "video"
            seen_video = seen_video or in_video
            payloads = [p for p in fields[3:] if p.isdigit()]
        elif in_session and line.lower().startswith("a=control:"):
            session_control = line[10:].strip()
        elif not in_video:
            continue
        elif line.lower().startswith("a=rtpmap:"):
            pt, _, rest = line[9:].partition(" ")
            encoding, _, clock = rest.strip().partition("/")
            clock = clock.split("/")[0]
            rtpmap[pt.strip()] = (encoding.strip().upper(), int(clock) if clock.isdigit() else 90000)
        elif line.lower().startswith("a=fmtp:"):
            pt, _, rest = line[7:].partition(" ")
            fmtp[pt.strip()] = rest.strip()
        elif line.lower().startswith("a=control:"):
            control = line[10:].strip()
    if not seen_video or not payloads:
        return None
    known = [p for p in payloads if rtpmap.get(p, ("", 0))[0] in ENCODINGS]
    pt = (known or payloads)[0]
    encoding, clock_rate = rtpmap.get(pt, ("", 90000))
    return Track(codec=ENCODINGS.get(encoding, ""), control=resolve(base, control),
                 payload_type=int(pt), clock_rate=clock_rate or 90000, fmtp=fmtp.get(pt, ""),
                 aggregate=resolve(base, session_control))


def resolve(base: str, control: str) -> str:
    """A control attribute as a URL: absolute as given, `*` or empty is the base, else appended to the base
    after a `/`, query and all, as FFmpeg and rtspsrc do and cameras expect
    (`rtsp://cam/realmonitor?channel=1` + `trackID=0` -> `rtsp://cam/realmonitor?channel=1/trackID=0`)."""
    if not control or control == "*":
        return base
    if "://" in control:
        return control
    return base + control if base.endswith("/") else f"{base}/{control}"
