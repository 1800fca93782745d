"""`rtsp2jpg fleet` reading what anyone on the broker may publish: garbage never tracebacks, never
reaches the terminal raw, and is counted (real mosquitto, the real CLI as a subprocess)."""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rtsp2jpg.mqtt import contract
from rtsp2jpg.mqtt import fleet as fleet_mod
from tests.integration.mqtt.test_mqtt_fleet import Stats, device, publish_retained
from tests.support.mosquitto import Mosquitto

REPO = Path(__file__).resolve().parents[3]
EXIT_CODES = {0, 1, 5}  # documented: ok, camera error/device offline, malformed messages skipped
ESCAPES = ["\x1b[2J\x1b[31mred", "\x1b]0;title\x07", "\x9b31m", "\u202eevil", "\u2066x\u2069", "a\rb\nc",
           "\x00\x07\x08", "\u2028"]
# Raw bytes no terminal should receive from us: ESC, CSI/OSC in C1 form (UTF-8), bidi overrides.
FORBIDDEN = [b"\x1b", b"\xc2\x9b", b"\xc2\x9d", b"\xe2\x80\xae", b"\xe2\x81\xa6", b"\x07", b"\r", b"\x00"]


@pytest.fixture(scope="module")
def broker(tmp_path_factory):
    b = Mosquitto(tmp_path_factory.mktemp("broker")).start()
    yield b
    b.stop()


def run_fleet(broker: Mosquitto, base: str, *args: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([sys.executable, "-m", "rtsp2jpg", "fleet", "--broker", "127.0.0.1", "--port",
                           str(broker.port), "--base-topic", base, "--timeout", "20", *args],
                          cwd=REPO, capture_output=True, timeout=60)


def assert_safe(result: subprocess.CompletedProcess[bytes]) -> None:
    assert b"Traceback" not in result.stderr, result.stderr.decode(errors="replace")
    assert result.returncode in EXIT_CODES, (result.returncode, result.stderr)
    for raw in FORBIDDEN:
        assert raw not in result.stdout, (raw, result.stdout[:2000])


def test_one_bad_message_is_skipped_counted_and_exit_5(broker: Mosquitto) -> None:
    base = "known"
    t = contract.Topics(base, "pi-01")
    publish_retained(broker, {
        **device(base, "pi-01", "online", {"front": ("active", "")}),
        f"{base}/pi-02/cameras/x/status": b"{not json",
        f"{base}/pi-03/availability": "\x1b[31monline",
        f"{base}/pi-04/state": json.dumps({"started_at": "soon", "cameras": "x"}),
    })
    table = run_fleet(broker, base)
    assert_safe(table)
    assert table.returncode == 5, (table.stdout, table.stderr)
    assert b"3 malformed message(s) skipped" in table.stderr
    assert b"front" in table.stdout and b"pi-02" not in table.stdout
    view = json.loads(run_fleet(broker, base, "--json").stdout)
    assert view["malformed"] == 3 and view["ok"] is True
    # A camera in error outranks malformed messages: exit 1, still counted.
    publish_retained(broker, {t.status("front"): contract.status_payload("error", "active", time.time(),
                                                                            "refused", Stats(time.time()))})
    worse = run_fleet(broker, base)
    assert worse.returncode == 1 and b"3 malformed message(s) skipped" in worse.stderr


def test_escape_sequences_in_valid_messages_are_shown_escaped(broker: Mosquitto) -> None:
    base = "esc"
    t = contract.Topics(base, "pi\u202e-01")
    publish_retained(broker, {
        t.availability: "online",
        t.state: contract.state_payload(time.time(), ["cam"], "host\x1b[2J", {}),
        t.status("cam"): {"status": "error", "error": "\x1b]0;pwned\x07 \x1b[31mred\x9b1m", "since": time.time()},
    })
    table = run_fleet(broker, base)
    assert_safe(table)
    assert table.returncode == 1
    out = table.stdout.decode()
    assert "\\x1b]0;pwned\\x07" in out and "pi\\u202e-01" in out and "\\x9b1m" in out
    as_json = run_fleet(broker, base, "--json")
    assert_safe(as_json)
    assert json.loads(as_json.stdout)["devices"][0]["cameras"][0]["error"].startswith("\x1b]0;pwned")


_json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20)
    | st.sampled_from([10**400, -(10**30), 1e308]),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12)
