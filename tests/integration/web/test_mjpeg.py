"""GET /stream/<id>: MJPEG viewers share encodes, are capped, and a stalled one slows nobody."""

from __future__ import annotations

import http.client
import socket
import threading
import time

import numpy as np

from rtsp2jpg.capture.frames import Frame, FrameSlot
from rtsp2jpg.web import mjpeg
from tests.support.rtsp_server import wait_until


class Viewer(threading.Thread):
    """Reads parts of an MJPEG stream as fast as they come and notes each frame's sequence number."""

    def __init__(self, port: int, path: str) -> None:
        super().__init__(daemon=True)
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=20)
        self.conn.request("GET", path)
        self.resp = self.conn.getresponse()
        self.seqs: list[int] = []
        self.sizes: list[int] = []
        self.stop = threading.Event()

    def run(self) -> None:
        try:
            while not self.stop.is_set():
                headers = {}
                line = self.resp.readline()
                if not line:
                    return
                if not line.startswith(b"--" + mjpeg.BOUNDARY.encode()):
                    continue
                while (line := self.resp.readline().strip()):
                    key, _, val = line.decode().partition(":")
                    headers[key.lower()] = val.strip()
                body = self.resp.read(int(headers["content-length"]))
                assert body[:2] == b"\xff\xd8"
                self.seqs.append(int(headers["x-frame-seq"]))
                self.sizes.append(len(body))
        except OSError:
            return

    def close(self) -> None:
        self.stop.set()
        self.conn.close()


