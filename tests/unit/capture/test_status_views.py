"""The views of a camera's state: /status, one /cameras entry and the MQTT status payload share their
stream fields (capture.status.stream_fields), and none of them carries the URL's password."""

from __future__ import annotations

from dataclasses import dataclass, field

from rtsp2jpg.capture.status import Stats, Status, list_view, status_view
from rtsp2jpg.mqtt.contract import status_payload


@dataclass
class _Camera:
    id: str = "door"
    name: str = "Front door"
    url: str = "rtsp://admin:hunter2@10.0.0.5:554/stream1"
    source: str = "api"
    status: Status = Status.ACTIVE
    since: float = 1700000000.0
    error: str = ""
    stats: Stats = field(default_factory=Stats)


def test_active_camera_views_agree_on_the_stream_fields() -> None:
    cam = _Camera(stats=Stats(frames=250, reconnects=2, last_seen=1700000010.123456, fps=25.0, width=1280,
                              height=720, backend="ffmpeg"))
    status = status_view(cam)
    entry = list_view(cam)
    payload = status_payload("active", "connecting", cam.since, "", cam.stats)
    shared = {"last_seen": 1700000010.123, "backend": "ffmpeg", "fps": 25.0}
    assert {k: status[k] for k in shared} == shared == {k: entry[k] for k in shared} == {k: payload[k] for k in shared}
    assert (status["width"], status["height"]) == (payload["width"], payload["height"]) == (1280, 720)
    assert entry["size"] == [1280, 720] and "width" not in entry
    assert status["reconnects"] == 1 and status["frames"] == 250  # the first connect is not a reconnect
    assert list(entry) == ["id", "token", "name", "url", "source", "status", "last_seen", "backend", "fps", "size",
                           "error"]
    assert "hunter2" not in repr((status, entry, payload)) and entry["url"].startswith("rtsp://admin:***@10.0.0.5")


def test_a_camera_that_never_delivered_shows_nulls_not_zeros() -> None:
    cam = _Camera(status=Status.CONNECTING, error="refused")
    status, entry = status_view(cam), list_view(cam)
    assert status["last_seen"] is None and status["width"] is None and status["backend"] is None
    assert entry["size"] is None and entry["last_seen"] is None
    assert status["error"] == "refused"
