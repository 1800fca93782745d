"""Registry on real SQLite files: persistence, atomicity, permissions, schema version."""

from __future__ import annotations

import os
import sqlite3
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from rtsp2jpg.registry import SCHEMA_VERSION, Registry, RegistryError


def test_add_is_idempotent_per_url_and_survives_reopen(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "r.db"
    reg = Registry(path)
    a, created = reg.add("rtsp://u:p@h/a", "A", "ffmpeg")
    again, created_again = reg.add("rtsp://u:p@h/a", "other name")
    b, _ = reg.add("rtsp://h/b")
    assert created and not created_again and again == a
    assert len(a.id) == 8 and int(a.id, 16) >= 0
    reg.close()
    reg.close()  # idempotent
    reopened = Registry(path)
    assert [r.id for r in reopened.all()] == [a.id, b.id]
    assert reopened.all()[0].prefer == "ffmpeg" and reopened.all()[0].name == "A"
    assert reopened.remove(a.id) is True
    assert reopened.remove(a.id) is False
    assert [r.id for r in reopened.all()] == [b.id]


def test_file_mode_0600_wal_and_schema_version(tmp_path: Path) -> None:
    path = tmp_path / "r.db"
    old = os.umask(0o022)
    try:
        reg = Registry(path)
        reg.add("rtsp://u:secret@h/a")
    finally:
        os.umask(old)
    for p in tmp_path.iterdir():
        assert stat.S_IMODE(p.stat().st_mode) == 0o600, p
    db = sqlite3.connect(path)
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    reg.close()


def test_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "r.db"
    Registry(path).close()
    db = sqlite3.connect(path)
    db.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    db.commit()
    db.close()
    with pytest.raises(RegistryError, match="newer"):
        Registry(path)


def test_unopenable_path_is_a_clear_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(RegistryError, match="cannot open camera registry"):
        Registry(blocker / "r.db")


def test_kill_9_during_registrations_leaves_no_half_camera(tmp_path: Path) -> None:
    """A writer killed at a random point: every row present is whole, the file passes integrity_check."""
    path = tmp_path / "r.db"
    script = textwrap.dedent(f"""
        import sys
        from rtsp2jpg.registry import Registry
        reg = Registry({str(path)!r})
        i = 0
        while True:
            reg.add(f"rtsp://u:p@h/cam{{i}}", f"name{{i}}", "default")
            i += 1
            if i == 20:
                print("going", flush=True)
    """)
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE,
                            cwd=Path(__file__).resolve().parents[3])
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == b"going"
    proc.kill()
    proc.wait()
    db = sqlite3.connect(path)
    assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    db.close()
    rows = Registry(path).all()
    assert len(rows) >= 20
    for r in rows:
        n = r.url.rsplit("cam", 1)[1]
        assert r.name == f"name{n}" and len(r.id) == 8 and r.prefer == "default"
