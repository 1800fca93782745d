"""Cameras as they are in the field, against the real demo RTSP server (issue 13, section 5).

Each kind of stream a real camera sends (B-frames with an AAC or G.711 track, H.265 with B-frames,
1080p at a camera's bitrate, a 4 s keyframe interval, 2160p, RTSP over UDP, a Digest login,
rtsps://, a size change in the session or across a restart) is read by a real Camera (or the
service) with `decoder: auto` (adaptive GStreamer where PyGObject is present) and with OpenCV's
FFmpeg backend, and must give a JPEG whose time code says it is fresh. The backend is asserted
too: a GStreamer failure must not hide behind the FFmpeg fallback. The camera restarting with the
same size is test_faults.py's (FFmpeg) and test_demo_stream.py's; here it comes back with another.
docs/cameras.md has the table these tests stand behind.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import quote

import cv2
import numpy as np
import pytest

from rtsp2jpg.capture import opencv, rtsp, sources
from rtsp2jpg.capture.camera import Camera, Status
from rtsp2jpg.config import CaptureConfig
from rtsp2jpg.demo.timecode import decode_stamp
from tests.support.rtsp_server import RtspServer, gst_rtsp_missing, self_signed_cert, wait_until

CAPS = opencv.capabilities()
_missing = gst_rtsp_missing()
pytestmark = [
    pytest.mark.skipif(bool(_missing), reason=_missing or ""),
    pytest.mark.skipif(not CAPS.direct_gstreamer or not {"avdec_h264", "avdec_h265"} <= CAPS.elements,
                       reason="needs GStreamer through PyGObject and gst-libav"),
]

STREAMS = {
    "bframes-aac": "1280x720@25:h264,bframes=2,audio=aac",  # H.264 High, B-frames, AAC: a current camera
    "hevc-bframes": "640x360@25:h265,bframes=2,audio=pcma",  # H.265 with B-frames and G.711
    "1080p": "1920x1080@25,bitrate=6000",  # a main stream at a camera's bitrate, noisy picture
    "gop4": "640x360@25,gop=4",  # a 4 s keyframe interval
    "2160p": "3840x2160@5,bitrate=8000",  # 4K at 5 fps: 25 fps is more than this 2-core box can draw and encode
    "resize": "640x360@25,resize=320x240,resize_sec=3",  # the size changes in the session every 3 s
    "plain": "640x360@25",
}
FAST = {"reconnect_delay_sec": 0.5, "reconnect_max_delay_sec": 2, "open_timeout_sec": 8, "stall_timeout_sec": 4}
# Settings per decoder path, and how the camera's backend label must start: auto with PyGObject is
# adaptive decoding (libavcodec driven directly here, else avdec_*; a hardware chain where the box has
# one), never the FFmpeg fallback.
DECODERS = {"auto": ({}, "libavcodec/" if CAPS.lavc else "gstreamer/"), "ffmpeg": ({"decoder": "ffmpeg"}, "ffmpeg")}
FRESH_SEC = 2.0  # generous: measured 0.05-0.8 s, at load 14 too (docs/cameras.md)


@pytest.fixture(scope="module")
def field() -> Iterator[RtspServer]:
    with RtspServer(STREAMS) as server:
        yield server


@pytest.fixture(autouse=True)
def _ffmpeg_options(monkeypatch: pytest.MonkeyPatch) -> None:
    """What the service sets at start (process-wide, read at each open); restored after each test."""
    monkeypatch.setenv("OPENCV_FFMPEG_CAPTURE_OPTIONS", opencv.FFMPEG_OPTIONS.format(transport="tcp"))


@contextmanager
def camera(url: str, decoder: str, **cfg: object) -> Iterator[Camera]:
    """A started Camera with the real backend (as the Service builds it), stopped afterwards."""
    config = CaptureConfig(**{**FAST, **DECODERS[decoder][0], **cfg})
    cam = Camera(f"field-{decoder}", "", url, config, sources.candidates(url, config, CAPS),
                 open_source=opencv.open_source, on_status=lambda change: None, probe=rtsp.probe,
                 diagnose=rtsp.diagnose)
    cam.start()
    try:
        yield cam
    finally:
        assert cam.stop(10), "the capture thread did not stop"


def fresh_jpeg(cam: Camera, size: tuple[int, int] | None = None, timeout: float = 30,
               within: float = FRESH_SEC) -> tuple[np.ndarray, float]:
    """Wait for a snapshot (JPEG, decoded again) whose time code reads and is at most `within` s old,
    of `size` (width, height) if given: (image, age in s). AssertionError naming the last state."""
    last: list[str] = []

    def attempt() -> tuple[np.ndarray, float] | None:
        frame = cam.snapshot(max_age=0.5, wait=2.0)
        if frame is None:
            last[:] = [f"no frame; {cam.describe()['status']}: {cam.describe()['error']}"]
            return None
        image = cv2.imdecode(np.frombuffer(frame.jpeg(opencv.encode_jpeg, 85), np.uint8), cv2.IMREAD_COLOR)
        stamp = decode_stamp(image)
        age = time.time() - stamp if stamp is not None else None
        last[:] = [f"{image.shape[1]}x{image.shape[0]}, age {age}"]
        if stamp is None or age > within or (size and (image.shape[1], image.shape[0]) != size):
            return None
        return image, age

    try:
        return wait_until(attempt, timeout, 0.1)
    except AssertionError as e:
        raise AssertionError(f"{e}: {last} ({cam.describe()})") from None


def uses(cam: Camera, decoder: str) -> bool:
    """True when the camera reads through the decoder path `decoder` names (see DECODERS)."""
    return (cam.describe()["backend"] or "").startswith(DECODERS[decoder][1])


def size_of(spec: str) -> tuple[int, int]:
    w, h = spec.split("@")[0].split("x")
    return int(w), int(h)


# --- Stream kinds x decoder paths -----------------------------------------------------------------
@pytest.mark.parametrize("decoder", list(DECODERS))
@pytest.mark.parametrize("name", ["bframes-aac", "hevc-bframes", "1080p", "gop4"])
def test_camera_like_stream_gives_fresh_snapshots(field: RtspServer, name: str, decoder: str) -> None:
    """The newest picture, twice (the second after a pause, so adaptive decoding has gone idle for
    the 2 s streams and decodes the buffered pictures on demand), at the stream's size."""
    spec = STREAMS[name]
    with camera(field.url(name), decoder) as cam:
        image, age = fresh_jpeg(cam, size_of(spec))
        first = decode_stamp(image)
        assert uses(cam, decoder), cam.describe()
        time.sleep(2.5)
        again, age2 = fresh_jpeg(cam, size_of(spec))
        assert decode_stamp(again) > first + 1.0  # a newer picture, not the one kept from before
        print(f"MEASURE {name} {decoder}: snapshot ages {age:.3f} s, {age2:.3f} s after a 2.5 s pause")


