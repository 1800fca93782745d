"""The plain poll `GET /snapshot/<id>` skips Bottle (web/fastpath.py): it must answer exactly as the full
route does, keep every check (Host, API key, 404s) and still be counted in /metrics."""

from __future__ import annotations

import http.client as http_client
from email.utils import parsedate_to_datetime

from tests.support.rtsp_server import wait_until
from tests.support.service_process import http

SAME = ("content-type", "cache-control", "vary", "server")


def _active(svc, rtsp, key: str | None = None) -> str:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    cam = http("POST", f"{svc.base}/register", {"rtsp_url": rtsp.url("cam")}, headers=headers).json()["id"]
    wait_until(lambda: http("GET", f"{svc.base}/snapshot/{cam}", headers=headers).status == 200, 30)
    return cam


def test_plain_poll_answers_as_the_full_route(service_factory, rtsp):
    svc = service_factory({"capture": {"jpeg_quality": 80}})
    cam = _active(svc, rtsp)
    fast = svc.get(f"/snapshot/{cam}")
    full = svc.get(f"/snapshot/{cam}?q=80")  # a query string: through Bottle, same view
    assert fast.status == full.status == 200
    assert fast.body.startswith(b"\xff\xd8")
    assert set(fast.headers) == set(full.headers), (fast.headers, full.headers)
    for name in SAME:
        assert fast.headers[name] == full.headers[name]
    assert fast.headers["etag"] == f'"{fast.headers["x-frame-seq"]}"'
    assert int(fast.headers["content-length"]) == len(fast.body)
    taken = float(fast.headers["x-frame-timestamp"])
    assert abs(parsedate_to_datetime(fast.headers["last-modified"]).timestamp() - taken) < 1.0
    webp = svc.get(f"/snapshot/{cam}", headers={"Accept": "image/webp"})
    assert webp.headers["content-type"] == "image/webp" and webp.headers["etag"].endswith('-webp"')
    assert svc.get(f"/snapshot/{cam}", headers={"Accept": "image/*;q=0"}).status == 406
    etag = svc.get(f"/snapshot/{cam}").headers["etag"]
    assert svc.get(f"/snapshot/{cam}", headers={"If-None-Match": etag}).status in (200, 304)
    assert svc.get("/snapshot/nope").status == 404
    metrics = svc.get("/metrics").body.decode()
    counted = [line for line in metrics.splitlines()
               if line.startswith("rtsp2jpg_snapshot_requests_total") and f'camera="{cam}"' in line and '"200"' in line]
    assert counted and float(counted[0].rsplit(" ", 1)[1]) >= 4, counted


def test_plain_poll_keeps_host_and_key_checks(service_factory, rtsp):
    svc = service_factory({"http": {"api_key": "k" * 24, "protect_snapshots": True}})
    cam = _active(svc, rtsp, key="k" * 24)
    assert svc.get(f"/snapshot/{cam}").status == 401
    assert svc.get(f"/snapshot/{cam}", headers={"Authorization": "Bearer wrong"}).status == 401
    assert svc.get(f"/snapshot/{cam}", headers={"X-API-Key": "k" * 24}).status == 200
    bad_host = {"Authorization": f"Bearer {'k' * 24}", "Host": "evil.example"}
    assert svc.get(f"/snapshot/{cam}", headers=bad_host).status == 421


def test_plain_poll_of_a_camera_with_a_sub_stream_answers_from_the_main_one(service_factory, rtsp):
    svc = service_factory({"capture": {"jpeg_quality": 80}})
    body = {"streams": {"main": rtsp.url("cam"), "sub": rtsp.url("hevc")}}
    cam = http("POST", f"{svc.base}/register", body).json()["id"]
    wait_until(lambda: svc.get(f"/snapshot/{cam}").status == 200, 30)
    fast, full = svc.get(f"/snapshot/{cam}"), svc.get(f"/snapshot/{cam}?q=80")
    assert fast.headers["x-stream"] == full.headers["x-stream"] == "main"
    assert set(fast.headers) == set(full.headers)
    assert fast.headers["etag"] == f'"{fast.headers["x-frame-seq"]}"'


def test_plain_polls_on_one_keep_alive_connection_are_whole_jpegs(service_factory, rtsp):
    """The fast path hands Waitress its body as a file wrapper: every answer on a reused connection
    must still be exactly Content-Length bytes of one JPEG, the same bytes for the same frame."""
    svc = service_factory({})
    cam = _active(svc, rtsp)
    conn = http_client.HTTPConnection("127.0.0.1", svc.port, timeout=10)
    by_seq: dict[str, bytes] = {}
    try:
        for _ in range(40):
            conn.request("GET", f"/snapshot/{cam}")
            resp = conn.getresponse()
            body = resp.read()
            assert resp.status == 200
            assert int(resp.getheader("Content-Length")) == len(body)
            assert body.startswith(b"\xff\xd8") and body.endswith(b"\xff\xd9")
            seq = resp.getheader("X-Frame-Seq")
            assert by_seq.setdefault(seq, body) == body
    finally:
        conn.close()
    assert by_seq
