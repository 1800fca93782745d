"""Security review items, each a test: passwords stay inside, files are private, keys compare in
constant time, only rtsp/rtsps reaches OpenCV, and `capture.allow_networks` stops a leaked key from
turning the device into a scanner."""

from __future__ import annotations

import io
import json
import os
import socket
import stat
import sys
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rtsp2jpg import urls
from tests.support.fault_servers import FakeRtsp, SilentServer
from tests.support.rtsp_server import wait_until

SECRET = "Sup3rS3cret"
ENCODED = SECRET + "%40x%3A"  # percent-encoded "@x:": the decoded form must not leak either
DECODED = SECRET + "@x:"
NOISY_NATIVE_LOGS = {"OPENCV_LOG_LEVEL": "DEBUG", "OPENCV_VIDEOIO_DEBUG": "1", "OPENCV_FFMPEG_DEBUG": "1",
                     "GST_DEBUG": "3"}


def _leaks(text: str) -> list[str]:
    return [s for s in (SECRET, DECODED, "%40x%3A") if s in text]


def test_passwords_never_leave_the_process(service_factory, rtsp, tmp_path):
    """Logs (OpenCV/FFmpeg/GStreamer debug output included), every response and error, every MQTT message."""
    from tests.support.mosquitto import Mosquitto, Subscriber

    port = urlsplit(rtsp.url("cam")).port
    broker = Mosquitto(tmp_path / "broker").start()
    sub = Subscriber(broker, "#").start()
    with FakeRtsp("auth") as auth, SilentServer() as silent:
        svc = service_factory({
            "mqtt": {"enabled": True, "host": "127.0.0.1", "port": broker.port, "snapshot_interval_sec": 1},
            "capture": {"open_timeout_sec": 4, "stall_timeout_sec": 4, "reconnect_delay_sec": 0.5,
                        "auth_retry_delay_sec": 30},
            "cameras": [{"id": "good", "url": f"rtsp://admin:{ENCODED}@127.0.0.1:{port}/cam"},
                        {"id": "locked", "url": auth.url(userinfo=f"admin:{ENCODED}")}],
        }, env=NOISY_NATIVE_LOGS)
        reg = svc.post("/register", {"rtsp_url": silent.url(userinfo=f"viewer:{ENCODED}"), "name": "silent"})
        assert reg.status == 200, reg.body
        silent_id = reg.json()["id"]
        wait_until(lambda: svc.status("good")["status"] == "active", 30)
        wait_until(lambda: "password" in (svc.status("locked")["error"] or ""), 30)
        wait_until(lambda: svc.status(silent_id)["status"] == "error", 30)
        responses = [
            svc.get("/health"), svc.get("/cameras"), svc.get("/openapi.json"),
            svc.get("/status/good"), svc.get("/status/locked"), svc.get(f"/status/{silent_id}"),
            svc.get("/snapshot/locked"), svc.get("/snapshot/nope"), svc.get("/snapshot/good?q=abc"),
            svc.post("/register", {"rtsp_url": f"rtsp://admin:{ENCODED}@bad host/x"}),
            svc.post("/register", {"rtsp_url": f"file://admin:{ENCODED}@host/etc/passwd"}),
            svc.post("/register", {"rtsp_url": silent.url(userinfo=f"viewer:{ENCODED}")}),  # same camera again
            svc.post("/register", raw=f'{{"rtsp_url": "rtsp://a:{ENCODED}@h/"'.encode()),  # broken JSON
            svc.post("/unregister/good"),
        ]
        for r in responses:
            blob = r.body.decode("latin-1") + json.dumps(r.headers)
            assert not _leaks(blob), (r.status, blob[:500])
        # Every GET route the app documents (dashboard, metrics, streams as they land), for every camera.
        for path in svc.get("/openapi.json").json()["paths"]:
            for cam in ("good", "locked", silent_id):
                blob = _fetch_some(svc.port, path.replace("{camera_id}", cam))
                assert not _leaks(blob), (path, blob[:500])
        assert svc.get("/snapshot/good").status == 200
        wait_until(lambda: any(m.topic.endswith("/snapshot") for m in sub.messages), 20)
        assert svc.stop() == 0
    sub.stop()
    broker.stop()
    assert any(m.topic.endswith("/locked/status") for m in sub.messages)
    for m in sub.messages:
        assert not _leaks(m.topic + m.payload.decode("latin-1")), (m.topic, m.payload[:300])
    log = svc.log()
    assert not _leaks(log), [line for line in log.splitlines() if _leaks(line)][:5]
    assert "rejected the user name or password" in log  # the reason is there, just not the secret


