"""glibc malloc settings for a process that handles multi-megabyte frames on many threads.

The systemd unit sets MALLOC_MMAP_THRESHOLD_=524288 and MALLOC_ARENA_MAX=2 (why: see the unit). A
service started any other way (a container, a shell, the bench) used to run with glibc's defaults:
its dynamic mmap threshold climbs to 32 MB after the first freed frame, so every 1.4-2.7 MB frame
buffer afterwards is carved out of a per-thread arena and kept there (measured, 8 cameras of 720p25
polled 1/s: 26.8 MB per camera with the defaults, 21.0 MB with the unit's settings). `tune()` applies
the same two settings through mallopt(3) at start, unless the environment already chose.
"""

from __future__ import annotations

import ctypes
import logging
import os
from collections.abc import Mapping

log = logging.getLogger(__name__)

M_MMAP_THRESHOLD = -3  # <malloc.h>
M_ARENA_MAX = -8
SETTINGS = (("MALLOC_MMAP_THRESHOLD_", M_MMAP_THRESHOLD, 524288), ("MALLOC_ARENA_MAX", M_ARENA_MAX, 2))


def tune(env: Mapping[str, str] | None = None) -> list[str]:
    """Apply each setting the environment leaves unset; returns the names applied (none off glibc)."""
    env = os.environ if env is None else env
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):  # pragma: no cover - not glibc (musl, macOS)
        return []
    applied = []
    for name, param, value in SETTINGS:
        if name in env:
            continue
        if mallopt(param, value) == 1:
            applied.append(name)
        else:  # pragma: no cover - glibc refuses only out-of-range values
            log.debug("mallopt(%d, %d) refused", param, value)
    return applied
