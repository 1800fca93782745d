"""The pure parts of our RTSP client: the interleaved demuxer (capture/rtsp/interleaved.py), the SDP
reader (sdp.py) and the Session/Transport header readers (client.py). Against real servers:
tests/integration/capture/test_own_client.py."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from rtsp2jpg.capture.rtsp import client
from rtsp2jpg.capture.rtsp.interleaved import MAX_MESSAGE, Demuxer
from rtsp2jpg.capture.rtsp.sdp import resolve, video_track


def _frame(channel: int, payload: bytes) -> bytes:
    return b"$" + bytes([channel]) + len(payload).to_bytes(2, "big") + payload


def _message(body: bytes) -> bytes:
    head = b"RTSP/1.0 200 OK\r\nCSeq: 7\r\nSession: 1234;timeout=60\r\n"
    if body:
        head += b"Content-Length: " + str(len(body)).encode() + b"\r\n"
    return head + b"\r\n" + body


_ITEMS = st.lists(st.one_of(
    st.tuples(st.just("frame"), st.integers(0, 3), st.binary(max_size=1500)),
    st.tuples(st.just("message"), st.just(0), st.binary(max_size=300))), max_size=30)


@settings(max_examples=200, deadline=None)
@given(items=_ITEMS, cuts=st.lists(st.integers(0, 50_000), max_size=20))
def test_frames_and_messages_come_apart_wherever_the_reads_split_them(items, cuts) -> None:
    wire = b"".join(_frame(c, p) if kind == "frame" else _message(p) for kind, c, p in items)
    bounds = sorted({0, len(wire), *(c % (len(wire) + 1) for c in cuts)})
    demux = Demuxer()
    got = []
    for a, b in zip(bounds, bounds[1:], strict=False):
        got += demux.feed(wire[a:b])
    assert got == [(c, p) for kind, c, p in items if kind == "frame"]
    assert demux.messages == sum(1 for kind, _, _ in items if kind == "message")
    assert demux.skipped == 0 and demux.buffered == 0


@settings(max_examples=200, deadline=None)
@given(chunks=st.lists(st.binary(max_size=9000), max_size=40))
def test_garbage_is_skipped_and_what_waits_is_bounded(chunks) -> None:
    demux = Demuxer()
    for chunk in chunks:
        for channel, payload in demux.feed(chunk):
            assert 0 <= channel <= 255 and len(payload) <= 0xFFFF
        assert demux.buffered <= MAX_MESSAGE + 4 + 0xFFFF + 9000


def test_garbage_before_a_frame_is_skipped_and_counted() -> None:
    demux = Demuxer()
    junk = b"\x00" * (MAX_MESSAGE + 10)  # no message head ends in it: not a message
    assert demux.feed(junk + _frame(0, b"rtp")) == [(0, b"rtp")]
    assert demux.skipped == len(junk)


def test_a_message_body_larger_than_the_bound_is_not_waited_for() -> None:
    demux = Demuxer()
    head = b"RTSP/1.0 200 OK\r\nContent-Length: 999999999\r\n\r\n"
    out = demux.feed(head + b"x" * 10 + _frame(0, b"after"))
    assert out == [(0, b"after")] and demux.messages == 0 and demux.skipped > 0


# --- SDP ---------------------------------------------------------------------------------------------
DAHUA = """v=0\r
o=- 2251938202 2251938202 IN IP4 0.0.0.0\r
s=Media Server\r
a=control:*\r
t=0 0\r
m=video 0 RTP/AVP 96\r
a=control:trackID=0\r
a=rtpmap:96 H264/90000\r
a=fmtp:96 packetization-mode=1;profile-level-id=4D002A;sprop-parameter-sets=Z00AKp2oHgCJ+WbgICAoAAAOEAACvyAI,aO48gA==\r
m=audio 0 RTP/AVP 8\r
a=control:trackID=1\r
a=rtpmap:8 PCMA/8000\r
"""


def test_a_dahua_style_sdp_keeps_the_query_in_its_track_urls() -> None:
    base = "rtsp://10.0.0.5:554/cam/realmonitor?channel=1&subtype=0"
    track = video_track(DAHUA, base)
    assert track is not None
    assert (track.codec, track.payload_type, track.clock_rate) == ("h264", 96, 90000)
    assert track.control == base + "/trackID=0"  # as FFmpeg and rtspsrc build it
    assert track.aggregate == base
    assert "sprop-parameter-sets=" in track.fmtp


def test_audio_first_absolute_controls_and_h265() -> None:
    sdp = ("v=0\r\nm=audio 0 RTP/AVP 97\r\na=rtpmap:97 MPEG4-GENERIC/16000/1\r\na=control:rtsp://cam/a\r\n"
           "m=video 0 RTP/AVP 98\r\na=rtpmap:98 H265/90000\r\na=control:rtsp://cam/v\r\n")
    track = video_track(sdp, "rtsp://cam/")
    assert track is not None and (track.codec, track.control, track.aggregate) == ("h265", "rtsp://cam/v", "rtsp://cam/")


def test_no_video_or_an_unknown_codec() -> None:
    assert video_track("v=0\r\nm=audio 0 RTP/AVP 0\r\n", "rtsp://cam/") is None
    mjpeg = video_track("m=video 0 RTP/AVP 26\r\na=rtpmap:26 JPEG/90000\r\n", "rtsp://cam/")
    assert mjpeg is not None and mjpeg.codec == ""


@settings(max_examples=300, deadline=None)
@given(sdp=st.text(max_size=400), base=st.text(max_size=40))
def test_any_sdp_gives_a_track_or_none(sdp: str, base: str) -> None:
    track = video_track(sdp, base)
    assert track is None or track.codec in ("", "h264", "h265")


@settings(max_examples=300, deadline=None)
@given(base=st.from_regex(r"rtsp://[a-z0-9.]{1,20}(:[0-9]{1,5})?(/[a-z0-9?=&]{0,12}){0,3}", fullmatch=True),
       control=st.from_regex(r"[a-zA-Z0-9=_]{1,12}", fullmatch=True))
def test_a_relative_control_extends_the_base(base: str, control: str) -> None:
    url = resolve(base, control)
    assert url == (base + control if base.endswith("/") else f"{base}/{control}")  # one "/" between, no more
    assert resolve(base, "*") == resolve(base, "") == base
    assert resolve(base, "rtsp://other/x") == "rtsp://other/x"


# --- Session and Transport headers ---------------------------------------------------------------------
def test_session_and_transport_headers() -> None:
    assert client.session_header("12345678;timeout=30") == ("12345678", 30.0)
    assert client.session_header(" abc ") == ("abc", 60.0)
    assert client.session_header("x;timeout=99999999") == ("x", 3600.0)  # bounded
    assert client.interleaved_channel("rtp/avp/tcp;unicast;interleaved=2-3;ssrc=1") == 2
    assert client.interleaved_channel("rtp/avp;unicast;client_port=5000-5001") is None
    assert client.interleaved_channel("rtp/avp/tcp;interleaved=300-301") is None
    assert client.interleaved_channel("rtp/avp/tcp;interleaved=\u00b2-3") is None  # a digit to isdigit(), not to int()
    assert client.session_header("x;timeout=\u00b2") == ("x", 60.0)


@settings(max_examples=300, deadline=None)
@given(header=st.text(max_size=80))
def test_any_session_or_transport_header_reads_without_raising(header: str) -> None:
    sid, timeout = client.session_header(header)
    assert 0 <= timeout <= 3600 and ";" not in sid
    channel = client.interleaved_channel(header.lower())
    assert channel is None or 0 <= channel < 256


# --- who receives a camera that gave our client nothing ---------------------------------------------
def test_a_camera_that_gave_our_client_nothing_goes_to_rtspsrc_for_a_while_and_the_list_is_bounded() -> None:
    from rtsp2jpg.capture import receivers

    now = [1000.0]
    saved = dict(receivers._GAVE_NOTHING)
    receivers._GAVE_NOTHING.clear()
    try:
        url = "rtsp://cam.example/live"
        assert receivers._ours(url, lambda: now[0]) and not receivers._ours("", lambda: now[0])
        receivers.gave_nothing(url, lambda: now[0])
        assert not receivers._ours(url, lambda: now[0])
        now[0] += receivers.GAVE_NOTHING_SEC
        assert receivers._ours(url, lambda: now[0])  # its time is up: ours again
        for i in range(receivers._GAVE_NOTHING_MAX + 50):
            receivers.gave_nothing(f"rtsp://cam{i}.example/", lambda: now[0])
        assert len(receivers._GAVE_NOTHING) == receivers._GAVE_NOTHING_MAX
        assert receivers._ours("rtsp://cam0.example/", lambda: now[0])  # the oldest went first
    finally:
        receivers._GAVE_NOTHING.clear()
        receivers._GAVE_NOTHING.update(saved)
