"""What the board and this process report about their health: temperatures, throttling, CPU, memory.

The readers take their paths as arguments and the parsers take text, so the unit tests feed them
fixture text from a Raspberry Pi and a Jetson (no such board in CI). Everything is bounded (zones,
name lengths) and every failure means "the board does not report it" (None), never an exception.
"""

from __future__ import annotations

import os
import resource
import shutil
import subprocess
from pathlib import Path
from typing import Any

THERMAL_ROOT = Path("/sys/class/thermal")
PI_THROTTLED = Path("/sys/devices/platform/soc/soc:firmware/get_throttled")
MAX_ZONES = 16
MAX_NAME = 32
# Jetson's PMIC-Die zone reads a fixed 100 C (a trip placeholder, not a measurement).
IGNORED_ZONES = frozenset({"pmic-die"})
# The Raspberry Pi firmware's throttled bits (`vcgencmd get_throttled`).
THROTTLE_BITS = {0: "under_voltage", 1: "arm_frequency_capped", 2: "throttled", 3: "soft_temperature_limit"}
SINCE_BOOT_SHIFT = 16  # the same four conditions, "has occurred since boot"


def parse_millidegrees(text: str) -> float | None:
    """A thermal zone's `temp` file (millidegrees Celsius) -> degrees, None if unreadable or absurd."""
    try:
        value = int(text.strip()) / 1000.0
    except ValueError:
        return None
    return round(value, 1) if -40.0 <= value <= 150.0 else None


def parse_throttled(text: str) -> dict[str, Any] | None:
    """`throttled=0x50005` (vcgencmd) or `50005` (the firmware's sysfs file, hex) -> named flags."""
    raw = text.strip().removeprefix("throttled=")
    try:
        bits = int(raw, 16)
    except ValueError:
        return None
    if not 0 <= bits < 1 << 32:
        return None
    return {"raw": f"0x{bits:x}",
            "now": [name for bit, name in THROTTLE_BITS.items() if bits >> bit & 1],
            "since_boot": [name for bit, name in THROTTLE_BITS.items() if bits >> (bit + SINCE_BOOT_SHIFT) & 1]}


def thermal_zones(root: Path = THERMAL_ROOT) -> dict[str, float]:
    """{zone type: degrees C} of the readable zones (Pi: cpu-thermal; Jetson: CPU-therm, GPU-therm...)."""
    out: dict[str, float] = {}
    try:
        zones = sorted(p for p in root.glob("thermal_zone*") if p.name[12:].isdigit())[:MAX_ZONES]
    except OSError:
        return out
    for zone in zones:
        try:
            name = (zone / "type").read_text(errors="replace").strip()[:MAX_NAME] or zone.name
            value = parse_millidegrees((zone / "temp").read_text(errors="replace")[:32])
        except OSError:
            continue
        if value is None or name.lower() in IGNORED_ZONES:
            continue
        out[name if name not in out else f"{name}-{zone.name[12:]}"] = value
    return out


def throttling(sysfs: Path = PI_THROTTLED, vcgencmd: str | None = "vcgencmd") -> dict[str, Any] | None:
    """The Pi's throttled flags from the firmware's sysfs file, else `vcgencmd`; None elsewhere."""
    try:
        return parse_throttled(sysfs.read_text(errors="replace")[:64])
    except OSError:
        pass
    tool = shutil.which(vcgencmd) if vcgencmd else None
    if tool is None:
        return None
    try:
        done = subprocess.run([tool, "get_throttled"], capture_output=True, text=True, timeout=2)
    except (OSError, subprocess.SubprocessError):
        return None
    return parse_throttled(done.stdout[:64]) if done.returncode == 0 else None


def board_health(root: Path = THERMAL_ROOT, sysfs: Path = PI_THROTTLED) -> dict[str, Any]:
    """What the board reports: temperatures (and their maximum) and throttling, each only if present."""
    zones = thermal_zones(root)
    out: dict[str, Any] = {}
    if zones:
        out["temperature_c"] = max(zones.values())
        out["temperatures_c"] = zones
    throttled = throttling(sysfs)
    if throttled is not None:
        out["throttled"] = throttled
    return out


def process_usage() -> tuple[float, int | None]:
    """(CPU seconds, user + system, of this process; resident bytes or None without /proc)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    try:
        with open("/proc/self/statm") as fh:
            rss: int | None = int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        rss = None
    return usage.ru_utime + usage.ru_stime, rss
