"""Device stats: the payload the device sends, and how `fleet` reads, judges and sorts it."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rtsp2jpg.capture.status import Status
from rtsp2jpg.mqtt import contract
from rtsp2jpg.mqtt.fleet import Fleet, table
from rtsp2jpg.mqtt.stats import StatsTimer, stats_payload


def cam(cid: str, status: Status, last_seen: float, fps: float = 25.0) -> SimpleNamespace:
    return SimpleNamespace(id=cid, status=status, stats=SimpleNamespace(last_seen=last_seen, fps=fps),
                           url="rtsp://u:secret@10.0.0.1/x")


def test_payload_has_uptime_usage_board_and_per_camera_age_but_no_url():
    payload = stats_payload(now=1000.0, started_at=400.0, interval=60, cpu_percent=12.5, rss_bytes=50_000_000,
                            board={"temperature_c": 51.2},
                            cameras=[cam("front", Status.ACTIVE, 999.9), cam("back", Status.CONNECTING, 0.0)])
    assert payload["uptime_sec"] == 600.0 and payload["cpu_percent"] == 12.5
    assert payload["cameras"] == {"front": {"status": "active", "fps": 25.0, "frame_age_sec": 0.1},
                                  "back": {"status": "connecting", "fps": 25.0, "frame_age_sec": None}}
    assert "secret" not in json.dumps(payload) and "rtsp://" not in json.dumps(payload)


def test_cpu_share_is_measured_between_samples():
    clock = iter([10.0, 12.0])
    usage = iter([(5.0, 1), (6.0, 2)])
    timer = StatsTimer(60, 0.0, list, lambda: True, lambda p: True, health=dict, usage=lambda: next(usage),
                       clock=lambda: next(clock))
    assert timer.sample()["cpu_percent"] is None
    second = timer.sample()
    assert second["cpu_percent"] == 50.0 and second["rss_bytes"] == 2


def fleet_with(now: float, **devices: dict) -> Fleet:
    f = Fleet("rtsp2jpg")
    for device_id, stats in devices.items():
        t = contract.Topics("rtsp2jpg", device_id)
        f.apply(t.availability, b"online")
        f.apply(t.stats, json.dumps(stats).encode())
        for cid, entry in stats.get("cameras", {}).items():
            f.apply(t.status(cid), json.dumps({"status": entry["status"], "since": now}).encode())
    return f


def stats(at: float, status: str = "active", **board: object) -> dict:
    return {"at": at, "interval_sec": 60, "uptime_sec": 5, "cpu_percent": 3.0, "rss_bytes": 1, "board": board,
            "cameras": {"c1": {"status": status, "fps": 25.0, "frame_age_sec": 0.04}}}


def test_stale_after_three_intervals_and_trouble_sorted_first():
    now = 10_000.0
    f = fleet_with(now, a_fine=stats(now - 30), b_stale=stats(now - 181), c_fresh_edge=stats(now - 180),
                   d_hot=stats(now - 5, throttled={"now": ["throttled"]}), e_err=stats(now - 5, "error"))
    view = f.view(now)
    order = [d["device"] for d in view["devices"]]
    assert order == ["e_err", "b_stale", "d_hot", "a_fine", "c_fresh_edge"]  # worst first, then by id
    by_id = {d["device"]: d for d in view["devices"]}
    assert by_id["b_stale"]["stats"]["stale"] is True and by_id["c_fresh_edge"]["stats"]["stale"] is False
    assert by_id["b_stale"]["trouble"] == ["stale"] and by_id["d_hot"]["trouble"] == ["throttled"]
    assert by_id["a_fine"]["cameras"][0]["frame_age_sec"] == 0.04
    assert view["summary"]["stale"] == 1 and view["ok"] is False
    text = table(view, now)
    assert "online,stale" in text and text.endswith("; 1 stale")


def test_a_device_without_stats_is_never_stale():
    f = Fleet("rtsp2jpg")
    f.apply("rtsp2jpg/old/availability", b"online")
    view = f.view(1e9)
    assert view["ok"] is True and view["devices"][0]["stats"] is None and view["devices"][0]["trouble"] == []


@pytest.mark.parametrize("bad", [
    {"interval_sec": 60}, {"at": 1, "interval_sec": 0}, {"at": "x", "interval_sec": 60},
    {"at": 1, "interval_sec": 60, "cpu_percent": float("inf")}, {"at": 1, "interval_sec": 60, "board": []},
    {"at": 1, "interval_sec": 60, "cameras": {"c": {"status": "exploded"}}},
    {"at": 1, "interval_sec": 60, "board": {"throttled": {"now": "all"}}}, [1, 2],
])
def test_bad_stats_are_counted_not_kept(bad):
    f = Fleet("rtsp2jpg")
    f.apply("rtsp2jpg/d/stats", json.dumps(bad).encode())
    assert f.malformed == 1 and f.devices == {}


@given(st.recursive(st.none() | st.booleans() | st.floats() | st.integers() | st.text(max_size=5),
                    lambda kids: st.lists(kids, max_size=3) | st.dictionaries(st.text(max_size=8), kids, max_size=4),
                    max_leaves=20))
def test_any_json_in_a_stats_topic_is_kept_or_counted(value):
    f = Fleet("rtsp2jpg")
    f.apply("rtsp2jpg/d/stats", json.dumps(value).encode())
    view = f.view(0.0)
    assert f.malformed == 1 or view["devices"][0]["stats"] is not None
