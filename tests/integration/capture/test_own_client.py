"""Our own RTSP client (capture/rtsp/session.py, rtp.py, receivers.py) against real servers: the demo's
gst-rtsp-server directly and through a fault relay (keep-alives mid-stream, a cut, a stall, garbled
payloads), and hand-written servers it cannot or may not take (rtspsrc gets the first, nobody the second).
Adaptive decoding on it is test_adaptive.py's; the field's streams are test_field_streams.py's.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from rtsp2jpg.capture import opencv as pipeline
from rtsp2jpg.capture import receivers, sources
from rtsp2jpg.capture.frames import bgr_of
from rtsp2jpg.capture.sources import SourceError
from rtsp2jpg.config import CaptureConfig
from rtsp2jpg.demo.timecode import decode_stamp
from tests.support.fault_servers import FakeRtsp, Relay
from tests.support.rtsp_server import RtspServer, self_signed_cert, wait_until

CAPS = pipeline.capabilities()
pytestmark = pytest.mark.skipif(not CAPS.direct_gstreamer or "avdec_h264" not in CAPS.elements,
                                reason="needs GStreamer through PyGObject and gst-libav")
CFG = {"decoder": "software", "codec": "h264", "open_timeout_sec": 6, "stall_timeout_sec": 3}


def _spec(url: str, **cfg) -> sources.SourceSpec:
    return sources.candidates(url, CaptureConfig(**{**CFG, **cfg}), CAPS)[0]


def _age(cap) -> float:
    """Grab and read one picture; how old its time code says it is."""
    assert cap.grab()
    image = bgr_of(cap.retrieve())
    assert image is not None
    stamp = decode_stamp(image)
    assert stamp is not None
    return time.time() - stamp


def _port(url: str) -> int:
    return urlsplit(url).port


@pytest.mark.parametrize(("setting", "receiver"), [("own", "rtsp2jpg"), ("rtspsrc", "rtspsrc")])
def test_capture_rtsp_client_picks_the_receiver(rtsp, setting: str, receiver: str) -> None:
    cap = pipeline.open_source(_spec(rtsp.url("cam"), rtsp_client=setting))
    try:
        assert cap._pipe.receiver == receiver
        assert _age(cap) < 1.0
        time.sleep(0.5)
        assert _age(cap) < 1.0
    finally:
        cap.release()


def test_udp_is_left_to_rtspsrc(rtsp) -> None:
    assert _spec(rtsp.url("cam")).rtsp_url
    assert not _spec(rtsp.url("cam"), transport="udp").rtsp_url


@pytest.fixture(scope="module")
def tls_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RtspServer]:
    cert, key = self_signed_cert(Path(tmp_path_factory.mktemp("tls")))
    with RtspServer({"cam": "640x360@25"}, args=["--tls-cert", str(cert), "--tls-key", str(key)]) as server:
        yield server


def test_rtsps_with_a_self_signed_certificate(tls_server: RtspServer) -> None:
    """Our client speaks TLS too: with tls_verify false it takes the self-signed camera; with the
    default it refuses it, saying why, and no other client is tried."""
    url = tls_server.url("cam")
    assert url.startswith("rtsps://")
    cap = pipeline.open_source(_spec(url, tls_verify=False))
    try:
        assert cap._pipe.receiver == "rtsp2jpg"
        assert _age(cap) < 1.0
        time.sleep(0.5)
        assert _age(cap) < 1.0
    finally:
        cap.release()
    with pytest.raises(SourceError, match="certificate was refused"):
        pipeline.open_source(_spec(url))


def test_keep_alives_flow_mid_stream_and_the_session_ends_with_teardown(rtsp) -> None:
    with Relay(_port(rtsp.url("cam"))) as relay:
        cap = pipeline.open_source(_spec(relay.url("cam")))
        try:
            session = cap._pipe._rx._session
            session._keepalive_sec, session._next_keepalive = 0.3, 0.0  # the camera's 60 s, shortened
            for _ in range(8):
                time.sleep(0.25)
                assert _age(cap) < 1.0  # the replies, interleaved with the RTP, do not disturb it
            assert relay.count("OPTIONS") >= 4
            assert session._demux.messages >= 3 and session._demux.skipped == 0  # the last may be on its way
        finally:
            cap.release()
        wait_until(lambda: relay.count("TEARDOWN") == 1, 5, message="TEARDOWN reached the camera")
        assert relay.methods[:4] == ["DESCRIBE", "SETUP", "PLAY", "OPTIONS"]


def test_a_cut_connection_ends_the_stream_at_once_with_the_reason(rtsp) -> None:
    with Relay(_port(rtsp.url("cam"))) as relay:
        cap = pipeline.open_source(_spec(relay.url("cam")))
        try:
            assert _age(cap) < 1.0
            relay.cut()
            started = time.monotonic()
            while cap.grab():  # what was already received may still come out
                assert time.monotonic() - started < 2.0
            assert time.monotonic() - started < 2.0  # not the 3 s stall timeout: the close is seen
            assert "connection" in cap._pipe.failure, cap._pipe.failure
        finally:
            cap.release()


def test_a_stalled_stream_fails_after_the_read_timeout_and_release_is_immediate(rtsp) -> None:
    with Relay(_port(rtsp.url("cam"))) as relay:
        cap = pipeline.open_source(_spec(relay.url("cam"), stall_timeout_sec=1))
        try:
            assert _age(cap) < 1.0
            relay.stall()
            deadline = time.monotonic() + 5
            while cap.grab():
                assert time.monotonic() < deadline, "a stalled stream kept giving frames"
        finally:
            started = time.monotonic()
            cap.release()
            assert time.monotonic() - started < 0.5
            relay.resume()


def test_garbled_payloads_neither_crash_nor_wedge_the_capture(rtsp) -> None:
    """Random bytes in the RTP payloads: the depayloader and the decoder drop what they cannot use;
    once the garbling stops, the same URL gives fresh pictures again (reopened if the stream ended)."""
    with Relay(_port(rtsp.url("cam"))) as relay:
        cap = pipeline.open_source(_spec(relay.url("cam")))
        try:
            relay.garble(0.002)
            end = time.monotonic() + 3
            while time.monotonic() < end and cap.grab():
                cap.retrieve()  # a picture or None; never an exception
                time.sleep(0.1)
            relay.garble(0.0)
        finally:
            cap.release()

        def fresh() -> bool:
            again = pipeline.open_source(_spec(relay.url("cam")))
            try:
                _age(again)  # the open's own picture
                time.sleep(2.5)  # past the next keyframe: no garbled reference left
                return _age(again) < 1.0
            finally:
                again.release()

        assert wait_until(fresh, 30, interval=0.5)


def test_a_camera_without_rtp_over_tcp_is_handed_to_rtspsrc() -> None:
    with FakeRtsp("udp_only") as fake:
        with pytest.raises(SourceError):  # rtspsrc (TCP only here) cannot take it either
            pipeline.open_source(_spec(fake.url("cam"), open_timeout_sec=3))
        assert fake.count("SETUP") >= 2, fake.requests  # ours was refused with 461, then rtspsrc's


def test_a_refused_login_is_one_login_and_says_why_without_the_password() -> None:
    with FakeRtsp("auth") as fake:
        with pytest.raises(SourceError) as failed:
            pipeline.open_source(_spec(fake.url("cam", "viewer:s3cret%21pw"), open_timeout_sec=3))
        message = str(failed.value)
        assert "authentication failed (401)" in message
        assert "s3cret" not in message and "viewer:" not in message
        # One DESCRIBE without and one with credentials; no second client logging in after ours.
        assert fake.count("DESCRIBE") == 2 and [a for _, m, a in fake.requests if m == "DESCRIBE"] == [False, True]


def test_a_camera_that_gives_our_client_no_picture_goes_to_rtspsrc_for_a_while() -> None:
    with FakeRtsp("no_rtp") as fake:
        spec = _spec(fake.url("cam"), open_timeout_sec=1.5)
        try:
            for _ in range(2):
                with pytest.raises(SourceError, match="no frame within the open timeout"):
                    pipeline.open_source(spec)
        finally:
            receivers._GAVE_NOTHING.pop(spec.rtsp_url, None)
        plays = [agent for method, agent in fake.agents if method == "PLAY"]
        assert len(plays) == 2 and plays[0] == "rtsp2jpg" and plays[1].startswith("GStreamer"), plays
