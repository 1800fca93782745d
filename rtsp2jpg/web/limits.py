"""What a request may ask for and how many workers waiting requests may hold: the one query-number
parser, MAX_DIMENSION, and the viewer and long-poll budgets shared by api.py and ops.py.

Its own module (not app.py) because app.py imports api.py and ops.py to install their routes."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import bottle

from rtsp2jpg.config import HttpConfig

MAX_DIMENSION = 8192  # ?width= and ?height= of snapshots and streams


def number(name: str, kind: type, lo: float, hi: float) -> Any:
    """Query parameter `name` as `kind` (int or float) within [lo, hi]; None when absent or empty; else 400."""
    raw = bottle.request.query.get(name)
    if raw is None or raw == "":
        return None
    try:
        value = kind(raw)
    except ValueError:
        raise bottle.HTTPError(400, f"{name} must be a {'whole number' if kind is int else 'number'}") from None
    if not (lo <= value <= hi):  # also rejects nan
        raise bottle.HTTPError(400, f"{name} must be between {lo:g} and {hi:g}")
    return value


def viewer_budget(http: HttpConfig) -> int:
    """MJPEG viewers in all: http.stream_max_total, or half the Waitress workers."""
    return http.stream_max_total or max(1, http.threads // 2)


def long_poll_slots(threads: int, max_long_polls: int, streams: int = 0) -> int:
    """Long-polls may hold at most this many Waitress workers; MJPEG viewers (`streams` of them at
    most) and a reserve of workers stay free for everything else.

    With 8 workers and max_long_polls 32, eight parked ?after= requests took every worker and a
    /health waited behind them for the whole long-poll timeout (times four batches).
    """
    reserve = 8 if threads >= 16 else threads // 2
    return max(1, min(max_long_polls, threads - reserve - streams))


def long_poll_budget(http: HttpConfig) -> int:
    """The long-poll slots of this config: viewers, when streaming is on, come out of the same workers."""
    streams = viewer_budget(http) if http.stream_max_clients else 0
    return long_poll_slots(http.threads, http.max_long_polls, streams)


def parsed(name: str, parse: Callable[[str], Any]) -> Any:
    """Query parameter `name` through `parse` (None when absent or empty); its ValueError is a 400 naming it."""
    raw = bottle.request.query.get(name)
    if raw is None or raw == "":
        return None
    try:
        return parse(raw)
    except ValueError as e:
        raise bottle.HTTPError(400, f"{name} {e}") from None


def flag(name: str) -> bool | None:
    """Query parameter `name` as 1/0 (or true/false, yes/no, on/off); None when absent; else 400."""
    return parsed(name, _flag)


def _flag(raw: str) -> bool:
    value = raw.strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise ValueError("must be 1 or 0")
