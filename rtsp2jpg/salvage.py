"""Recovering a corrupt camera registry: tell corruption from other SQLite errors, and read every row of a
damaged file that still reads. registry.py moves the file aside and copies these rows into a fresh one.
"""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path
from typing import Any, NamedTuple

from rtsp2jpg.capture.sources import PREFERENCES
from rtsp2jpg.urls import UrlError, validate_rtsp_url


class Row(NamedTuple):
    """A salvaged registration (the fields of registry.Registration)."""

    id: str
    url: str
    name: str
    prefer: str
    created_at: float
    picture: str = "{}"
    sub_url: str = ""


# A row recovered from the indexes alone has lost its picture settings; its privacy masks may be
# among them, so it comes back fully masked (fail closed) until it is registered again.
FULLY_MASKED = '{"privacy_masks": [[[0, 0], [1, 0], [1, 1], [0, 1]]]}'


def decode_text(raw: bytes) -> str:
    """SQLite text as str, never raising: a damaged page can hold bytes that are not UTF-8."""
    return raw.decode("utf-8", "replace")


# What reading a damaged file raises: sqlite3 also decodes SQLite's error messages, which quote the
# damaged bytes (a corrupt schema's name), and raised UnicodeDecodeError past every sqlite3.Error
# handler (found by test_random_corruption_never_stops_the_service: offset 3854, one byte).
DB_ERRORS = (sqlite3.Error, UnicodeDecodeError)


class Corrupt(sqlite3.DatabaseError):
    """The file opened but failed SQLite's integrity check."""


_CORRUPT_CODES = {11, 26}  # SQLITE_CORRUPT, SQLITE_NOTADB (extended codes keep these in the low byte)


def is_corrupt(e: sqlite3.DatabaseError) -> bool:
    """Corruption, as opposed to a locked, read-only or full database (those keep their own handling)."""
    if isinstance(e, Corrupt):
        return True
    code = getattr(e, "sqlite_errorcode", None)
    if code is not None and code & 0xFF in _CORRUPT_CODES:
        return True
    # A damaged schema-format field in the header is a plain SQLITE_ERROR "unsupported file format".
    text = str(e)
    return any(marker in text for marker in ("malformed", "not a database", "unsupported file format"))


def salvage(path: Path) -> list[Row]:
    """Every cameras row of a damaged file that still reads, best effort, never raising.

    A scan stops at the first bad page, so: forward until it fails, backward until it fails, then
    each rowid in between on its own (a lookup walks from the root and can skip a bad leaf).
    """
    found: dict[int, Row] = {}
    try:
        db = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, timeout=1.0,
                             check_same_thread=False, isolation_level=None)
    except DB_ERRORS:
        return []
    db.text_factory = decode_text
    try:  # lets SQLite read a file shorter than its header says (truncated) instead of refusing it
        db.execute("PRAGMA writable_schema=ON")
    except DB_ERRORS:
        pass
    for select in ("SELECT rowid, id, url, name, prefer, created_at, picture, sub_url FROM cameras",
                   "SELECT rowid, id, url, name, prefer, created_at, picture, '' FROM cameras",  # schema 2
                   "SELECT rowid, id, url, name, prefer, created_at, '{}', '' FROM cameras"):  # schema 1
        try:
            db.execute(f"{select} LIMIT 0")
            break
        except DB_ERRORS:
            continue
    try:
        for order in ("ASC", "DESC"):
            try:
                for row in db.execute(f"{select} ORDER BY rowid {order}"):
                    _keep(found, row)
            except DB_ERRORS:
                pass
        if found:
            low, high = min(found), max(found)
            for rowid in range(max(1, low - 1000), high + 1000):
                if rowid in found:
                    continue
                try:
                    row = db.execute(f"{select} WHERE rowid = ?", (rowid,)).fetchone()
                except DB_ERRORS:
                    continue
                if row:
                    _keep(found, row)
        _from_indexes(db, found)
    finally:
        db.close()
    seen_ids: set[str] = set()
    seen_urls: set[str] = set()
    out = []
    for reg in (found[k] for k in sorted(found)):
        if reg.id not in seen_ids and reg.url not in seen_urls:
            seen_ids.add(reg.id)
            seen_urls.add(reg.url)
            out.append(reg)
    return out


def _from_indexes(db: sqlite3.Connection, found: dict[int, Row]) -> None:
    """Rows whose table page is gone may survive in the two UNIQUE indexes: (id, rowid) and (url, rowid)."""
    columns: list[dict[int, Any]] = []
    for query in ("SELECT rowid, id FROM cameras INDEXED BY sqlite_autoindex_cameras_1",
                  "SELECT rowid, url FROM cameras INDEXED BY sqlite_autoindex_cameras_2"):
        values: dict[int, Any] = {}
        try:
            for rowid, value in db.execute(query):
                values[rowid] = value
        except DB_ERRORS:
            pass
        columns.append(values)
    ids, urls = columns
    for rowid in sorted(set(ids) & set(urls) - set(found)):
        _keep(found, (rowid, ids[rowid], urls[rowid], "", "default", None, FULLY_MASKED, ""))


def _keep(found: dict[int, Row], row: tuple[Any, ...]) -> None:
    """Add a salvaged row if its values still have the stored types (garbage pages can decode oddly)."""
    rowid, cid, url, name, prefer, created, picture, sub_url = row
    if not (isinstance(rowid, int) and isinstance(cid, str) and cid and isinstance(url, str)) or "\ufffd" in url + cid:
        return  # a value whose bytes were not text is damage, not a camera
    try:
        validate_rtsp_url(url)
    except UrlError:
        return
    if not isinstance(created, int | float) or created != created:
        created = time.time()
    found[rowid] = Row(cid, url, name if isinstance(name, str) else "",
                       prefer if prefer in PREFERENCES else "default", float(created),
                       picture if isinstance(picture, str) else FULLY_MASKED, _sub_url(sub_url))


def _sub_url(value: Any) -> str:
    """A salvaged sub stream URL, or none (the camera then runs its main stream alone)."""
    try:
        return validate_rtsp_url(value) if isinstance(value, str) and value else ""
    except UrlError:
        return ""
