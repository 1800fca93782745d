"""The RTSP DESCRIBE probe: codec from the SDP, Basic and Digest auth, clear errors.

Real servers: the demo server (`rtsp` fixture) and a GstRtspServer with authentication run here
in-process (`auth_rtsp`), so the probe, rtspsrc's user-id/user-pw and the service's status are all
checked against a server that really challenges.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from rtsp2jpg.capture import lavc
from rtsp2jpg.capture.rtsp.client import authorization, parse_challenge
from rtsp2jpg.capture.rtsp.probe import codec_from_sdp, probe
from tests.support.rtsp_server import wait_until

SDP_H264 = """v=0
o=- 1 1 IN IP4 127.0.0.1
s=Session
m=audio 0 RTP/AVP 97
a=rtpmap:97 MPEG4-GENERIC/16000/1
m=video 0 RTP/AVP 96
a=rtpmap:96 H264/90000
a=fmtp:96 packetization-mode=1
"""


def test_codec_from_sdp() -> None:
    assert codec_from_sdp(SDP_H264) == "h264"
    assert codec_from_sdp(SDP_H264.replace("H264", "H265")) == "h265"
    assert codec_from_sdp("m=video 0 RTP/AVP 98\r\na=rtpmap:98 HEVC/90000\r\n") == "h265"
    assert codec_from_sdp("m=video 0 RTP/AVP 26\r\na=rtpmap:26 JPEG/90000\r\n") is None
    assert codec_from_sdp("") is None


def test_digest_matches_rfc2617_example() -> None:
    """RFC 2617 section 3.5: Mufasa / Circle Of Life -> response 6629fae4..."""
    challenge = ('Digest realm="testrealm@host.com", qop="auth,auth-int", '
                 'nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093", opaque="5ccc069c403ebaf9f0171e9517f40e41"')
    header = authorization([challenge], "GET", "/dir/index.html", "Mufasa", "Circle Of Life", cnonce="0a4f113b")
    assert header is not None and header.startswith("Digest ")
    assert 'response="6629fae49393a05397450978507c4ef1"' in header
    assert 'opaque="5ccc069c403ebaf9f0171e9517f40e41"' in header and "nc=00000001" in header


def test_basic_and_challenge_parsing() -> None:
    assert authorization(['Basic realm="cam"'], "DESCRIBE", "rtsp://h/x", "Aladdin", "open sesame") == \
        "Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ=="
    assert parse_challenge('Digest realm="a, b", nonce=xyz') == ("digest", {"realm": "a, b", "nonce": "xyz"})
    assert authorization(["Bearer x"], "DESCRIBE", "u", "a", "b") is None


def test_demo_server_codecs_and_missing_mount(rtsp) -> None:
    assert probe(rtsp.url("cam")).codec == "h264"
    assert probe(rtsp.url("hevc")).codec == "h265"
    missing = probe(rtsp.url("nope"))
    assert missing.status == 404 and "no such stream" in missing.error


def test_refused_and_silent_hosts() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    assert "refused" in probe(f"rtsp://u:pw@127.0.0.1:{port}/x", 2).error
    with socket.socket() as hole:
        hole.bind(("127.0.0.1", 0))
        hole.listen(1)
        result = probe(f"rtsp://u:pw@127.0.0.1:{hole.getsockname()[1]}/x", 0.5)
    assert "no answer" in result.error and "pw" not in result.error


def test_rtsps_is_not_probed() -> None:
    assert probe("rtsps://127.0.0.1:1/x").codec is None


class AuthRtspServer:
    """GstRtspServer requiring `user`/`pass word!` (Basic or Digest) for mount /cam (H.264)."""

    USER, PASSWORD = "viewer", 'pa"ss wo!rd'

    def __init__(self, method: str) -> None:
        import gi

        gi.require_version("Gst", "1.0")
        gi.require_version("GstRtsp", "1.0")
        gi.require_version("GstRtspServer", "1.0")
        from gi.repository import GLib, Gst, GstRtsp
        from gi.repository import GstRtspServer as Rtsp

        Gst.init(None)
        self.context = GLib.MainContext.new()
        self.loop = GLib.MainLoop.new(self.context, False)
        self.server = Rtsp.RTSPServer()
        self.server.set_address("127.0.0.1")
        self.server.set_service("0")
        auth = Rtsp.RTSPAuth()
        token = Rtsp.RTSPToken()
        token.set_string("media.factory.role", "user")
        if method == "digest":
            auth.add_digest(self.USER, self.PASSWORD, token)
            auth.set_supported_methods(GstRtsp.RTSPAuthMethod.DIGEST)
        else:
            auth.add_basic(Rtsp.RTSPAuth.make_basic(self.USER, self.PASSWORD), token)
        self.server.set_auth(auth)
        factory = Rtsp.RTSPMediaFactory()
        factory.set_launch("( videotestsrc is-live=true ! video/x-raw,width=320,height=240,framerate=10/1 ! "
                           "x264enc tune=zerolatency speed-preset=ultrafast threads=1 key-int-max=10 ! "
                           "rtph264pay name=pay0 pt=96 config-interval=1 )")
        factory.set_shared(True)
        permissions = Rtsp.RTSPPermissions()
        permissions.add_permission_for_role("user", "media.factory.access", True)
        permissions.add_permission_for_role("user", "media.factory.construct", True)
        factory.set_permissions(permissions)
        self.server.get_mount_points().add_factory("/cam", factory)
        self.server.attach(self.context)
        self.port = self.server.get_bound_port()
        self.thread = threading.Thread(target=self.loop.run, daemon=True)
        self.thread.start()

    def url(self, user: str = USER, password: str = PASSWORD) -> str:
        from urllib.parse import quote

        return f"rtsp://{quote(user, safe='')}:{quote(password, safe='')}@127.0.0.1:{self.port}/cam"

    def stop(self) -> None:
        self.loop.quit()
        self.thread.join(5)


@pytest.fixture(params=["basic", "digest"])
def auth_rtsp(request: Any) -> Iterator[AuthRtspServer]:
    server = AuthRtspServer(request.param)
    yield server
    server.stop()


def test_probe_authenticates(auth_rtsp: AuthRtspServer) -> None:
    assert probe(auth_rtsp.url(), 5).codec == "h264"
    wrong = probe(auth_rtsp.url(password="nope"), 5)
    assert wrong.status == 401 and wrong.error == "authentication failed (401): wrong user name or password"
    bare = probe(auth_rtsp.url().replace(f"{auth_rtsp.USER}:", "").split("@")[0].split("//")[0] + "//127.0.0.1:"
                 f"{auth_rtsp.port}/cam", 5)
    assert bare.status == 401 and "no credentials" in bare.error


# decoder: software puts GStreamer first (auto tries FFmpeg before software GStreamer).
FAST = {"reconnect_delay_sec": 0.5, "reconnect_max_delay_sec": 2, "open_timeout_sec": 5, "stall_timeout_sec": 3,
        "decoder": "software"}


def _gstreamer_software() -> bool:
    from rtsp2jpg.capture import opencv as pipeline

    caps = pipeline.capabilities()
    return caps.backends["gstreamer"] and "avdec_h264" in caps.elements


@pytest.mark.skipif(not _gstreamer_software(), reason="needs OpenCV with GStreamer and gst-libav")
def test_service_reports_401_and_streams_with_quoted_credentials(service_factory, auth_rtsp) -> None:
    """Wrong password: the status says so; right one (with a quote, a space and '!' in it): the
    GStreamer source authenticates through rtspsrc user-id/user-pw and the camera is active."""
    svc = service_factory({"capture": FAST, "cameras": [
        {"id": "bad", "url": auth_rtsp.url(password="nope")},
        {"id": "good", "url": auth_rtsp.url()},
    ]})
    assert wait_until(lambda: svc.status("bad")["status"] == "error", 20)
    assert "(401)" in svc.status("bad")["error"]  # said by rtsp.diagnose after the failed trial
    assert wait_until(lambda: svc.status("good")["status"] == "active", 30), svc.status("good")
    assert svc.status("good")["backend"] == ("libavcodec/h264" if lavc.available() else "gstreamer/avdec_h264")
    assert svc.get("/snapshot/good").status == 200
    log = svc.log()
    assert "nope" not in log and "wo!rd" not in log and "wo%21rd" not in log
