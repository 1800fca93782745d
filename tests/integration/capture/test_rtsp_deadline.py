"""A camera that drips its RTSP reply a byte at a time must not hold our RTSP clients, or a camera's stop.

Real sockets throughout: `DripServer` (tests/support/fault_servers.py) answers one byte every 0.3 s for
ever, so a per-recv timeout never fires; only the total deadline of rtsp/wire.py ends the wait. Against the
real service, a camera pointing at it shows a clear error, and unregister/stop end it promptly.
"""

from __future__ import annotations

import socket
import threading
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rtsp2jpg.capture.rtsp import diagnose, probe
from rtsp2jpg.capture.rtsp import wire as rtspio
from tests.support.fault_servers import DripServer
from tests.support.rtsp_server import wait_until

SECRET = "Dr1p-Secret"
SLACK = 2.0  # generous: a loaded 2-core machine, not a stopwatch


def _timed(fn, *args, **kw):
    started = time.monotonic()
    result = fn(*args, **kw)
    return result, time.monotonic() - started


@pytest.mark.parametrize("mode", ["status", "header", "body"])
def test_probe_ends_within_its_total_deadline(mode: str) -> None:
    with DripServer(mode) as drip:
        result, took = _timed(probe, drip.url(userinfo=f"admin:{SECRET}"), 1.5)
    print(f"probe vs drip ({mode}): {took:.2f}s for a 1.5 s deadline")
    assert took < 1.5 + SLACK
    assert "too slowly" in result.error and SECRET not in result.error


@pytest.mark.parametrize(("mode", "method"), [("status", "OPTIONS"), ("header", "DESCRIBE"), ("body", "DESCRIBE")])
def test_diagnose_ends_within_its_total_deadline(mode: str, method: str) -> None:
    with DripServer(mode) as drip:
        result, took = _timed(diagnose, drip.url(userinfo=f"admin:{SECRET}"), 1.5, method)
    print(f"diagnose {method} vs drip ({mode}): {took:.2f}s for a 1.5 s deadline")
    assert took < 1.5 + SLACK
    assert result is not None and result.kind == "no_answer" and "too slowly" in result.message
    assert SECRET not in result.message


def test_auth_retry_shares_the_deadline() -> None:
    """The 401 comes at once, the authenticated DESCRIBE drips: still one deadline for both."""
    with DripServer("header", prompt=("OPTIONS",)) as drip:
        result, took = _timed(diagnose, drip.url(userinfo=f"admin:{SECRET}"), 1.5, "OPTIONS")
        assert result is not None and result.kind == "ok"  # OPTIONS answered promptly
        result, took = _timed(probe, drip.url(userinfo=f"admin:{SECRET}"), 1.5)
    assert took < 1.5 + SLACK and "too slowly" in result.error


def test_a_flood_of_header_bytes_is_cut_at_the_size_bound() -> None:
    with DripServer("header", interval=0) as flood:
        result, took = _timed(diagnose, flood.url(), 30)
        assert result is not None and result.kind == "rtsp_error", result
        assert took < 5
        unknown, took = _timed(probe, flood.url(), 30)
    assert unknown.codec is None and took < 5  # odd camera: the pipelines decide


@pytest.mark.parametrize("client", ["probe", "diagnose"])
def test_stop_interrupts_an_exchange_at_once(client: str) -> None:
    """A long deadline, then the camera's stop event: the call returns within a slice or two."""
    stop = threading.Event()
    out: dict[str, object] = {}
    with DripServer("status") as drip:
        def run() -> None:
            if client == "probe":
                out["result"] = probe(drip.url(), 60, cancelled=stop.is_set)
            else:
                out["result"] = diagnose(drip.url(), 60, "DESCRIBE", cancelled=stop.is_set)

        worker = threading.Thread(target=run, daemon=True)
        worker.start()
        wait_until(lambda: drip.dripping >= 1, 5)
        stop.set()
        started = time.monotonic()
        worker.join(5)
        took = time.monotonic() - started
    print(f"{client}: returned {took:.2f}s after stop")
    assert not worker.is_alive() and took < 1.0 + SLACK
    if client == "probe":
        assert out["result"].error == ""  # not a camera fault: no error to show
    else:
        assert out["result"] is None


