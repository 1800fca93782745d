"""Privacy masks, rotation, crop and formats against the real demo stream, through every output path:
snapshots of any size/quality/format/crop/rotation, MJPEG, MQTT snapshots and registered cameras."""

from __future__ import annotations

import http.client
from pathlib import Path

import cv2
import numpy as np
import pytest

from rtsp2jpg.capture import exif
from rtsp2jpg.demo.timecode import read_code
from rtsp2jpg.web import mjpeg
from tests.support.exif_reader import read_exif, text
from tests.support.mosquitto import Mosquitto, Subscriber
from tests.support.rtsp_server import wait_until

# The lower-right quarter of the 640x360 demo picture; the time code (top left) stays readable.
QUARTER = [[0.5, 0.5], [1.0, 0.5], [1.0, 1.0], [0.5, 1.0]]


def decode(body: bytes) -> np.ndarray:
    image = cv2.imdecode(np.frombuffer(body, np.uint8), cv2.IMREAD_COLOR)
    assert image is not None, body[:40]
    return image


def assert_masked(image: np.ndarray, y0: float, y1: float, x0: float, x1: float) -> None:
    """The region (fractions of `image`) is black, away from its edges (JPEG rings there), and the
    rest of the picture is not: the demo scene averages ~128."""
    h, w = image.shape[:2]
    m = max(4, round(0.03 * max(h, w)))
    inside = image[round(y0 * h) + m: round(y1 * h) - m, round(x0 * w) + m: round(x1 * w) - m]
    assert inside.size and inside.max() < 40 and inside.mean() < 4, (inside.max(), inside.mean())
    outside = image.copy()
    outside[round(y0 * h): round(y1 * h), round(x0 * w): round(x1 * w)] = 128
    assert outside.mean() > 50


def mjpeg_part(port: int, path: str) -> bytes:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=20)
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        assert resp.status == 200
        while not resp.readline().startswith(b"--" + mjpeg.BOUNDARY.encode()):
            pass
        length = 0
        while (line := resp.readline().strip()):
            key, _, value = line.decode().partition(":")
            if key.lower() == "content-length":
                length = int(value)
        return resp.read(length)
    finally:
        conn.close()


def test_masks_are_filled_in_every_output_path(rtsp, service_factory, tmp_path: Path):
    broker = Mosquitto(tmp_path / "broker").start()
    sub = Subscriber(broker, ["rtsp2jpg/#"]).start()
    try:
        svc = service_factory({
            "device_id": "edge",
            "mqtt": {"enabled": True, "host": "127.0.0.1", "port": broker.port, "snapshot_interval_sec": 1,
                     "homeassistant": {"enabled": False}},
            "cameras": [{"id": "cam", "url": rtsp.url("cam"), "privacy_masks": [QUARTER]}],
        })
        wait_until(lambda: svc.get("/snapshot/cam").status == 200, 30)
        for path, box in [
            ("/snapshot/cam", (0.5, 1, 0.5, 1)),
            ("/snapshot/cam.jpg?q=20&width=320", (0.5, 1, 0.5, 1)),
            ("/snapshot/cam.png", (0.5, 1, 0.5, 1)),
            ("/snapshot/cam.webp?q=30&height=90", (0.5, 1, 0.5, 1)),
            ("/snapshot/cam?timestamp=1", (0.5, 0.8, 0.5, 1)),  # the stamp is drawn below, over the mask
            # A crop around the mask cannot reveal it: the crop's lower-right part is still black.
            ("/snapshot/cam?crop=0.25,0.25,0.75,0.75", (1 / 3, 1, 1 / 3, 1)),
            ("/snapshot/cam?crop=0.5,0.5,0.5,0.5&width=8000", (0, 1, 0, 1)),
            # Rotated 90 degrees clockwise, the lower-right quarter becomes the lower-left one.
            ("/snapshot/cam?rotate=90", (0.5, 1, 0, 0.5)),
            ("/snapshot/cam?rotate=180&crop=0,0,1,1", (0, 0.5, 0, 0.5)),
        ]:
            r = svc.get(path)
            assert r.status == 200, (path, r.body[:200])
            image = decode(r.body)
            if box == (0, 1, 0, 1):  # all of it is masked
                assert image.max() < 40 and image.mean() < 4, path
            else:
                assert_masked(image, *box)
        assert_masked(decode(mjpeg_part(svc.port, "/stream/cam?width=320")), 0.5, 1, 0.5, 1)
        snap = sub.wait_for(lambda m: m.topic == "rtsp2jpg/edge/cameras/cam/snapshot" and m.payload, 30)
        assert_masked(decode(snap.payload), 0.5, 1, 0.5, 1)

        # A camera registered over HTTP keeps its masks (stored in SQLite, validated on the way in).
        r = svc.post("/register", {"rtsp_url": rtsp.url("hevc"), "privacy_masks": [[[0, 0], [1, 0], [0, 1]]]})
        assert r.status == 200, r.body
        reg = r.json()["id"]
        body = wait_until(lambda: (lambda x: x.status == 200 and x.body)(svc.get(f"/snapshot/{reg}")), 30)
        image = decode(body)
        upper_left = image[10:150, 10:250]  # well inside the triangle above the diagonal
        assert upper_left.max() < 40, upper_left.max()
        assert image[250:360, 400:640].mean() > 40  # below the diagonal: the scene (several stripes)
        # Asking again for the same URL with other masks must not silently keep (or drop) them.
        assert svc.post("/register", {"rtsp_url": rtsp.url("hevc"), "privacy_masks": []}).status == 409
    finally:
        sub.stop()
        broker.stop()