_status_like = st.fixed_dictionaries(
    {"status": st.sampled_from(["active", "error", "ok", "", *ESCAPES]) | _json_values},
    optional={k: _json_values | st.sampled_from(ESCAPES) for k in ("since", "last_seen", "error", "backend",
                                                                   "fps", "width", "height", "previous")})
_payloads = (st.binary(max_size=64)
             | st.sampled_from(ESCAPES + ["1e999", "NaN", "[" * 5000, "{}", "[]", "null", '"online"']).map(str.encode)
             | _json_values.map(lambda v: json.dumps(v).encode())
             | _status_like.map(lambda v: json.dumps(v).encode()))
_kinds = st.sampled_from(["availability", "state", "status"])
_bases = itertools.count()


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                 HealthCheck.too_slow])
@given(messages=st.lists(st.tuples(_kinds, st.sampled_from(["pi-01", "pi-02", "pi\u202e"]),
                                   st.sampled_from(["cam", "x\u2066y"]), _payloads), min_size=1, max_size=12))
def test_garbage_retained_payloads_never_crash_or_reach_the_terminal(broker: Mosquitto, messages) -> None:
    base = f"fz{next(_bases)}"
    retained = {}
    for kind, dev, cam, payload in messages:
        topic = {"availability": f"{base}/{dev}/availability", "state": f"{base}/{dev}/state",
                 "status": f"{base}/{dev}/cameras/{cam}/status"}[kind]
        retained[topic] = payload if payload else b"x"  # empty = clear, which stores nothing
    publish_retained(broker, retained)
    expected = fleet_mod.Fleet(base)  # the oracle for the count: the same messages, in process
    for topic, payload in retained.items():
        expected.apply(topic, payload)
    for args in ((), ("--json",)):
        result = run_fleet(broker, base, *args)
        assert_safe(result)
        if expected.malformed:
            assert f"{expected.malformed} malformed message(s) skipped".encode() in result.stderr
            assert result.returncode in (1, 5)
    view = json.loads(result.stdout)
    assert view["malformed"] == expected.malformed


@pytest.mark.parametrize("payload", [b"\xff\xfe", b"[" * 100000, b"1e999", b'{"status": "active", "fps": 1e999}',
                                     b'{"status": "active", "since": ' + b"9" * 500 + b"}", b'"online"',
                                     b'{"status": "active", "width": "wide"}', b"x" * 70000])
def test_fleet_apply_counts_what_does_not_fit(payload: bytes) -> None:
    f = fleet_mod.Fleet("b")
    f.apply("b/d/cameras/c/status", payload)
    assert f.malformed == 1
    view = f.view()
    assert view["malformed"] == 1 and view["summary"]["cameras"] == 0
    fleet_mod.table(view)  # renders


@pytest.mark.parametrize("payload", [b"\xff", b"[]", b'{"cameras": "abc"}', b'{"cameras": [1]}',
                                     b'{"started_at": 1e999}', b'{"hostname": ["x"]}', b"online"])
def test_fleet_apply_checks_state_and_availability(payload: bytes) -> None:
    f = fleet_mod.Fleet("b")
    f.apply("b/d/state", payload)
    f.apply("b/d/availability", payload)
    assert f.malformed == 2 - (payload == b"online")


def test_printable_escapes_every_control_and_format_character() -> None:
    for c in map(chr, [*range(0x20), 0x7f, *range(0x80, 0xa0), 0x200e, 0x202a, 0x202e, 0x2066, 0x2069, 0x2028]):
        shown = fleet_mod.printable(f"a{c}b")
        assert c not in shown and shown.startswith("a\\") and shown.endswith("b")
    assert fleet_mod.printable("garage-pi-01 café 摄像头") == "garage-pi-01 café 摄像头"
