"""Board health parsers against fixture text from boards CI does not have (Raspberry Pi, Jetson).

The readers run against real files in a temp dir laid out like /sys; the parsers take the exact text
those files and `vcgencmd` print. No board is mocked beyond its file contents.
"""

from __future__ import annotations

from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from rtsp2jpg.process import board_health as bh

# Zone types and readings in the form a Jetson Nano (L4T 32.x) reports them; PMIC-Die is a fixed 100 C.
JETSON_NANO = [("AO-therm", "39500"), ("CPU-therm", "41000"), ("GPU-therm", "38500"), ("PLL-therm", "37250"),
               ("PMIC-Die", "100000"), ("thermal-fan-est", "40100")]
PI4 = [("cpu-thermal", "54530\n")]


def sysfs(tmp_path: Path, zones: list[tuple[str, str]]) -> Path:
    root = tmp_path / "thermal"
    for i, (kind, temp) in enumerate(zones):
        zone = root / f"thermal_zone{i}"
        zone.mkdir(parents=True)
        (zone / "type").write_text(kind + "\n")
        (zone / "temp").write_text(temp)
    (root / "cooling_device0").mkdir(parents=True)  # not a zone: ignored
    return root


def test_pi_thermal_zone_and_throttled_from_the_firmware_file(tmp_path):
    throttled = tmp_path / "get_throttled"
    throttled.write_text("50005\n")  # the firmware's sysfs file: hex without 0x
    health = bh.board_health(sysfs(tmp_path, PI4), throttled)
    assert health["temperature_c"] == 54.5 and health["temperatures_c"] == {"cpu-thermal": 54.5}
    assert health["throttled"] == {"raw": "0x50005", "now": ["under_voltage", "throttled"],
                                   "since_boot": ["under_voltage", "throttled"]}


def test_jetson_zones_without_the_fixed_pmic_reading(tmp_path):
    health = bh.board_health(sysfs(tmp_path, JETSON_NANO), tmp_path / "absent")
    assert "PMIC-Die" not in health["temperatures_c"] and len(health["temperatures_c"]) == 5
    assert health["temperature_c"] == 41.0 and "throttled" not in health


def test_a_board_that_reports_nothing_gives_an_empty_dict(tmp_path):
    assert bh.board_health(tmp_path / "none", tmp_path / "none2") == {}
    assert bh.throttling(tmp_path / "none", vcgencmd=None) is None


def test_vcgencmd_output_and_junk():
    assert bh.parse_throttled("throttled=0x0\n") == {"raw": "0x0", "now": [], "since_boot": []}
    assert bh.parse_throttled("throttled=0x80008")["since_boot"] == ["soft_temperature_limit"]
    assert bh.parse_throttled("error=2 error_msg=\"Command not registered\"") is None
    assert bh.parse_throttled("") is None


def test_unreadable_or_absurd_temperatures_are_dropped(tmp_path):
    zones = [("ok", "45000"), ("junk", "n/a"), ("hot", "900000"), ("cold", "-273000"), ("ok", "46000")]
    assert bh.thermal_zones(sysfs(tmp_path, zones)) == {"ok": 45.0, "ok-4": 46.0}


@given(st.text(max_size=40))
def test_parsers_never_raise(text):
    assert bh.parse_millidegrees(text) is None or -40 <= bh.parse_millidegrees(text) <= 150
    flags = bh.parse_throttled(text)
    assert flags is None or set(flags) == {"raw", "now", "since_boot"}


def test_process_usage_on_this_machine():
    cpu, rss = bh.process_usage()
    assert cpu > 0 and rss is not None and rss > 10_000_000