def _fetch_some(port: int, path: str, limit: int = 1 << 16) -> str:
    """Status line, headers and up to `limit` body bytes (an MJPEG stream never ends)."""
    import http.client

    # A short timeout: a stream of a camera without frames sends nothing, not even its headers.
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    text = ""
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        text = f"{resp.status} {resp.getheaders()} "
        text += resp.read1(limit).decode("latin-1")
    except TimeoutError:
        pass
    finally:
        conn.close()
    return text


def test_native_stderr_redactor_filters_fd2(tmp_path):
    """Unit: what a C library writes to fd 2 is redacted, URLs and bare (decoded) passwords alike."""
    from rtsp2jpg.process.nativelog import NativeStderrRedactor

    out = tmp_path / "stderr.txt"
    code = (
        "import os, sys\n"
        "from rtsp2jpg.process.nativelog import NativeStderrRedactor\n"
        f"r = NativeStderrRedactor(lambda: {urls.passwords('rtsp://u:' + ENCODED + '@h/')!r})\n"
        "r.start()\n"
        f"os.write(2, b'VIDEOIO(FFMPEG): trying capture filename=rtsp://u:{ENCODED}@h:554/x\\n')\n"
        f"os.write(2, b'rtspsrc: setting user-pw to {DECODED} now\\npartial line {DECODED}')\n"
        "r.stop()\n"
        "os.write(2, b'\\nafter stop\\n')\n"
    )
    with open(out, "wb") as fh:
        import subprocess

        subprocess.run([sys.executable, "-c", code], stderr=fh, check=True, cwd=Path(__file__).parents[3])
    text = out.read_text()
    assert "rtsp://u:***@h:554/x" in text
    assert "user-pw to *** now" in text and "partial line ***" in text and "after stop" in text
    assert not _leaks(text)
    assert NativeStderrRedactor().clean("no secrets here") == "no secrets here"


def test_registry_files_are_private(service_factory, tmp_path):
    """0600 for the database and its -wal/-shm files, even under umask 000."""
    old = os.umask(0)
    try:
        svc = service_factory({})
    finally:
        os.umask(old)
    assert svc.post("/register", {"rtsp_url": f"rtsp://u:{SECRET}@127.0.0.1:9/x"}).status == 200
    db = Path(svc.config["storage"]["db_path"])
    files = [db, db.with_name(db.name + "-wal"), db.with_name(db.name + "-shm")]
    for f in files:
        assert f.exists(), f
        assert stat.S_IMODE(f.stat().st_mode) == 0o600, (f, oct(f.stat().st_mode))


def test_api_key_checked_in_constant_time(service_factory, monkeypatch, tmp_path):
    key = "k3y-" + "x" * 28
    svc = service_factory({"http": {"api_key": key}})
    ok = {"Authorization": f"Bearer {key}"}
    assert svc.get("/cameras", headers=ok).status == 200
    assert svc.get("/cameras", headers={"X-API-Key": key}).status == 200
    for wrong in (key[:-1] + "y", key[:-1], key + "x", "", "Bearer", "é" * 8):
        r = svc.get("/cameras", headers={"Authorization": f"Bearer {wrong}"})
        assert r.status == 401 and r.json()["detail"], wrong
    assert svc.post("/register", {"rtsp_url": "rtsp://127.0.0.1:9/x"}).status == 401

    # In process: the comparison goes through hmac.compare_digest, never ==.
    from rtsp2jpg import config
    from rtsp2jpg import service as app_mod
    from rtsp2jpg.capture.backend import default_backend
    from rtsp2jpg.web import app as http

    calls = []
    real = http.hmac.compare_digest
    monkeypatch.setattr(http.hmac, "compare_digest", lambda a, b: calls.append((a, b)) or real(a, b))
    cfg = config.load(env={}, overrides={"http": {"api_key": key}, "storage": {"db_path": str(tmp_path / "r.db")}})
    service = app_mod.Service(cfg, default_backend(cfg))
    try:
        status, _ = _wsgi(http.make_app(service), "GET", "/cameras", {"HTTP_X_API_KEY": "wrong"})
        assert status.startswith("401") and calls
    finally:
        service.stop()


def _wsgi(app, method: str, path: str, extra: dict | None = None, body: bytes = b"") -> tuple[str, bytes]:
    captured = {}
    environ = {"REQUEST_METHOD": method, "PATH_INFO": path, "QUERY_STRING": "", "SERVER_NAME": "t",
               "SERVER_PORT": "80", "REMOTE_ADDR": "127.0.0.1", "wsgi.input": io.BytesIO(body),
               "CONTENT_LENGTH": str(len(body)), "wsgi.url_scheme": "http", "wsgi.errors": sys.stderr,
               **(extra or {})}
    out = app(environ, lambda status, headers, *_: captured.update(status=status))
    return captured["status"], b"".join(out)


