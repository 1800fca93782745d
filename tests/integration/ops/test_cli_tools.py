"""`rtsp2jpg probe | snapshot | cameras` as subprocesses against the real RTSP server and service."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np

from tests.support.rtsp_server import wait_until
from tests.support.service_process import REPO, free_port

PASSWORD = "hunter2-secret"
KEY = "cli-test-key"


def rtsp2jpg(*args: str, env: dict[str, str] | None = None, timeout: float = 60) -> subprocess.CompletedProcess:
    full_env = {**os.environ, **(env or {})}
    full_env.pop("RTSP2JPG_CONFIG", None)
    return subprocess.run([sys.executable, "-m", "rtsp2jpg", *args], cwd=REPO, env=full_env,
                          capture_output=True, timeout=timeout)


def with_password(url: str) -> str:
    return url.replace("rtsp://", f"rtsp://viewer:{PASSWORD}@", 1)


def test_probe_reports_sources_codec_size_fps_without_the_password(rtsp):
    res = rtsp2jpg("probe", with_password(rtsp.url("cam")), "--json", "--seconds", "1")
    out, err = res.stdout.decode(), res.stderr.decode()
    assert res.returncode == 0, err
    assert PASSWORD not in out + err
    report = json.loads(out)
    assert report["ok"] is True
    assert report["url"].startswith("rtsp://viewer:***@")
    working = [s for s in report["sources"] if s["ok"]]
    assert working and working[0]["width"] == 640 and working[0]["height"] == 360
    assert working[0]["fps"] > 0 and working[0]["first_frame_sec"] > 0
    assert "H.264" in report["stream"]["codec"]
    assert "probing" in err  # progress on stderr, the report alone on stdout

    human = rtsp2jpg("probe", with_password(rtsp.url("hevc")), "--seconds", "0.5")
    assert human.returncode == 0, human.stderr.decode()
    text = human.stdout.decode()
    assert "H.265" in text and "640x360" in text and "result  works with" in text
    assert PASSWORD not in text + human.stderr.decode()


def test_probe_of_a_dead_camera_fails_with_exit_1_and_a_reason():
    url = f"rtsp://viewer:{PASSWORD}@127.0.0.1:{free_port()}/nothing"
    res = rtsp2jpg("probe", url, "--timeout", "2", "--seconds", "0")
    out, err = res.stdout.decode(), res.stderr.decode()
    assert res.returncode == 1
    assert "FAILED" in out and "no source delivered a frame" in out
    assert PASSWORD not in out + err


def test_bad_url_is_a_usage_error():
    res = rtsp2jpg("probe", "http://example.invalid/x")
    assert res.returncode == 2
    assert "rtsp://" in res.stderr.decode()


def test_snapshot_writes_a_jpeg_to_a_file_and_to_stdout(rtsp, tmp_path: Path):
    out = tmp_path / "out.jpg"
    res = rtsp2jpg("snapshot", with_password(rtsp.url("cam")), "-o", str(out), "-q", "70")
    assert res.returncode == 0, res.stderr.decode()
    assert PASSWORD not in res.stderr.decode()
    image = cv2.imdecode(np.frombuffer(out.read_bytes(), np.uint8), cv2.IMREAD_COLOR)
    assert image.shape[:2] == (360, 640)

    piped = rtsp2jpg("snapshot", rtsp.url("cam"), "-o", "-", "--width", "320")
    assert piped.returncode == 0, piped.stderr.decode()
    small = cv2.imdecode(np.frombuffer(piped.stdout, np.uint8), cv2.IMREAD_COLOR)
    assert small.shape[:2] == (180, 320)


def test_cameras_list_add_remove_against_a_running_service(rtsp, service_factory):
    svc = service_factory({"http": {"api_key": KEY}})
    base = ["cameras", "--url", svc.base]

    refused = rtsp2jpg(*base, "add", rtsp.url("cam"))
    assert refused.returncode == 1 and "401" in refused.stderr.decode()

    env = {"RTSP2JPG_API_KEY": KEY}
    added = rtsp2jpg(*base, "add", with_password(rtsp.url("cam")), "--name", "Gate", env=env)
    assert added.returncode == 0, added.stderr.decode()
    cam_id = added.stdout.decode().strip()
    assert len(cam_id) == 8

    wait_until(lambda: svc.get(f"/status/{cam_id}").json()["status"] == "active", 30)
    listed = rtsp2jpg(*base, "list", env=env)
    assert listed.returncode == 0
    table = listed.stdout.decode()
    assert cam_id in table and "active" in table and "Gate" in table
    assert PASSWORD not in table and "viewer:***@" in table
    as_json = json.loads(rtsp2jpg(*base, "list", "--json", env=env).stdout)
    assert [c["id"] for c in as_json] == [cam_id]

    removed = rtsp2jpg(*base, "remove", cam_id, "--api-key", KEY)
    assert removed.returncode == 0, removed.stderr.decode()
    assert json.loads(rtsp2jpg(*base, "list", "--json", env=env).stdout) == []

    # A camera with a main and a sub stream (here the H.264 and the H.265 mount).
    added = rtsp2jpg(*base, "add", with_password(rtsp.url("cam")), "--sub", with_password(rtsp.url("hevc")), env=env)
    assert added.returncode == 0, added.stderr.decode()
    (listed,) = json.loads(rtsp2jpg(*base, "list", "--json", env=env).stdout)
    assert listed["streams"]["sub"] == with_password(rtsp.url("hevc")).replace(PASSWORD, "***")


def test_cameras_against_no_service_exits_4():
    res = rtsp2jpg("cameras", "--url", f"http://127.0.0.1:{free_port()}", "list", timeout=30)
    assert res.returncode == 4
    assert "cannot reach the service" in res.stderr.decode()
