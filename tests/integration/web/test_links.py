"""Signed links end to end: with protect_snapshots on, a link from POST /cameras/<id>/links (or
`rtsp2jpg link`) opens that camera's snapshot or stream without the key until it expires; tampered,
foreign, expired or keyless requests get a clear JSON 401/403."""

from __future__ import annotations

import http.client as http_client
import subprocess
import sys
from urllib.parse import parse_qs, urlsplit

from tests.support.rtsp_server import REPO_ROOT, wait_until
from tests.support.service_process import http

KEY = "link-test-key"
AUTH = {"Authorization": f"Bearer {KEY}"}


def test_signed_links_open_one_camera_until_they_expire(rtsp, service_factory):
    svc = service_factory({"http": {"api_key": KEY, "protect_snapshots": True},
                           "cameras": [{"id": "cam", "url": rtsp.url("cam")},
                                       {"id": "other", "url": rtsp.url("cam")}]})
    wait_until(lambda: svc.get("/snapshot/cam", headers=AUTH).status == 200, 30)
    assert svc.get("/snapshot/cam").status == 401  # protected
    assert svc.post("/cameras/cam/links", {"ttl_sec": 60}).status == 401  # making one needs the key
    for bad in ({"ttl_sec": 0}, {"ttl_sec": 10**9}, {"ttl_sec": "1h"}, {"ttl_sec": True}):
        r = svc.post("/cameras/cam/links", bad, headers=AUTH)
        assert r.status == 400 and "ttl_sec" in r.json()["detail"]
    assert svc.post("/cameras/nope/links", {"ttl_sec": 60}, headers=AUTH).status == 404

    made = svc.post("/cameras/cam/links", {"ttl_sec": 600}, headers=AUTH).json()
    assert made["url"].startswith("/snapshot/cam?exp=") and made["stream_url"].startswith("/stream/cam?exp=")
    r = svc.get(made["url"])
    assert r.status == 200 and r.body[:2] == b"\xff\xd8"
    query = urlsplit(made["url"]).query
    r = svc.get(f"/snapshot/cam.webp?width=160&{query}")  # any format and size of the same snapshot
    assert r.status == 200 and r.headers["content-type"] == "image/webp"

    # The stream link opens the MJPEG stream (read the head, then hang up).
    conn = http_client.HTTPConnection("127.0.0.1", svc.port, timeout=10)
    conn.request("GET", made["stream_url"])
    assert conn.getresponse().status == 200
    conn.close()

    exp, sig = parse_qs(query)["exp"][0], parse_qs(query)["sig"][0]
    refused = [
        f"/snapshot/other?{query}",  # another camera
        f"/stream/cam?{query}",  # another resource
        f"/status/cam?{query}",  # not a link target: the key is still needed
        f"/snapshot/cam?exp={int(exp) + 1}&sig={sig}",  # a longer life
        f"/snapshot/cam?exp={exp}&sig={sig[:-1]}{'A' if sig[-1] != 'A' else 'B'}",
        f"/snapshot/cam?exp={exp}",
        f"/snapshot/cam?sig={sig}",
        f"/snapshot/cam?exp=0{exp}&sig={sig}",
    ]
    for path in refused:
        r = svc.get(path)
        assert r.status in (401, 403) and r.json()["detail"], (path, r.status, r.body[:100])
    assert svc.get(f"/snapshot/other?{query}").status == 403

    # Expiry: a 1 s link works, then answers 401 with a sentence (no sleep: poll until it expires).
    short = svc.post("/cameras/cam/links", {"ttl_sec": 1}, headers=AUTH).json()["url"]
    expired = wait_until(lambda: (lambda r: r.status == 401 and r)(svc.get(short)), 10)
    assert "expired" in expired.json()["detail"]

    # The CLI makes links from the same config, without the service.
    out = subprocess.run([sys.executable, "-m", "rtsp2jpg", "link", "other", "--ttl", "5m",
                          "--config", str(svc.workdir / "config.yaml")], cwd=REPO_ROOT, capture_output=True,
                         text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    r = http("GET", svc.base + out.stdout.strip())
    assert out.stdout.startswith("/snapshot/other?exp=") and r.status == 200


def test_links_need_a_key(service_factory):
    svc = service_factory({})
    r = svc.post("/cameras/x/links", {"ttl_sec": 60})
    assert r.status == 409 and "api_key" in r.json()["detail"]
