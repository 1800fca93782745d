"""Registry: the cameras registered over HTTP, in SQLite, so a restart or a crash brings them back.

It stores what the operator asked for (URL, name, preference), never runtime status: status lives
on the Camera and is published, so nothing here goes stale after a crash. Cameras declared in the
YAML file are not stored: the file is their registry.
"""

from __future__ import annotations

import logging
import os
import secrets
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rtsp2jpg.salvage import DB_ERRORS, Corrupt, decode_text, is_corrupt, salvage
from rtsp2jpg.urls import canonical

log = logging.getLogger(__name__)

SCHEMA_VERSION = 3
_MIGRATIONS = {
    1: """
        CREATE TABLE cameras (
            id TEXT PRIMARY KEY,
            url TEXT NOT NULL UNIQUE,
            name TEXT NOT NULL DEFAULT '',
            prefer TEXT NOT NULL DEFAULT 'default',
            created_at REAL NOT NULL
        );
    """,
    # Picture settings of a registered camera (privacy masks, rotate, crop, timestamp) as JSON.
    2: "ALTER TABLE cameras ADD COLUMN picture TEXT NOT NULL DEFAULT '{}'",
    # The sub stream of a camera registered with `streams: {main, sub}` (url holds main); '' = none.
    3: "ALTER TABLE cameras ADD COLUMN sub_url TEXT NOT NULL DEFAULT ''",
}
_SELECT_ALL = "SELECT id, url, name, prefer, created_at, picture, sub_url FROM cameras ORDER BY created_at, id"
_INSERT = ("INSERT INTO cameras (id, url, name, prefer, created_at, picture, sub_url) "
           "VALUES (?, ?, ?, ?, ?, ?, ?)")


class RegistryError(RuntimeError):
    """The registry file cannot be read or written (read-only, disk full, locked, corrupt)."""


@dataclass(frozen=True)
class Registration:
    id: str
    url: str
    name: str
    prefer: str
    created_at: float
    picture: str = "{}"  # JSON: privacy_masks, rotate, crop, timestamp (view.Picture.settings())
    sub_url: str = ""  # the sub stream (capture/streams.py); url is then the main stream