def test_stop_interrupts_a_connect_that_hangs() -> None:
    """A listener whose accept queue is full drops further SYNs: connect() hangs like a black hole."""
    with socket.socket() as full:
        full.bind(("127.0.0.1", 0))
        full.listen(0)
        port = full.getsockname()[1]
        fillers = [socket.socket() for _ in range(3)]
        for f in fillers:
            f.setblocking(False)
            f.connect_ex(("127.0.0.1", port))
        time.sleep(0.2)
        stop = threading.Event()
        threading.Timer(0.5, stop.set).start()
        result, took = _timed(diagnose, f"rtsp://127.0.0.1:{port}/x", 30, "OPTIONS", cancelled=stop.is_set)
        timed_out, took_deadline = _timed(probe, f"rtsp://127.0.0.1:{port}/x", 1.0)
        for f in fillers:
            f.close()
    assert result is None and took < 0.5 + SLACK
    assert "no answer" in timed_out.error and took_deadline < 1.0 + SLACK


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=600) | st.builds(lambda tail: b"RTSP/1.0 200 OK\r\n" + tail, st.binary(max_size=600)))
def test_any_reply_bytes_give_a_response_or_a_clean_error(data: bytes) -> None:
    a, b = socket.socketpair()
    with a, b:
        a.sendall(data)
        a.shutdown(socket.SHUT_WR)
        try:
            resp = rtspio.read_response(b, rtspio.Deadline(2.0))
        except (ValueError, ConnectionError, rtspio.DeadlineExceeded):
            return
        assert 100 <= resp.status <= 999 and len(resp.body) <= rtspio.MAX_BODY


# -- the real service ---------------------------------------------------------------------------

FAST = {"decoder": "ffmpeg", "reconnect_delay_sec": 0.5, "reconnect_max_delay_sec": 2, "open_timeout_sec": 3,
        "stall_timeout_sec": 3, "stop_timeout_sec": 3}