def test_camera_rotation_and_crop_apply_to_every_picture(rtsp, service_factory):
    svc = service_factory({"cameras": [
        {"id": "turned", "url": rtsp.url("cam"), "rotate": 90},
        {"id": "corner", "url": rtsp.url("cam"), "crop": [0, 0, 0.5, 0.5]},
    ]})
    turned = decode(wait_until(lambda: (lambda x: x.status == 200 and x.body)(svc.get("/snapshot/turned")), 30))
    assert turned.shape[:2] == (640, 360)
    assert read_code(np.rot90(turned, k=1)) is not None  # turned back counter-clockwise: the demo's code reads
    corner = decode(wait_until(lambda: (lambda x: x.status == 200 and x.body)(svc.get("/snapshot/corner")), 30))
    assert corner.shape[:2] == (180, 320) and read_code(corner) is not None
    # A request's rotation applies on top of the camera's: 90 + 270 is the stream's own orientation.
    upright = decode(svc.get("/snapshot/turned?rotate=270").body)
    assert upright.shape[:2] == (360, 640) and read_code(upright) is not None
    assert decode(mjpeg_part(svc.port, "/stream/turned")).shape[:2] == (640, 360)


@pytest.mark.parametrize("query", ["rotate=45", "rotate=abc", "crop=0,0,2,1", "crop=1,2,3", "crop=nan,0,1,1",
                                   "crop=0.5,0.5,0.6,0.1", "timestamp=maybe", "q=0"])
def test_bad_picture_queries_get_a_clear_400(rtsp, service_factory, query):
    svc = service_factory({"cameras": [{"id": "cam", "url": rtsp.url("cam")}]})
    r = svc.get(f"/snapshot/cam?{query}")
    assert r.status == 400 and r.headers["content-type"].startswith("application/json")
    assert query.split("=")[0] in r.json()["detail"]


@pytest.mark.parametrize("body,word", [
    ({"privacy_masks": "everything"}, "privacy_masks"),
    ({"privacy_masks": [[[0, 0], [1, 1]]]}, "polygon 0"),
    ({"privacy_masks": [[[0, 0], [1, 1], [2, 0]]]}, "point 2"),
    ({"privacy_masks": [[[0, 0], [1, 1], [True, 0]]]}, "point 2"),
    ({"privacy_masks": [[[0, 0], [1, 0], [0, 1]]] * 17}, "at most 16"),
    ({"privacy_masks": [[[0, 0]] * 65]}, "polygon 0"),
    ({"rotate": 45}, "rotate"),
    ({"crop": [0, 0, 1]}, "crop"),
    ({"timestamp": "yes"}, "timestamp"),
])
def test_register_rejects_bad_picture_settings(service_factory, body, word):
    svc = service_factory({})
    r = svc.post("/register", {"rtsp_url": "rtsp://127.0.0.1:9/x", **body})
    assert r.status == 400 and word in r.json()["detail"], r.body
    assert svc.get("/cameras").json() == []