def test_2160p_smoke(field: RtspServer) -> None:
    """4K at 5 fps through the default path: the size survives and the picture is fresh. 4 s: the
    server draws and encodes 4K and the camera decodes it on the same 2 cores (0.47 s on a quiet box,
    1.8-2.0 s at load 14)."""
    with camera(field.url("2160p"), "auto", open_timeout_sec=15) as cam:
        _, age = fresh_jpeg(cam, (3840, 2160), timeout=40, within=4.0)
        assert uses(cam, "auto"), cam.describe()
        print(f"MEASURE 2160p5 auto: snapshot age {age:.3f} s")


def _udp_sockets() -> int:
    """UDP sockets this process holds (inodes of /proc/self/fd matched against /proc/net/udp)."""
    inodes = set()
    for path in ("/proc/net/udp", "/proc/net/udp6"):
        if os.path.exists(path):
            with open(path) as f:
                inodes |= {line.split()[9] for line in list(f)[1:]}
    held = 0
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        held += target.startswith("socket:[") and target[8:-1] in inodes
    return held


@pytest.mark.parametrize("decoder", list(DECODERS))
def test_rtsp_over_udp(field: RtspServer, monkeypatch: pytest.MonkeyPatch, decoder: str) -> None:
    """capture.transport: udp really receives over UDP (RTP and RTCP sockets held while streaming)."""
    monkeypatch.setenv("OPENCV_FFMPEG_CAPTURE_OPTIONS",
                       opencv.FFMPEG_OPTIONS.format(transport="udp") + opencv.FFMPEG_UDP_OPTIONS)
    before = _udp_sockets()
    with camera(field.url("plain"), decoder, transport="udp") as cam:
        fresh_jpeg(cam, (640, 360))
        assert uses(cam, decoder), cam.describe()
        assert _udp_sockets() >= before + 2, "no RTP/RTCP sockets: not UDP"


# --- The size changes ------------------------------------------------------------------------------
# OpenCV 4.6's FFmpeg backend (retrieveFrame in cap_ffmpeg_impl.hpp) rebuilds its BGR conversion only
# when the stream's codec parameters change, which FFmpeg's decoder never updates in a session: after
# a size change in band it converts the new pictures with the old size (measured: 320x240 pictures
# came out as 640x360, two half-pictures side by side, time code intact) and reads the smaller
# picture's planes as if they were the old size. Nothing it exposes (CAP_PROP_FRAME_WIDTH included)
# says the size changed, so the capture cannot notice; strict, so a fixed OpenCV shows up here.
OPENCV_RESIZE_BUG = pytest.mark.xfail(strict=True, reason="OpenCV 4.6 FFmpeg backend keeps the first size in a session")


