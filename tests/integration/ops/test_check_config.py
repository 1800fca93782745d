"""`rtsp2jpg check-config` as a process: exit codes, the key path in the error, no secret in the output."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]
EXAMPLE = REPO / "config" / "rtsp2jpg.example.yaml"


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "c.yaml"
    path.write_text(text)
    return path


def test_check_config_cli_exit_codes(tmp_path: Path) -> None:
    ok = subprocess.run([sys.executable, "-m", "rtsp2jpg", "check-config", str(EXAMPLE)],
                        capture_output=True, text=True, cwd=REPO)
    assert ok.returncode == 0, ok.stderr
    assert "config OK" in ok.stdout
    bad = write(tmp_path, "cameras: [{id: a, url: 'rtsp://user:hunter2@h/x', jpeg_quality: 0}]\n")
    res = subprocess.run([sys.executable, "-m", "rtsp2jpg", "check-config", str(bad)],
                         capture_output=True, text=True, cwd=REPO)
    assert res.returncode == 2
    assert "cameras[0].jpeg_quality" in res.stderr
    assert "hunter2" not in res.stderr + res.stdout
    missing = subprocess.run([sys.executable, "-m", "rtsp2jpg", "check-config", str(tmp_path / "nope.yaml")],
                             capture_output=True, text=True, cwd=REPO)
    assert missing.returncode == 2 and "No such file" in missing.stderr
