"""Picture settings of registered cameras on real SQLite files: a schema-1 file migrates, the settings
survive a reopen, and a salvaged row whose settings are lost comes back fully masked (fail closed)."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

from rtsp2jpg.registry import Registry
from rtsp2jpg.salvage import FULLY_MASKED, _keep


def test_schema_1_file_migrates_and_keeps_its_rows(tmp_path: Path) -> None:
    path = tmp_path / "r.db"
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE cameras (id TEXT PRIMARY KEY, url TEXT NOT NULL UNIQUE, name TEXT NOT NULL "
               "DEFAULT '', prefer TEXT NOT NULL DEFAULT 'default', created_at REAL NOT NULL)")
    db.execute("INSERT INTO cameras VALUES ('abcd1234', 'rtsp://h/a', 'A', 'default', 1.0)")
    db.execute("PRAGMA user_version = 1")
    db.commit()
    db.close()
    reg = Registry(path)
    (row,) = reg.all()
    assert (row.id, row.picture) == ("abcd1234", "{}")
    settings = json.dumps({"privacy_masks": [[[0, 0], [1, 0], [0, 1]]], "rotate": 90, "crop": [], "timestamp": True})
    added, created = reg.add("rtsp://h/b", "B", "default", settings)
    reg.close()
    again = Registry(path)
    assert created and [r.picture for r in again.all()] == ["{}", settings]
    again.close()


def test_a_row_salvaged_without_its_settings_is_fully_masked() -> None:
    found: dict = {}
    _keep(found, (1, "abcd1234", "rtsp://h/a", "", "default", 1.0, None, "file:///etc/passwd"))
    assert found[1].picture == FULLY_MASKED
    assert found[1].sub_url == ""  # a sub stream URL that does not validate is dropped, the camera kept


def test_schema_2_file_migrates_and_sub_streams_survive_a_reopen(tmp_path: Path) -> None:
    path = tmp_path / "r.db"
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE cameras (id TEXT PRIMARY KEY, url TEXT NOT NULL UNIQUE, name TEXT NOT NULL "
               "DEFAULT '', prefer TEXT NOT NULL DEFAULT 'default', created_at REAL NOT NULL, "
               "picture TEXT NOT NULL DEFAULT '{}')")
    db.execute("INSERT INTO cameras VALUES ('abcd1234', 'rtsp://h/a', 'A', 'default', 1.0, '{\"rotate\": 90}')")
    db.execute("PRAGMA user_version = 2")
    db.commit()
    db.close()
    reg = Registry(path)
    (row,) = reg.all()
    assert (row.id, row.picture, row.sub_url) == ("abcd1234", '{"rotate": 90}', "")
    reg.add("rtsp://h/main", "B", "default", "{}", "rtsp://h/sub")
    reg.close()
    again = Registry(path)
    assert [r.sub_url for r in again.all()] == ["", "rtsp://h/sub"]
    again.close()