@pytest.mark.parametrize("decoder", ["auto", pytest.param("ffmpeg", marks=OPENCV_RESIZE_BUG)])
def test_size_change_within_the_session(field: RtspServer, decoder: str) -> None:
    """New parameter sets in band (a camera's resolution changed in its settings): the snapshots
    follow, 640x360 -> 320x240 -> 640x360, fresh each time, and the status says the new size."""
    with camera(field.url("resize"), decoder) as cam:
        for size in ((640, 360), (320, 240), (640, 360)):
            fresh_jpeg(cam, size, timeout=8)  # it changes every 3 s
            assert (cam.describe()["width"], cam.describe()["height"]) == size
        assert uses(cam, decoder), cam.describe()
        print(f"MEASURE size change {decoder}: {cam.stats.reconnects} session(s)")


def test_camera_restarts_with_another_size() -> None:
    """Killed, back on the same port at another size and rate: the default path reconnects and
    serves the new size (test_faults.py covers FFmpeg)."""
    with RtspServer({"cam": "640x360@25"}) as server, camera(server.url("cam"), "auto") as cam:
        fresh_jpeg(cam, (640, 360))
        sessions = cam.stats.reconnects
        server.kill()
        wait_until(lambda: cam.status != Status.ACTIVE, 15, message="the camera noticed the kill")
        server.streams = {"cam": "320x240@15"}
        server.restart()
        fresh_jpeg(cam, (320, 240), timeout=40)
        assert cam.stats.reconnects > sessions
        assert uses(cam, "auto"), cam.describe()


# --- Digest login, through the service ---------------------------------------------------------------
USER, PASSWORD = "viewer", 'Pa"ss w0rd!x'


def test_digest_login_through_the_service(service_factory) -> None:
    """Both decoder paths log in with Digest (the server offers nothing else); a wrong password
    gets a clear error; the password shows in neither the log nor any status answer."""
    userinfo = f"{USER}:{quote(PASSWORD, safe='')}"
    with RtspServer({"cam": "640x360@25"}, args=["--user", f"{USER}:{PASSWORD}", "--auth", "digest"]) as server:
        svc = service_factory({"capture": FAST, "cameras": [
            {"id": "auto", "url": server.url("cam", userinfo)},
            {"id": "ffmpeg", "url": server.url("cam", userinfo), "decoder": "ffmpeg"},
            {"id": "wrong", "url": server.url("cam", f"{USER}:nope-{quote(PASSWORD, safe='')}")},
        ]})
        for cam in DECODERS:
            wait_until(lambda c=cam: svc.status(c)["status"] == "active", 30, message=f"{cam} active")
            assert svc.status(cam)["backend"].startswith(DECODERS[cam][1]), svc.status(cam)
            body = wait_until(lambda c=cam: (r := svc.get(f"/snapshot/{c}?max_age=1")).status == 200 and r.body, 20)
            stamp = decode_stamp(cv2.imdecode(np.frombuffer(body, np.uint8), cv2.IMREAD_COLOR))
            assert stamp is not None and time.time() - stamp < FRESH_SEC
        wait_until(lambda: "rejected the user name or password (401)" in (svc.status("wrong")["error"] or ""), 30)
        answers = [svc.get(path).body.decode() for path in ("/status/auto", "/status/wrong", "/cameras", "/status")]
    for secret in (PASSWORD, quote(PASSWORD, safe=""), "nope-"):
        for text in [svc.log(), *answers]:
            assert secret not in text


# --- rtsps:// --------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def tls_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RtspServer]:
    """The demo server over TLS with a self-signed certificate, as cameras ship."""
    cert, key = self_signed_cert(Path(tmp_path_factory.mktemp("tls")))
    with RtspServer({"cam": "640x360@25"}, args=["--tls-cert", str(cert), "--tls-key", str(key)]) as server:
        assert server.url("cam").startswith("rtsps://")
        yield server


@pytest.mark.parametrize("decoder", list(DECODERS))
def test_rtsps_self_signed_with_tls_verify_false(tls_server: RtspServer, decoder: str) -> None:
    with camera(tls_server.url("cam"), decoder, tls_verify=False) as cam:
        fresh_jpeg(cam, (640, 360))
        assert uses(cam, decoder), cam.describe()


def test_rtsps_self_signed_is_refused_while_verifying(tls_server: RtspServer) -> None:
    """The default checks the certificate: a self-signed one is refused (FFmpeg, which would accept
    it, is not tried) and the error says which key to change."""
    with camera(tls_server.url("cam"), "auto") as cam:
        wait_until(lambda: cam.status == Status.ERROR, 20, message="an error")
        assert "capture.tls_verify: false" in cam.error, cam.error
        assert cam.slot.latest() is None and cam.describe()["backend"] in ("", None)
