"""GET /metrics: valid exposition format (promtool, and prometheus_client's parser), true values."""

from __future__ import annotations

import shutil
import subprocess
from types import SimpleNamespace

import pytest
from prometheus_client.parser import text_string_to_metric_families

from rtsp2jpg.capture.sources import Capabilities
from rtsp2jpg.web.metrics import Metrics, escape, mqtt_state
from tests.support.rtsp_server import wait_until


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def value(found: dict, name: str, **labels: str) -> float:
    return found[(name, tuple(sorted(labels.items())))]


def promtool_check(text: str) -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.fail("promtool is missing: apt-get install prometheus (scripts/test-packages.txt)")
    res = subprocess.run([promtool, "check", "metrics"], input=text.encode(), capture_output=True, timeout=30)
    assert res.returncode == 0, res.stdout.decode() + res.stderr.decode()


def test_metrics_from_a_running_service(rtsp, service_factory):
    svc = service_factory({"cameras": [{"id": "cam", "url": rtsp.url("cam")}]})
    wait_until(lambda: svc.status("cam")["fps"] > 0, 30)
    jpeg = svc.get("/snapshot/cam")
    assert jpeg.status == 200
    assert svc.get("/snapshot/no-such-camera").status == 404
    assert svc.get("/snapshot/cam?q=0").status == 400

    resp = svc.get("/metrics")
    assert resp.status == 200
    assert resp.headers["content-type"].startswith("text/plain; version=0.0.4")
    text = resp.body.decode()
    promtool_check(text)
    found = samples(text)

    assert value(found, "rtsp2jpg_camera_up", camera="cam") == 1
    assert value(found, "rtsp2jpg_frames_decoded_total", camera="cam") > 0
    assert value(found, "rtsp2jpg_camera_fps", camera="cam") > 0
    assert value(found, "rtsp2jpg_last_frame_timestamp_seconds", camera="cam") > 1e9
    assert value(found, "rtsp2jpg_decode_errors_total", camera="cam") == 0
    assert value(found, "rtsp2jpg_stream_reconnects_total", camera="cam") == 0
    assert value(found, "rtsp2jpg_snapshot_requests_total", camera="cam", code="200") == 1
    assert value(found, "rtsp2jpg_snapshot_requests_total", camera="cam", code="400") == 1
    # An unknown id is user input: it is counted, but never becomes a label of its own.
    assert value(found, "rtsp2jpg_snapshot_requests_total", camera="_other", code="404") == 1
    assert not any("no-such-camera" in str(k) for k in found)
    assert value(found, "rtsp2jpg_snapshot_request_duration_seconds_count", camera="cam") == 2
    assert value(found, "rtsp2jpg_snapshot_request_duration_seconds_bucket", camera="cam", le="+Inf") == 2
    assert value(found, "rtsp2jpg_http_response_bytes_total", route="/snapshot/<camera_id>") >= len(jpeg.body)
    assert value(found, "rtsp2jpg_mqtt_connected") == 0
    build = [k for k in found if k[0] == "rtsp2jpg_build_info"]
    assert len(build) == 1 and dict(build[0][1])["version"]
    assert value(found, "process_cpu_seconds_total") > 0


def test_labels_are_escaped_and_output_stays_valid():
    assert escape('a"b\\c\nd') == 'a\\"b\\\\c\\nd'
    cam = SimpleNamespace(id='we"ird\\id\n', status=SimpleNamespace(value="error"),
                          stats=SimpleNamespace(frames=3, decode_errors=1, reconnects=2, last_seen=0.0, fps=0.0))
    service = SimpleNamespace(cameras=lambda: [cam], started_at=1.0, publisher=None,
                              backend=SimpleNamespace(capabilities=SimpleNamespace(cv2_version="4.6.0",
                                                                                   backends={"ffmpeg": True})))
    metrics = Metrics()
    metrics.observe_snapshot(cam.id, 503, 0.2)
    text = metrics.render(service)
    promtool_check(text)
    found = samples(text)
    assert value(found, "rtsp2jpg_camera_up", camera=cam.id) == 0
    assert value(found, "rtsp2jpg_stream_reconnects_total", camera=cam.id) == 1
    assert value(found, "rtsp2jpg_snapshot_request_duration_seconds_bucket", camera=cam.id, le="0.25") == 1
    assert value(found, "rtsp2jpg_snapshot_request_duration_seconds_bucket", camera=cam.id, le="0.1") == 0


def test_mqtt_figures_come_from_the_publisher_when_there_is_one():
    assert mqtt_state(SimpleNamespace(publisher=None)) == (False, {})
    pub = SimpleNamespace(connected=True, published={"status": 4, "snapshot": 2})
    assert mqtt_state(SimpleNamespace(publisher=pub)) == (True, {"status": 4, "snapshot": 2})
    assert mqtt_state(SimpleNamespace(publisher=SimpleNamespace(connected=False, published={}))) == (False, {})


def test_removed_cameras_leave_no_request_series():
    metrics = Metrics()
    metrics.observe_snapshot("gone", 200, 0.01)
    metrics.forget(["still-here"])
    service = SimpleNamespace(cameras=lambda: [], started_at=1.0, publisher=None,
                              backend=SimpleNamespace(capabilities=Capabilities.nothing()))
    assert "gone" not in metrics.render(service)