def stalled_client(port: int, path: str) -> socket.socket:
    """A client that asks for a stream and then never reads a byte."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", port))
    sock.sendall(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode())
    return sock


def metric(svc, name: str) -> float:
    for line in svc.get("/metrics").body.decode().splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{"):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"{name} not in /metrics")


def test_stalled_viewer_slows_neither_the_camera_nor_other_viewers(rtsp, service_factory):
    svc = service_factory({
        "http": {"stream_max_fps": 25, "stream_max_clients": 3, "stream_stall_timeout_sec": 3},
        "cameras": [{"id": "cam", "url": rtsp.url("cam")}],
    })
    baseline_fps = wait_until(lambda: svc.status("cam")["fps"], 30)
    stalled = stalled_client(svc.port, "/stream/cam?fps=25")
    viewers = [Viewer(svc.port, "/stream/cam?fps=10"), Viewer(svc.port, "/stream/cam?fps=10&width=320")]
    try:
        for v in viewers:
            assert v.resp.status == 200
            assert v.resp.getheader("Content-Type") == mjpeg.CONTENT_TYPE
            v.start()
        wait_until(lambda: metric(svc, 'rtsp2jpg_stream_viewers{camera="cam"}') == 3, 15)
        fourth = svc.get("/stream/cam")
        assert fourth.status == 503 and "stream_max_clients" in fourth.json()["detail"]

        # The stalled client fills its socket buffers, then skips frames, then is dropped.
        wait_until(lambda: metric(svc, "rtsp2jpg_stream_viewers_dropped_total") >= 1, 90, interval=0.5)
        wait_until(lambda: all(len(v.seqs) >= 60 for v in viewers), 60, interval=0.5)
        cam_fps = svc.status("cam")["fps"]
        skipped = metric(svc, "rtsp2jpg_stream_frames_skipped_total")
    finally:
        stalled.close()
        for v in viewers:
            v.close()
    assert metric(svc, 'rtsp2jpg_stream_viewers{camera="cam"}') <= 2
    print(f"camera fps {baseline_fps} -> {cam_fps}; stalled viewer skipped {skipped:g} frames before its drop; "
          + "; ".join(f"viewer {i}: {len(v.seqs)} parts over {v.seqs[-1] - v.seqs[0]} camera frames"
                      for i, v in enumerate(viewers)))
    assert cam_fps >= 0.6 * baseline_fps  # the camera thread kept draining its stream
    for v in viewers:
        # Frames the camera produced while this viewer watched, at the 10 fps it asked for.
        span = v.seqs[-1] - v.seqs[0]
        expected = span * 10 / 25
        assert len(v.seqs) >= 0.6 * expected, (len(v.seqs), span)
        assert v.seqs == sorted(set(v.seqs))  # newest frames only, never one twice
    assert viewers[1].sizes[-1] < viewers[0].sizes[-1]  # width=320 is a smaller encode


def test_stream_of_unknown_camera_and_bad_arguments(rtsp, service_factory):
    svc = service_factory({"cameras": [{"id": "cam", "url": rtsp.url("cam")}]})
    assert svc.get("/stream/nope").status == 404
    assert svc.get("/stream/cam?fps=abc").status == 400
    assert svc.get("/stream/cam?width=0").status == 400


class FakeCamera:
    def __init__(self) -> None:
        self.slot = FrameSlot()
        self.alive = True


def test_viewers_share_one_encode_per_frame_and_skip_when_backlogged():
    cam = FakeCamera()
    cam.slot.put(Frame(1, np.zeros((36, 64, 3), np.uint8), captured_at=1e12))  # "captured" in the future: fresh
    calls = []

    def encode(image, quality, width, height):
        calls.append((quality, width))
        return b"\xff\xd8jpeg"

    stats = mjpeg.ViewerStats()
    common = dict(quality=80, width=0, fps=50.0, stall_timeout=0.5, gone=lambda: False, stats=stats)
    a = mjpeg.viewer(lambda: cam, encode, backlog=lambda: 0, **common)
    b = mjpeg.viewer(lambda: cam, encode, backlog=lambda: 0, **common)
    first_a, first_b = next(a), next(b)
    assert first_a == first_b and b"X-Frame-Seq: 1" in first_a
    assert calls == [(80, 0)]  # one encode for both viewers

    stuck = mjpeg.viewer(lambda: cam, encode, backlog=lambda: 10**7, **common)
    assert list(stuck) == []  # never reads: frames are skipped, then the viewer is dropped
    assert stats.frames_skipped > 0 and stats.dropped_slow == 1
    a.close()
    b.close()


def test_a_viewer_moves_to_the_stream_its_source_names_now():
    """A feed's viewer opened while the sub stream was still connecting moves to it once it delivers;
    each stream's frames are numbered apart, so the sub's frame 1 is sent after the main's frame 5."""
    main, sub = FakeCamera(), FakeCamera()
    main.slot.put(Frame(5, np.zeros((36, 64, 3), np.uint8), captured_at=1e12))
    sub.slot.put(Frame(1, np.ones((18, 32, 3), np.uint8), captured_at=1e12))
    reading = [main]
    stats = mjpeg.ViewerStats()
    deadline = time.monotonic() + 5  # a viewer stuck on the main stream ends here: StopIteration, not a hang
    parts = mjpeg.viewer(lambda: reading[0], lambda image, q, w, h: b"\xff\xd8%d" % image.shape[1], quality=80,
                         width=0, fps=50.0, stall_timeout=0.5, backlog=lambda: 0,
                         gone=lambda: time.monotonic() > deadline, stats=stats)
    first = next(parts)
    assert b"X-Frame-Seq: 5" in first and first.endswith(b"64\r\n")  # encoded from the main stream's 64-wide picture
    reading[0] = sub  # the sub stream came up
    second = next(parts)
    assert b"X-Frame-Seq: 1" in second and second.endswith(b"32\r\n")
    parts.close()


def test_limits_per_camera_and_in_all():
    limits = mjpeg.StreamLimits(per_camera=2, total=3)
    assert limits.acquire("a") is None and limits.acquire("a") is None
    assert "stream_max_clients" in limits.acquire("a")
    assert limits.acquire("b") is None
    assert "stream_max_total" in limits.acquire("c")
    limits.release("a")
    assert limits.acquire("c") is None
    assert limits.viewers() == {"a": 1, "b": 1, "c": 1}


def test_open_viewers_do_not_hold_up_shutdown(rtsp, service_factory):
    svc = service_factory({"cameras": [{"id": "cam", "url": rtsp.url("cam")}]})
    wait_until(lambda: svc.status("cam")["status"] == "active", 30)
    viewers = [Viewer(svc.port, "/stream/cam?fps=0.1"), Viewer(svc.port, "/stream/cam")]
    for v in viewers:
        v.start()
    wait_until(lambda: metric(svc, 'rtsp2jpg_stream_viewers{camera="cam"}') == 2, 15)
    assert svc.stop() == 0
    assert "still running" not in svc.log()  # viewers ended with the server, not after its grace period
    for v in viewers:
        v.close()