def test_format_by_extension_and_accept(rtsp, service_factory):
    svc = service_factory({"cameras": [{"id": "cam", "url": rtsp.url("cam")}]})
    wait_until(lambda: svc.get("/snapshot/cam").status == 200, 30)
    magic = {"image/jpeg": b"\xff\xd8", "image/webp": b"RIFF", "image/png": b"\x89PNG"}
    for path, accept, ctype in [
        ("/snapshot/cam", None, "image/jpeg"),
        ("/snapshot/cam", "*/*", "image/jpeg"),
        ("/snapshot/cam", "image/webp,image/*;q=0.8", "image/webp"),
        ("/snapshot/cam", "image/png", "image/png"),
        ("/snapshot/cam", "image/avif,image/webp,image/apng,image/*,*/*;q=0.8", "image/jpeg"),  # a browser's <img>
        ("/snapshot/cam.jpg", "image/webp", "image/jpeg"),  # the extension wins
        ("/snapshot/cam.webp", None, "image/webp"),
        ("/snapshot/cam.png", "image/jpeg", "image/png"),
    ]:
        r = svc.get(path, headers={"Accept": accept} if accept else {})
        assert r.status == 200 and r.headers["content-type"] == ctype, (path, accept, r.headers)
        assert r.body.startswith(magic[ctype]) and decode(r.body).shape[:2] == (360, 640)
        assert ("accept" in r.headers.get("vary", "").lower()) == ("." not in path)
    r = svc.get("/snapshot/cam", headers={"Accept": "image/*;q=0"})
    assert r.status == 406 and "detail" in r.json()
    assert svc.get("/snapshot/cam.gif").status == 404


def test_jpegs_carry_exif_and_timestamp_draws_into_the_picture(rtsp, service_factory):
    svc = service_factory({"cameras": [{"id": "cam", "url": rtsp.url("cam")},
                                       {"id": "stamped", "name": "Stamped door", "url": rtsp.url("cam"),
                                        "timestamp": True}]})
    r = wait_until(lambda: (lambda x: x.status == 200 and x)(svc.get("/snapshot/cam")), 30)
    tags = read_exif(r.body)
    assert text(tags[exif.TAG_DESCRIPTION]) == "cam"
    captured = float(r.headers["x-frame-timestamp"])
    assert (text(tags[exif.TAG_DATETIME_ORIGINAL]), text(tags[exif.TAG_SUBSEC_TIME_ORIGINAL]),
            text(tags[exif.TAG_OFFSET_TIME_ORIGINAL])) == exif.capture_fields(captured)
    assert read_exif(mjpeg_part(svc.port, "/stream/cam"))[exif.TAG_DESCRIPTION] == b"cam\0"

    def stamped_vs_plain(stamped_path: str, plain_path: str) -> tuple[np.ndarray, np.ndarray]:
        """Both renderings of one frame (the same X-Frame-Seq), cropped to where the stamp goes."""
        def pair():
            a, b = svc.get(stamped_path), svc.get(plain_path)
            return a.status == b.status == 200 and a.headers["x-frame-seq"] == b.headers["x-frame-seq"] and (a, b)
        a, b = wait_until(pair, 30)
        return decode(a.body)[-14:-4, 4:150].astype(int), decode(b.body)[-14:-4, 4:150].astype(int)

    def assert_stamped(stamped: np.ndarray, plain: np.ndarray) -> None:
        # The band is the scene darkened to a quarter, with white text on it.
        background = np.abs(stamped - plain // 4).max(axis=2) < 16
        text_pixels = stamped.min(axis=2) > 200
        assert background.mean() > 0.4 and text_pixels.mean() > 0.03, (background.mean(), text_pixels.mean())

    wait_until(lambda: svc.get("/snapshot/stamped").status == 200, 30)
    assert_stamped(*stamped_vs_plain("/snapshot/cam?timestamp=1", "/snapshot/cam?timestamp=0"))
    assert_stamped(*stamped_vs_plain("/snapshot/stamped", "/snapshot/stamped?timestamp=0"))
    plain, again = stamped_vs_plain("/snapshot/cam", "/snapshot/cam?timestamp=0")
    assert np.array_equal(plain, again)  # no stamp unless asked (or the camera's default)
    assert read_exif(svc.get("/snapshot/stamped").body)[exif.TAG_DESCRIPTION] == b"stamped\0"