NASTY = ["file:///etc/passwd", "FILE:///etc/passwd", "http://127.0.0.1/", "rtmp://h/x", "rtspx://h/",
         "concat:rtsp://h/a|file:///etc/passwd", "subfile,,start,0,end,0,,:rtsp://h/", " rtsp://h/",
         "rtsp:/etc/passwd", "rtsp:///etc/passwd", "rtsp://h/ ! filesrc location=/etc/passwd",
         'rtsp://h/" ! filesrc location="/etc/passwd', "rtsp://h/\r\nX-Injected: 1", "rtsp://h/\x00",
         "rtsp://h:0/", "rtsp://h:99999/", "rtsp://[::1/", "", "rtsp://", "gst-launch-1.0 videotestsrc",
         "rtsp://h/" + "a" * 3000, "rtsp://h/\ud800"]


@pytest.mark.parametrize("url", NASTY)
def test_only_rtsp_urls_are_accepted(url):
    with pytest.raises(urls.UrlError):
        urls.validate_rtsp_url(url)


@settings(max_examples=400, deadline=None)
@given(st.one_of(st.text(max_size=80), st.text(max_size=60).map(lambda t: "rtsp://" + t),
                 st.text(max_size=60).map(lambda t: "rtsps://h" + t)))
def test_whatever_passes_validation_is_a_plain_rtsp_url(text):
    try:
        urls.validate_rtsp_url(text)
    except urls.UrlError:
        return
    scheme = urlsplit(text).scheme.lower()
    assert scheme in ("rtsp", "rtsps")
    assert not any(c in text for c in " \t\r\n\"'!\\`|<>{}\x00")


def test_opencv_is_never_handed_another_scheme():
    """Defence in depth: even a SourceSpec built by mistake cannot make FFmpeg open a file."""
    from rtsp2jpg.capture import opencv as pipeline

    for target in ("file:///etc/passwd", "/etc/passwd", "concat:a|b", "http://127.0.0.1:9/"):
        with pytest.raises(pipeline.SourceError, match="refusing"):
            pipeline.open_source(pipeline.SourceSpec("ffmpeg", "ffmpeg", target))


def test_http_register_rejects_other_schemes(service_factory):
    svc = service_factory({})
    for url in NASTY:
        r = svc.post("/register", {"rtsp_url": url})
        assert r.status == 400, (url, r.status, r.body)
        assert r.json()["detail"].startswith("rtsp_url ")
    assert svc.get("/cameras").json() == []


def test_allow_networks_blocks_registrations_elsewhere(service_factory):
    svc = service_factory({"capture": {"allow_networks": ["127.0.0.0/8", "::1/128"]}})
    assert svc.post("/register", {"rtsp_url": "rtsp://127.0.0.1:9/a"}).status == 200
    assert svc.post("/register", {"rtsp_url": "rtsp://localhost:9/b"}).status == 200
    for url in ("rtsp://10.1.2.3/x", "rtsp://192.168.1.1:554/x", "rtsp://[::ffff:10.0.0.1]/x",
                "rtsp://[2001:db8::1]/x", "rtsp://u:p@8.8.8.8/x"):
        r = svc.post("/register", {"rtsp_url": url})
        assert r.status == 403, (url, r.status, r.body)
        assert "allow_networks" in r.json()["detail"] and ":p@" not in r.body.decode()
    r = svc.post("/register", {"rtsp_url": "rtsp://no-such-camera.invalid/x"})
    assert r.status == 400 and "resolve" in r.json()["detail"]
    assert len(svc.get("/cameras").json()) == 2


def test_check_allowed_needs_every_resolved_address_inside():
    def resolver(*addrs):
        return lambda host, *_a, **_k: [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (a, 0)) for a in addrs]

    nets = ["192.168.1.0/24"]
    urls.check_allowed("rtsp://cam.lan/x", nets, resolver("192.168.1.10"))
    with pytest.raises(urls.NotAllowedError):
        urls.check_allowed("rtsp://cam.lan/x", nets, resolver("192.168.1.10", "10.0.0.1"))
    urls.check_allowed("rtsp://anything/x", [], resolver("10.0.0.1"))  # no list: no restriction


def test_config_rejects_bad_networks(tmp_path):
    from rtsp2jpg import config

    with pytest.raises(config.ConfigError, match="capture.allow_networks"):
        config.load(env={}, overrides={"capture": {"allow_networks": ["10.0.0.0/8", "lan"]}})
    cfg = config.load(env={"RTSP2JPG_CAPTURE_ALLOW_NETWORKS": "10.0.0.0/8, 192.168.0.0/16"})
    assert cfg.capture.allow_networks == ("10.0.0.0/8", "192.168.0.0/16")
