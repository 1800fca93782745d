"""Main and sub streams against a real RTSP server with two mounts (1280x720 and 640x360), through the
real service: which stream answers which request, /status, /cameras, MJPEG, registration and restart."""

from __future__ import annotations

import time
from collections.abc import Iterator

import cv2
import numpy as np
import pytest

from rtsp2jpg.capture import opencv
from rtsp2jpg.demo.timecode import decode_stamp
from tests.integration.capture.test_picture import mjpeg_part
from tests.support.rtsp_server import RtspServer, wait_until

ADAPTIVE = opencv.capabilities().direct_gstreamer
MAIN_PW, SUB_PW = "Main-s3cret-Pw", "Sub-s3cret-Pw"


@pytest.fixture(scope="module")
def two_streams() -> Iterator[RtspServer]:
    server = RtspServer(streams={"main": "1280x720@25:h264", "sub": "640x360@25:h264"})
    server.start()
    yield server
    server.stop()


def with_password(url: str, password: str) -> str:
    """The demo server asks for no credentials; a camera's URL carries them anyway (and must not leak them)."""
    return url.replace("rtsp://", f"rtsp://viewer:{password}@", 1)


def secret_pair(server: RtspServer) -> dict[str, str]:
    return {"main": with_password(server.url("main"), MAIN_PW), "sub": with_password(server.url("sub"), SUB_PW)}


def picture(body: bytes) -> np.ndarray:
    image = cv2.imdecode(np.frombuffer(body, np.uint8), cv2.IMREAD_COLOR)
    assert image is not None, body[:40]
    return image


def fetch(svc, path: str) -> tuple[str, np.ndarray, dict[str, str]]:
    """(X-Stream, picture, headers) of a snapshot that must be there."""
    r = svc.get(path)
    assert r.status == 200, (path, r.status, r.body[:200])
    return r.headers.get("x-stream", ""), picture(r.body), r.headers


def streams_of(cam_id: str, svc) -> dict:
    return svc.status(cam_id).get("streams") or {}


def both_active(cam_id: str, svc) -> bool:
    s = streams_of(cam_id, svc)
    return bool(s) and all(v["status"] == "active" and v["width"] for v in s.values())


def test_each_request_gets_the_smallest_stream_that_satisfies_it(two_streams, service_factory):
    svc = service_factory({"cameras": [{"id": "door", "streams": secret_pair(two_streams)}]})
    wait_until(lambda: both_active("door", svc), 30, message="both streams active")
    status = streams_of("door", svc)
    assert (status["main"]["width"], status["main"]["height"]) == (1280, 720)
    assert (status["sub"]["width"], status["sub"]["height"]) == (640, 360)
    if ADAPTIVE:  # the main stream decodes only while read; the sub stream follows capture.decode
        assert status["main"]["decode"] == "adaptive"
    for path, stream, width in [
        ("/snapshot/door", "main", 1280),  # no size asked: the full picture
        ("/snapshot/door?width=320", "sub", 320),
        ("/snapshot/door?width=640&height=360", "sub", 640),
        ("/snapshot/door?width=800", "main", 800),
        ("/snapshot/door?height=400", "main", 711),
        ("/snapshot/door?width=600&crop=0,0,0.5,1", "main", 600),  # half the sub stream is 320 wide
        ("/snapshot/door?width=300&rotate=90", "sub", 300),
        ("/snapshot/door?stream=sub", "sub", 640),
        ("/snapshot/door.png?stream=main&width=320", "main", 320),
    ]:
        got, image, headers = fetch(svc, path)
        assert (got, image.shape[1]) == (stream, width), path
        assert (headers["etag"].endswith('-sub"') or "-sub-" in headers["etag"]) == (stream == "sub"), headers["etag"]
    for path in ("/snapshot/door", "/snapshot/door?stream=sub"):  # whole pictures carry the server's time code
        stamp = decode_stamp(fetch(svc, path)[1])
        assert stamp is not None and time.time() - stamp < 5, (path, stamp)
    # The MJPEG viewer reads the sub stream, unless it asks for main.
    assert picture(mjpeg_part(svc.port, "/stream/door")).shape[1] == 640
    assert picture(mjpeg_part(svc.port, "/stream/door?stream=main&width=400")).shape[1] == 400
    assert svc.get("/snapshot/door?stream=third").status == 400
    assert svc.get("/stream/door?stream=SUB").status == 400
    (listed,) = svc.get("/cameras").json()
    assert listed["streams"] == {"main": two_streams.url("main").replace("rtsp://", "rtsp://viewer:***@"),
                                 "sub": two_streams.url("sub").replace("rtsp://", "rtsp://viewer:***@")}
    for text in (svc.get("/cameras").body, svc.get("/status/door").body, svc.get("/metrics").body, svc.log()):
        text = text.decode() if isinstance(text, bytes) else text
        assert MAIN_PW not in text and SUB_PW not in text


