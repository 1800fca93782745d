"""Logging set-up: the DESIGN's line format, journald-aware, with camera passwords redacted."""

from __future__ import annotations

import logging
import os
import sys

from rtsp2jpg.urls import redact

FORMAT = "%(asctime)s [%(levelname)s] %(name)s: %(message)s"
JOURNAL_FORMAT = "[%(levelname)s] %(name)s: %(message)s"  # journald stamps lines itself


class RedactingFormatter(logging.Formatter):
    """Redacts the whole formatted record, tracebacks included: a URL can hide in any exception."""

    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))


def _is_journal(stream: object) -> bool:
    """$JOURNAL_STREAM names the journal's device:inode; a child whose stderr was redirected elsewhere
    inherits the variable, so compare it with the stream (as systemd.exec(5) advises)."""
    try:
        dev, ino = (int(part) for part in os.environ.get("JOURNAL_STREAM", "").split(":"))
        st = os.fstat(stream.fileno())  # type: ignore[attr-defined]
    except (ValueError, OSError, AttributeError):
        return False
    return (st.st_dev, st.st_ino) == (dev, ino)


def setup(level: str = "INFO", stream: object = None) -> None:
    """Configure the root logger once; only the CLI calls this (importing rtsp2jpg configures nothing)."""
    out = stream or sys.stderr
    journald = stream is None and _is_journal(out)
    handler = logging.StreamHandler(out)  # type: ignore[arg-type]
    handler.setFormatter(RedactingFormatter(JOURNAL_FORMAT if journald else FORMAT, "%Y-%m-%d %H:%M:%S"))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(os.environ.get("RTSP2JPG_LOG_LEVEL", level).upper())
