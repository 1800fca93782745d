"""The dashboard's server side: its static files and each camera's recent status history.

The page itself is plain HTML/CSS/JS in `rtsp2jpg/web/static/` (no build step, no CDN: devices are
often offline); it reads the same JSON API as any client.
"""

from __future__ import annotations

import threading
from collections import deque
from pathlib import Path
from typing import Any

from rtsp2jpg.capture.status import StatusChange

STATIC_DIR = Path(__file__).resolve().parent / "static"
HISTORY_LENGTH = 50
# The page loads only its own files: an injected element could neither run script nor load anything.
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' blob: data:;"
                               " connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}


class StatusHistory:
    """The last HISTORY_LENGTH status changes of each camera, fed by Service.add_listener."""

    def __init__(self, length: int = HISTORY_LENGTH) -> None:
        self._length = length
        self._lock = threading.Lock()
        self._changes: dict[str, deque[dict[str, Any]]] = {}

    def __call__(self, change: StatusChange) -> None:
        entry = {"status": change.status.value, "previous": change.previous.value, "since": change.since,
                 "error": change.error or None}
        with self._lock:
            self._changes.setdefault(change.camera_id, deque(maxlen=self._length)).append(entry)

    def of(self, camera_id: str) -> list[dict[str, Any]]:
        """Newest first."""
        with self._lock:
            return list(reversed(self._changes.get(camera_id, ())))

    def forget(self, camera_id: str) -> None:
        with self._lock:
            self._changes.pop(camera_id, None)