def _threads(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("Threads:"):
            return int(line.split()[1])
    raise AssertionError("no Threads line")


def test_camera_on_a_drip_shows_why_and_unregister_and_stop_are_prompt(service_factory) -> None:
    with DripServer("status") as drip:
        svc = service_factory({"capture": FAST})
        time.sleep(1)
        baseline = _threads(svc.proc.pid)
        cam = svc.post("/register", {"rtsp_url": drip.url(userinfo=f"admin:{SECRET}")}).json()["id"]
        status = wait_until(lambda: (s := svc.status(cam))["status"] == "error" and s, 3 + 10)
        assert "too slowly" in status["error"] and SECRET not in str(status), status
        # Mid-exchange again (the next attempt's check is dripping): unregister must not wait for it.
        seen = drip.connections
        wait_until(lambda: drip.connections > seen and drip.dripping >= 1, 15)
        started = time.monotonic()
        assert svc.post(f"/unregister/{cam}", timeout=15).status == 200
        took = time.monotonic() - started
        print(f"unregister of a camera mid-drip: {took:.2f}s (stop_timeout_sec {FAST['stop_timeout_sec']})")
        assert took < FAST["stop_timeout_sec"]
        wait_until(lambda: _threads(svc.proc.pid) <= baseline, 5)
        wait_until(lambda: drip.dripping == 0, 5)  # our end of the connection was closed
        # Service stop with a camera mid-drip: within stop_timeout_sec, and nothing left behind.
        svc.post("/register", {"rtsp_url": drip.url("again")})
        wait_until(lambda: drip.dripping >= 1, 15)
        started = time.monotonic()
        assert svc.stop(timeout=FAST["stop_timeout_sec"] + 10) == 0
        took = time.monotonic() - started
        print(f"SIGTERM with a camera mid-drip: exited after {took:.2f}s")
    log = svc.log()
    assert "did not stop in time" not in log and "still blocked" not in log
    assert SECRET not in log


def test_ffmpeg_open_against_a_drip_ends_in_the_open_timeout(service_factory) -> None:
    """OPTIONS answered, DESCRIBE dripped: FFmpeg's own open is what is tried, and it ends (OpenCV's
    open timeout is an FFmpeg interrupt callback: total, not per read); our DESCRIBE says why."""
    with DripServer("header", prompt=("OPTIONS",)) as drip:
        svc = service_factory({"capture": FAST})
        started = time.monotonic()
        cam = svc.post("/register", {"rtsp_url": drip.url(userinfo=f"admin:{SECRET}")}).json()["id"]
        status = wait_until(lambda: (s := svc.status(cam))["status"] == "error" and "slowly" in s["error"] and s,
                            30)
        took = time.monotonic() - started
        print(f"FFmpeg open + our DESCRIBE vs a drip: error after {took:.2f}s (open_timeout_sec 3, check 3)")
        assert "ffmpeg" in status["error"] and SECRET not in str(status)
        assert drip.methods.count("DESCRIBE") >= 2  # FFmpeg's, then ours
        assert took < 3 + 3 + 10


def _software_gstreamer_spec(url: str, **capture):
    pipeline = pytest.importorskip("rtsp2jpg.capture.opencv")
    from rtsp2jpg.capture import sources
    from rtsp2jpg.config import CaptureConfig

    cfg = CaptureConfig(decoder="software", **capture)
    specs = [s for s in sources.candidates(url, cfg, pipeline.capabilities()) if s.backend == "gstreamer"]
    if not specs:
        pytest.skip("no GStreamer software pipeline here")
    return pipeline, specs[0]


def _named_threads(prefix: str) -> int:
    return sum(t.name.startswith(prefix) for t in threading.enumerate())


def _fails_promptly_each_time(pipeline, spec, attempts: int, match: str, within: float) -> None:
    """`attempts` opens in a row, each failing with `match` within `within` s and leaving no stop behind
    (a stop that finished within the open's 1 s grace)."""
    for attempt in range(attempts):
        started = time.monotonic()
        with pytest.raises(pipeline.SourceError, match=match):
            pipeline.open_source(spec)
        assert time.monotonic() - started < within, attempt
        assert _named_threads("gst-stop-") == 0, attempt


def test_direct_gstreamer_open_against_a_drip_holds_one_pipeline_at_most() -> None:
    """rtspsrc's tcp-timeout is per read: against a drip its request, and even its stop, block as
    long as the drip lasts. The open gives up after open_timeout_sec; while that pipeline is still
    stopping no second one starts; once the peer goes, the stop finishes and nothing is left."""
    with DripServer("header", prompt=("OPTIONS",)) as drip:
        pipeline, spec = _software_gstreamer_spec(drip.url(), open_timeout_sec=2, rtsp_client="rtspsrc")
        if not pipeline.DIRECT_GSTREAMER:
            pytest.skip("PyGObject's GStreamer is not installed here")
        stopping_before = _named_threads("gst-stop-")
        started = time.monotonic()
        with pytest.raises(pipeline.SourceError, match="no frame within the open timeout"):
            pipeline.open_source(spec)
        assert time.monotonic() - started < 2 + 1.5  # the open timeout and at most 1 s to stop
        started = time.monotonic()
        with pytest.raises(pipeline.SourceError, match="still stopping"):
            pipeline.open_source(spec)
        assert time.monotonic() - started < 1
        assert _named_threads("gst-stop-") == stopping_before + 1
    # The drip ended (server stopped): the stop completes, the thread ends, opens are allowed again.
    from rtsp2jpg.capture import gst

    wait_until(lambda: not gst._closing and _named_threads("gst-stop-") == stopping_before, 30)


def test_our_rtsp_client_against_a_drip_gives_up_in_time_and_leaves_nothing_behind() -> None:
    """Our own client (capture.rtsp_client: own, the default) bounds the whole handshake, not each
    read: the open fails within its timeout with the reason, nothing is left stopping, and the next
    attempt may start at once."""
    with DripServer("header", prompt=("OPTIONS",)) as drip:
        pipeline, spec = _software_gstreamer_spec(drip.url(), open_timeout_sec=2)
        if not spec.rtsp_url:
            pytest.skip("adaptive decoding through PyGObject is not available here")
        _fails_promptly_each_time(pipeline, spec, 2, "answers RTSP too slowly", 2 + 0.5)


def test_direct_gstreamer_open_of_a_silent_session_stops_at_once_and_can_retry() -> None:
    """A camera that answers PLAY and never sends RTP (FakeRtsp no_rtp): the open fails after its
    timeout, the pipeline really stops (no thread, no socket left), and the next try starts at once.
    With OpenCV's GStreamer backend this left a blocked thread for ever and refused later opens."""
    from tests.support.fault_servers import FakeRtsp

    with FakeRtsp("no_rtp") as silent:
        pipeline, spec = _software_gstreamer_spec(silent.url(), open_timeout_sec=1.5)
        if not pipeline.DIRECT_GSTREAMER:
            pytest.skip("PyGObject's GStreamer is not installed here")
        _fails_promptly_each_time(pipeline, spec, 3, "no frame within the open timeout", 1.5 + 1.5)
        assert silent.count("PLAY") == 3
        wait_until(lambda: silent.active == 0, 5)  # every rtspsrc closed its socket


def test_opencv_gstreamer_open_against_a_drip_leaves_at_most_one_thread_behind() -> None:
    """The fallback where PyGObject is missing: OpenCV's backend cannot be stopped, so the open is
    abandoned after open_timeout_sec and no second one starts while it is blocked."""
    with DripServer("header", prompt=("OPTIONS",)) as drip:
        pipeline, spec = _software_gstreamer_spec(drip.url(), open_timeout_sec=2)
        if not pipeline.parse_build_info(pipeline.cv2.getBuildInformation())["gstreamer"]:
            pytest.skip("this OpenCV has no GStreamer backend")
        blocked_before = _named_threads("open-")
        with pytest.raises(pipeline.SourceError, match="no frame within the open timeout"):
            pipeline._open_through_opencv(spec)
        started = time.monotonic()
        with pytest.raises(pipeline.SourceError, match="still blocked"):
            pipeline._open_through_opencv(spec)
        assert time.monotonic() - started < 1
        assert _named_threads("open-") == blocked_before + 1
    # The drip ended (server stopped): the blocked open returns, is released, and the guard clears.
    wait_until(lambda: spec.target not in pipeline._BLOCKED, 30)


@pytest.mark.parametrize("client", ["rtspsrc", "own"])
def test_reconnects_against_a_drip_do_not_pile_up_gstreamer_opens(service_factory, client: str) -> None:
    """Before: every reconnect left one more thread and rtspsrc pipeline blocked on the drip. rtspsrc
    now holds one stuck stop at most; our own client (the default) none: its handshake has a deadline."""
    with DripServer("header", prompt=("OPTIONS",)) as drip:
        svc = service_factory({"capture": {**FAST, "decoder": "software", "open_timeout_sec": 2,
                                           "rtsp_client": client}})
        time.sleep(1)
        baseline = _threads(svc.proc.pid)
        cam = svc.post("/register", {"rtsp_url": drip.url(userinfo=f"admin:{SECRET}")}).json()["id"]
        wait_until(lambda: svc.status(cam)["reconnects"] >= 4, 60)
        status = svc.status(cam)
        grown = _threads(svc.proc.pid) - baseline
        print(f"after {status['reconnects']} attempts against a drip: {grown} more thread(s); {status['error']}")
        assert SECRET not in str(status)
        if client == "own" and "answers RTSP too slowly" in status["error"]:
            assert grown <= 2, grown  # the camera's thread; nothing per attempt
            return
        assert "still stopping" in status["error"] or "still blocked" in status["error"], status["error"]
        # The camera's thread, the one stuck stop (direct) or open (OpenCV's backend) per pipeline
        # description, and GStreamer's own threads of those pipelines.
        assert grown <= 12, grown
