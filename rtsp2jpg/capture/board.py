"""What this machine offers: which board it is and which GStreamer elements are installed.

Read once at start (app.default_backend) and reported by /health. Paths and the element lookup are
parameters so tests can describe a Jetson or a Pi without one.
"""

from __future__ import annotations

import logging
import shutil
import subprocess
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

DEVICE_TREE_MODEL = "/proc/device-tree/model"
TEGRA_RELEASE = "/etc/nv_tegra_release"


@dataclass(frozen=True)
class Board:
    """`kind` picks decoder chains (jetson, rpi4, rpi5, rpi, generic); `model` is for humans."""

    kind: str
    model: str


def _read(path: str | Path) -> str:
    try:
        return Path(path).read_bytes().replace(b"\x00", b"").decode("utf-8", "replace").strip()
    except OSError:
        return ""


def detect_board(model_path: str | Path = DEVICE_TREE_MODEL, tegra_path: str | Path = TEGRA_RELEASE) -> Board:
    """Jetson from /etc/nv_tegra_release or a device-tree model naming Jetson/Tegra; Pi model from
    the device tree ("Raspberry Pi 4 Model B Rev 1.4"); anything else is generic."""
    model = _read(model_path)
    tegra = _read(tegra_path)
    low = model.lower()
    if tegra or "jetson" in low or "tegra" in low:
        return Board("jetson", model or tegra.splitlines()[0])
    if low.startswith("raspberry pi"):
        words = low.split()
        generation = words[2] if len(words) > 2 else ""
        kind = {"4": "rpi4", "400": "rpi4", "5": "rpi5", "500": "rpi5"}.get(generation, "rpi")
        if generation == "compute" and len(words) > 4:  # "Raspberry Pi Compute Module 4"
            kind = {"4": "rpi4", "5": "rpi5"}.get(words[4], "rpi")
        return Board(kind, model)
    return Board("generic", model)


def _gi_finder() -> Callable[[str], bool] | None:
    """Element lookup through the GStreamer registry in-process, if PyGObject is there."""
    try:
        import gi

        gi.require_version("Gst", "1.0")
        from gi.repository import Gst
    except (ImportError, ValueError):
        return None
    if not Gst.is_initialized():
        Gst.init(None)
    return lambda name: Gst.ElementFactory.find(name) is not None


def _inspect_finder(timeout: float = 10.0) -> Callable[[str], bool] | None:
    exe = shutil.which("gst-inspect-1.0")
    if exe is None:
        return None

    def exists(name: str) -> bool:
        try:
            return subprocess.run([exe, "--exists", name], timeout=timeout, check=False,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).returncode == 0
        except (OSError, subprocess.TimeoutExpired):
            return False

    return exists


def available_elements(names: Iterable[str], finder: Callable[[str], bool] | None = None) -> frozenset[str]:
    """The subset of `names` installed: GStreamer registry via gi, else `gst-inspect-1.0 --exists`."""
    find = finder or _gi_finder() or _inspect_finder()
    if find is None:
        log.info("neither PyGObject nor gst-inspect-1.0 found: no GStreamer elements detected")
        return frozenset()
    return frozenset(n for n in names if find(n))