def test_a_camera_with_one_stream_has_no_sub_stream(rtsp, service_factory):
    svc = service_factory({"cameras": [{"id": "cam", "url": rtsp.url("cam")}]})
    wait_until(lambda: svc.get("/snapshot/cam").status == 200, 30)
    assert "streams" not in svc.status("cam") and "streams" not in svc.get("/cameras").json()[0]
    r = svc.get("/snapshot/cam?stream=sub")
    assert r.status == 400 and "no sub stream" in r.json()["detail"]
    assert svc.get("/snapshot/cam?stream=main").status == 200
    assert "x-stream" not in svc.get("/snapshot/cam").headers


@pytest.mark.parametrize(("body", "detail"), [
    ({"streams": "rtsp://h/a"}, "streams must be an object"),
    ({"streams": {"main": "rtsp://h/a"}}, "streams must be an object"),
    ({"streams": {"main": "rtsp://h/a", "sub": "rtsp://h/b", "third": "rtsp://h/c"}}, "streams must be an object"),
    ({"streams": {"main": "rtsp://h/a", "sub": 5}}, "streams must be an object"),
    ({"streams": {"main": "rtsp://h/a", "sub": "http://h/b"}}, "streams.sub must start with rtsp://"),
    ({"streams": {"main": "rtsp://h/a", "sub": "RTSP://H:554/a/"}}, "streams.sub is the main stream's URL"),
    ({"streams": {"main": "rtsp://h/a", "sub": "rtsp://h/b"}, "rtsp_url": "rtsp://h/a"}, "either rtsp_url or streams"),
])
def test_bad_streams_are_refused_with_a_400(service_factory, body, detail):
    svc = service_factory()
    r = svc.post("/register", body)
    assert r.status == 400 and detail in r.json()["detail"], (r.status, r.body)
    assert svc.get("/cameras").json() == []


def test_registered_streams_survive_a_restart_and_unregister_stops_both(two_streams, service_factory):
    pair = secret_pair(two_streams)
    svc = service_factory(name="reg")
    r = svc.post("/register", {"streams": pair, "name": "Yard"})
    assert r.status == 200, r.body
    cam_id = r.json()["id"]
    wait_until(lambda: both_active(cam_id, svc), 30, message="both streams active")
    assert svc.post("/register", {"streams": pair}).json()["id"] == cam_id  # the same again: the same camera
    other = {**pair, "sub": two_streams.url("sub") + "?other"}
    assert svc.post("/register", {"streams": other}).status == 409  # the main stream's camera reads another sub
    assert svc.post("/register", {"rtsp_url": pair["main"]}).status == 409  # or without one
    svc.stop()
    svc.start()
    wait_until(lambda: both_active(cam_id, svc), 30, message="both streams active after a restart")
    assert fetch(svc, f"/snapshot/{cam_id}?width=320")[0] == "sub"
    assert svc.post(f"/unregister/{cam_id}").json() == {"ok": True}
    # unregister joins both capture threads before it logs (a thread still blocked would be named).
    wait_until(lambda: f"{cam_id}: unregistered" in svc.log(), 15)
    assert "still blocked" not in svc.log() and svc.get("/health").json()["cameras"]["total"] == 0
    assert MAIN_PW not in svc.log() and SUB_PW not in svc.log()