class Registry:
    """One SQLite file, one connection guarded by a lock: writes are rare and tiny."""

    def __init__(self, path: str | os.PathLike[str], busy_timeout_sec: float = 5.0) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        # Set when a corrupt file was moved aside at open: {"recovered_from", "rows_recovered", "error"}.
        self.recovery: dict[str, Any] | None = None
        try:
            self._open(busy_timeout_sec)
        except sqlite3.DatabaseError as e:
            if not is_corrupt(e):
                raise
            self._recover(busy_timeout_sec, str(e))

    def _open(self, busy_timeout_sec: float) -> None:
        """Open (creating if needed) and migrate; sqlite3.DatabaseError escapes only for corruption."""
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            # Create the file ourselves so it is 0600 from its first byte: camera URLs carry passwords.
            # SQLite gives the -wal and -shm files the same mode as the database file.
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
            os.close(fd)
            os.chmod(self.path, 0o600)
            self._db = sqlite3.connect(self.path, timeout=busy_timeout_sec, check_same_thread=False,
                                       isolation_level=None)
            self._db.text_factory = decode_text
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._migrate()
            problem = self._db.execute("PRAGMA integrity_check(1)").fetchone()[0]
            if problem != "ok":
                self._db.close()
                raise Corrupt(f"integrity check failed: {problem}")
        except UnicodeDecodeError:  # SQLite's error message quoted damaged bytes (salvage.DB_ERRORS)
            raise Corrupt("damaged beyond SQLite's own error message (it is not text)") from None
        except (OSError, sqlite3.Error) as e:
            if isinstance(e, sqlite3.DatabaseError) and is_corrupt(e):
                raise
            if not self._open_read_only(busy_timeout_sec):
                raise RegistryError(f"cannot open camera registry {self.path}: {e}") from None
            log.error("camera registry %s is read-only (%s): registered cameras run, but registering and "
                      "unregistering answer 503 until it is writable and the service restarts", self.path, e)

    def _recover(self, busy_timeout_sec: float, error: str) -> None:
        """Move the damaged file (and its -wal/-shm) aside, start a fresh one, copy what still reads.

        A restart loop on a bad SD-card sector would take the config cameras down too; losing a
        few registrations (kept in the moved-aside file for a manual look) is the lesser harm.
        """
        if getattr(self, "_db", None) is not None:
            self._db.close()
        rows = salvage(self.path)
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        aside = self.path.with_name(f"{self.path.name}.corrupt-{stamp}")
        n = 0
        while aside.exists():  # a second recovery within the second keeps the first copy
            n += 1
            aside = self.path.with_name(f"{self.path.name}.corrupt-{stamp}-{n}")
        try:
            for suffix in ("-wal", "-shm", ""):  # the main file last: a crash between leaves it in place
                src = Path(f"{self.path}{suffix}")
                if src.exists():
                    os.replace(src, f"{aside}{suffix}")
        except OSError as e:
            raise RegistryError(f"camera registry {self.path} is corrupt ({error}) and cannot be moved "
                                f"aside: {e}") from None
        try:
            self._open(busy_timeout_sec)
        except sqlite3.DatabaseError as e:  # a fresh file cannot be corrupt; the disk may be failing
            raise RegistryError(f"cannot create a fresh camera registry {self.path}: {e}") from None
        copied = 0
        with self._lock, self._transaction():
            for reg in rows:
                cur = self._db.execute(_INSERT.replace("INSERT", "INSERT OR IGNORE", 1),
                                       (reg.id, reg.url, reg.name, reg.prefer, reg.created_at, reg.picture,
                                        reg.sub_url))
                copied += cur.rowcount
        error = " ".join(error.split())  # integrity_check answers over several lines; logs and /health want one
        self.recovery = {"recovered_from": str(aside), "rows_recovered": copied, "error": error}
        log.error("camera registry %s was corrupt (%s): moved aside to %s, %d registered camera(s) recovered "
                  "into a fresh file", self.path, error, aside, copied)

    def _open_read_only(self, busy_timeout_sec: float) -> bool:
        """An SD card remounted read-only after an error must not take the cameras down with it."""
        if getattr(self, "_db", None) is not None:
            self._db.close()
        if not self.path.is_file() or self.path.stat().st_size == 0:
            return False
        # immutable=1 when even the -shm file cannot be created (read-only file system).
        for query in ("mode=ro", "mode=ro&immutable=1"):
            try:
                db = sqlite3.connect(f"{self.path.resolve().as_uri()}?{query}", uri=True, timeout=busy_timeout_sec,
                                     check_same_thread=False, isolation_level=None)
                db.text_factory = decode_text
                version = db.execute("PRAGMA user_version").fetchone()[0]
                db.execute("SELECT count(*) FROM cameras").fetchone()
            except DB_ERRORS:
                continue
            if version != SCHEMA_VERSION:
                db.close()
                return False
            self._db = db
            return True
        return False

    def _migrate(self) -> None:
        version = self._db.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise RegistryError(f"registry schema {version} is newer than this rtsp2jpg ({SCHEMA_VERSION})")
        for target in range(version + 1, SCHEMA_VERSION + 1):
            with self._transaction():
                for statement in filter(str.strip, _MIGRATIONS[target].split(";")):
                    self._db.execute(statement)
                self._db.execute(f"PRAGMA user_version = {target}")
            log.info("registry %s: schema migrated to version %d", self.path, target)

    def _transaction(self) -> _Transaction:
        return _Transaction(self._db)

    def all(self) -> list[Registration]:
        with self._lock:
            try:
                rows = self._db.execute(_SELECT_ALL).fetchall()
            except DB_ERRORS as e:
                raise RegistryError(f"cannot read camera registry: {e}") from None
        return [Registration(*row) for row in rows]

    def find_url(self, url: str) -> Registration | None:
        """The registration of `url` under any spelling of it (urls.canonical)."""
        with self._lock:
            try:
                row = self._same_url(url)
            except DB_ERRORS as e:
                raise RegistryError(f"cannot read camera registry: {e}") from None
        return Registration(*row) if row else None

    def _same_url(self, url: str) -> tuple[Any, ...] | None:
        """Compared in Python over the rows: a canonical column would need a migration, and a device
        has tens of cameras, not thousands."""
        key = canonical(url)
        rows = self._db.execute(_SELECT_ALL)
        return next((row for row in rows if canonical(row[1]) == key), None)

    def add(self, url: str, name: str = "", prefer: str = "default", picture: str = "{}",
            sub_url: str = "") -> tuple[Registration, bool]:
        """Register `url` (one INSERT, so a crash leaves all of it or none); (registration, created)."""
        with self._lock:
            try:
                with self._transaction():
                    row = self._same_url(url)
                    if row:
                        return Registration(*row), False
                    while True:
                        new_id = secrets.token_hex(4)
                        if not self._db.execute("SELECT 1 FROM cameras WHERE id = ?", (new_id,)).fetchone():
                            break
                    reg = Registration(new_id, url, name, prefer, time.time(), picture, sub_url)
                    self._db.execute(_INSERT, (reg.id, reg.url, reg.name, reg.prefer, reg.created_at,
                                               reg.picture, reg.sub_url))
                    return reg, True
            except DB_ERRORS as e:
                raise RegistryError(f"cannot write camera registry: {e}") from None

    def remove(self, camera_id: str) -> bool:
        with self._lock:
            try:
                with self._transaction():
                    cur = self._db.execute("DELETE FROM cameras WHERE id = ?", (camera_id,))
                    return cur.rowcount > 0
            except DB_ERRORS as e:
                raise RegistryError(f"cannot write camera registry: {e}") from None

    def close(self) -> None:
        """Idempotent."""
        with self._lock:
            try:
                self._db.close()
            except DB_ERRORS:  # pragma: no cover - closing a closed connection is a no-op
                pass


class _Transaction:
    """BEGIN IMMEDIATE ... COMMIT/ROLLBACK: the write lock is taken up front, so no upgrade deadlocks."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db

    def __enter__(self) -> None:
        self._db.execute("BEGIN IMMEDIATE")

    def __exit__(self, exc_type: object, *_: object) -> None:
        if exc_type is None:
            try:
                self._db.execute("COMMIT")
                return
            except DB_ERRORS:
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")
                raise
        if self._db.in_transaction:
            self._db.execute("ROLLBACK")
