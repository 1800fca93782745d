"""`rtsp2jpg fleet`: every device and camera from the broker's retained topics, for operators and cron.

It subscribes to `<base>/+/availability`, `<base>/+/state` and `<base>/+/cameras/+/status` (never
the snapshots), then publishes a marker to itself: the broker replays retained messages before it
delivers the marker, so the marker says "you have the whole fleet". Exit 1 when any camera is in
`error` or any device is `offline`; 4 when the broker cannot be read (as `cameras` for a service);
5 when all that could be read is fine but malformed messages were skipped.

Anyone who may publish to the broker writes what this prints: every message is checked against the
contract (types, sizes, finite numbers) and skipped if it does not fit, and every printed cell has
its control characters (terminal escapes, bidi overrides) shown as `\x1b`-style escapes.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import threading
import time
import unicodedata
import uuid
from dataclasses import dataclass, field
from typing import Any, TextIO

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from rtsp2jpg.cli.codes import FAILED, MALFORMED, OK, UNREACHABLE

MAX_PAYLOAD = 65536  # a status or state payload is well under 1 KiB
STATUSES = ("active", "connecting", "error", "inactive", "unknown")
_NUMBER_FIELDS = ("since", "last_seen", "fps", "width", "height")
_TEXT_FIELDS = ("status", "previous", "error", "backend")


class Malformed(ValueError):
    """A message that does not fit the MQTT contract; it is skipped and counted."""
QUIET_SEC = 2.0  # no marker (publishing denied) and nothing new for this long: the replay is over
CAMERA_FIELDS = ("status", "previous", "since", "last_seen", "error", "backend", "fps", "width", "height")


@dataclass
class Device:
    availability: str = "unknown"
    state: dict[str, Any] = field(default_factory=dict)
    cameras: dict[str, dict[str, Any]] = field(default_factory=dict)


class Fleet:
    """The retained view, updated from messages (paho's thread) and read by the printer."""

    def __init__(self, base_topic: str) -> None:
        self.base = base_topic.rstrip("/")
        self.devices: dict[str, Device] = {}
        self.lock = threading.Lock()
        self.version = 0  # bumped on every change; --watch prints when it moves
        self.malformed = 0  # messages skipped because they do not fit the contract

    def apply(self, topic: str, payload: bytes) -> None:
        """One retained message; an empty payload deletes (a camera was unregistered).

        A message that does not fit the contract changes nothing and is counted in `malformed`.
        """
        try:
            self._apply(topic, payload)
        except (Malformed, ValueError, TypeError, RecursionError, OverflowError):
            with self.lock:
                self.malformed += 1
                self.version += 1

    def _apply(self, topic: str, payload: bytes) -> None:
        if not topic.startswith(self.base + "/"):
            return
        parts = topic[len(self.base) + 1:].split("/")
        if len(payload) > MAX_PAYLOAD:
            raise Malformed("payload too large")
        if len(parts) == 2 and parts[1] == "availability":
            text = payload.decode("utf-8")
            if text not in ("online", "offline", ""):
                raise Malformed("availability is neither online nor offline")
            with self.lock:
                self._device(parts[0]).availability = text or "unknown"
        elif len(parts) == 2 and parts[1] == "state":
            state = _state(payload) if payload else {}
            with self.lock:
                self._device(parts[0]).state = state
        elif len(parts) == 4 and parts[1] == "cameras" and parts[3] == "status":
            status = _status(payload) if payload else None
            with self.lock:
                cameras = self._device(parts[0]).cameras
                if status is not None:
                    cameras[parts[2]] = status
                else:
                    cameras.pop(parts[2], None)
        else:
            return
        with self.lock:
            self.version += 1

    def _device(self, device_id: str) -> Device:
        return self.devices.setdefault(device_id, Device())

    def view(self) -> dict[str, Any]:
        """The JSON document `--json` prints; also what the table is made from."""
        with self.lock:
            devices = []
            for device_id in sorted(self.devices):
                dev = self.devices[device_id]
                ids = set(dev.cameras) | set(dev.state.get("cameras") or [])
                cameras = [{"id": cid, **{k: dev.cameras.get(cid, {}).get(k) for k in CAMERA_FIELDS}}
                           for cid in sorted(ids)]
                for cam in cameras:
                    cam["status"] = cam["status"] or "unknown"
                devices.append({"device": device_id, "availability": dev.availability,
                                "version": dev.state.get("version"), "hostname": dev.state.get("hostname"),
                                "started_at": dev.state.get("started_at"), "cameras": cameras})
        cams = [c for d in devices for c in d["cameras"]]
        summary = {"devices": len(devices), "offline": sum(d["availability"] == "offline" for d in devices),
                   "cameras": len(cams)}
        for status in ("active", "connecting", "error", "inactive", "unknown"):
            summary[status] = sum(c["status"] == status for c in cams)
            malformed = self.malformed
        return {"ok": summary["offline"] == 0 and summary["error"] == 0, "summary": summary, "devices": devices,
                "malformed": malformed}


def _object(payload: bytes) -> dict[str, Any]:
    data = json.loads(payload.decode("utf-8"))  # ValueError/RecursionError: counted by apply()
    if not isinstance(data, dict):
        raise Malformed("payload is not a JSON object")
    return data


def _number(value: Any) -> bool:
    return value is None or (isinstance(value, int | float) and not isinstance(value, bool)
                             and math.isfinite(value) and abs(value) <= 1e15)


def _status(payload: bytes) -> dict[str, Any]:
    """`.../cameras/<id>/status` as the contract says (topics.status_payload), else Malformed."""
    data = _object(payload)
    if data.get("status") not in STATUSES:
        raise Malformed("unknown camera status")
    if not all(data.get(k) is None or isinstance(data.get(k), str) for k in _TEXT_FIELDS):
        raise Malformed("a text field is not text")
    if not all(_number(data.get(k)) for k in _NUMBER_FIELDS):
        raise Malformed("a number field is not a finite number")
    return {k: data.get(k) for k in CAMERA_FIELDS}


def _state(payload: bytes) -> dict[str, Any]:
    """`.../state` (topics.state_payload), else Malformed."""
    data = _object(payload)
    cameras = data.get("cameras")
    if cameras is not None and not (isinstance(cameras, list) and all(isinstance(c, str) for c in cameras)):
        raise Malformed("state.cameras is not a list of ids")
    if not all(data.get(k) is None or isinstance(data.get(k), str) for k in ("version", "hostname")):
        raise Malformed("a text field is not text")
    if not _number(data.get("started_at")):
        raise Malformed("state.started_at is not a finite number")
    return {k: data.get(k) for k in ("version", "hostname", "started_at", "cameras")}


_INVISIBLE = {"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"}  # controls, format (bidi), surrogates, separators


def printable(text: str) -> str:
    """`text` safe for a terminal: every control or format character becomes a visible escape."""
    if text.isprintable() and text.isascii():
        return text
    out = []
    for c in text:
        if unicodedata.category(c) in _INVISIBLE:
            out.append(f"\\x{ord(c):02x}" if ord(c) < 0x100 else f"\\u{ord(c):04x}" if ord(c) < 0x10000
                       else f"\\U{ord(c):08x}")
        else:
            out.append(c)
    return "".join(out)


def ago(ts: Any, now: float) -> str:
    if not isinstance(ts, int | float) or not math.isfinite(ts) or ts <= 0 or abs(ts) > 1e15:
        return "-"
    s = max(0, int(now - ts))
    if s < 60:
        return f"{s}s ago"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s ago"
    if s < 86400:
        return f"{s // 3600}h{s % 3600 // 60:02d}m ago"
    return f"{s // 86400}d{s % 86400 // 3600:02d}h ago"


def table(view: dict[str, Any], now: float | None = None) -> str:
    now = time.time() if now is None else now
    rows = [("DEVICE", "AVAILABILITY", "CAMERA", "STATUS", "SINCE", "LAST SEEN", "ERROR")]
    for dev in view["devices"]:
        first = True
        for cam in dev["cameras"] or [{"id": "-", "status": "-"}]:
            rows.append(tuple(printable(str(cell)) for cell in (
                dev["device"] if first else "", dev["availability"] if first else "", cam["id"],
                cam["status"], ago(cam.get("since"), now), ago(cam.get("last_seen"), now)))
                + (printable(str(cam.get("error") or ""))[:80],))
            first = False
    widths = [max(len(r[i]) for r in rows) for i in range(6)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r[:6], widths, strict=True)) + "  " + r[6] for r in rows]
    s = view["summary"]
    lines.append(f"{s['devices']} device(s), {s['offline']} offline; {s['cameras']} camera(s): "
                 f"{s['active']} active, {s['connecting']} connecting, {s['error']} error, "
                 f"{s['inactive']} inactive, {s['unknown']} unknown")
    return "\n".join(line.rstrip() for line in lines)


class Reader:
    """A paho client that fills a Fleet; `wait_complete()` returns once the retained replay is in."""

    def __init__(self, args: argparse.Namespace, fleet: Fleet) -> None:
        self.fleet = fleet
        self.marker = f"rtsp2jpg-fleet/{uuid.uuid4().hex}"
        self.complete = threading.Event()
        self.subscribed_at: float | None = None
        self.last_message_at = 0.0
        self.error: str | None = None
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"rtsp2jpg-fleet-{uuid.uuid4().hex[:8]}")
        if args.username:
            self.client.username_pw_set(args.username, args.password or None)
        if args.tls or args.ca_file:
            self.client.tls_set(ca_certs=args.ca_file or None)
            if args.insecure:
                self.client.tls_insecure_set(True)
        self.client.on_connect = self._on_connect
        self.client.on_connect_fail = self._on_connect_fail
        self.client.on_subscribe = self._on_subscribe
        self.client.on_message = self._on_message
        self.args = args

    def _on_connect(self, client: Any, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        if reason.is_failure:
            self.error = f"broker refused the connection: {reason}"
            return
        base = self.fleet.base
        # QoS 0: the replay streams without per-message acks, and in order with the marker.
        client.subscribe([(f"{base}/+/availability", 0), (f"{base}/+/state", 0),
                          (f"{base}/+/cameras/+/status", 0), (self.marker, 0)])

    def _on_subscribe(self, client: Any, *_: Any) -> None:
        self.subscribed_at = time.monotonic()
        client.publish(self.marker, b"", qos=0)

    def _on_connect_fail(self, _client: Any, _u: Any) -> None:
        exc = sys.exc_info()[1]
        self.error = f"cannot connect to {self.args.broker}:{self.args.port}: {exc or 'connection failed'}"

    def _on_message(self, _client: Any, _u: Any, msg: Any) -> None:
        self.last_message_at = time.monotonic()
        if msg.topic == self.marker:
            self.complete.set()
        else:
            try:
                self.fleet.apply(msg.topic, msg.payload)
            except Exception:  # pragma: no cover - apply() counts what it cannot read; belt and braces
                with self.fleet.lock:
                    self.fleet.malformed += 1

    def start(self) -> None:
        self.client.connect_async(self.args.broker, self.args.port, keepalive=30)
        self.client.loop_start()

    def wait_complete(self, timeout: float) -> bool:
        """True once the marker is back, or (a broker whose ACL drops our marker) after a quiet spell."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self.error is None:
            if self.complete.wait(0.05):
                return True
            if self.subscribed_at is not None:
                quiet_since = max(self.subscribed_at, self.last_message_at)
                if time.monotonic() - quiet_since > QUIET_SEC:
                    return True
        return False

    def stop(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def output(fleet: Fleet, as_json: bool, out: TextIO) -> int:
    view = fleet.view()
    if as_json:
        out.write(json.dumps(view, separators=(",", ":") if not out.isatty() else (", ", ": ")) + "\n")
    else:
        out.write(table(view) + "\n")
    out.flush()
    if view["malformed"]:
        print(f"rtsp2jpg fleet: {view['malformed']} malformed message(s) skipped", file=sys.stderr)
    return verdict(view)


def verdict(view: dict[str, Any]) -> int:
    """0 all well, 1 a camera in error or a device offline, 5 only malformed messages skipped."""
    if not view["ok"]:
        return FAILED
    return MALFORMED if view["malformed"] else OK


def run(args: argparse.Namespace, out: TextIO = sys.stdout) -> int:
    fleet = Fleet(args.base_topic)
    reader = Reader(args, fleet)
    reader.start()
    code = UNREACHABLE
    try:
        if not reader.wait_complete(args.timeout):
            problem = reader.error or f"no answer from {args.broker}:{args.port} within {args.timeout:g}s"
            print(f"rtsp2jpg fleet: {problem}", file=sys.stderr)
            return UNREACHABLE
        shown = fleet.version  # read before rendering: a change during the print is shown next time
        code = output(fleet, args.json, out)
        if not args.watch:
            return code
        while True:  # until Ctrl-C / SIGTERM; reprint on change, at most once a second
            time.sleep(1.0)
            if fleet.version != shown:
                shown = fleet.version
                if not args.json and out.isatty():
                    out.write("\x1b[2J\x1b[H")
                code = output(fleet, args.json, out)
    except KeyboardInterrupt:  # the verdict of what was last seen, even if ^C cut an assignment short
        return code if code == UNREACHABLE else verdict(fleet.view())
    finally:
        reader.stop()


def add_parser(sub: Any) -> argparse.ArgumentParser:
    """The `fleet` subcommand's arguments (cli.py calls this)."""
    p = sub.add_parser("fleet", help="print every device and camera from the broker's retained topics",
                       description="Exit 0 when all is well, 1 when a camera is in error or a device "
                                   "offline, 4 when the broker cannot be read, 5 when all else is well "
                                   "but malformed messages were skipped (counted on stderr and as "
                                   "'malformed' in --json).")
    p.add_argument("--broker", default="localhost", help="broker host (default: localhost)")
    p.add_argument("--port", type=int, default=None, help="broker port (default: 1883, 8883 with TLS)")
    p.add_argument("--base-topic", default="rtsp2jpg", help="base topic of the devices (default: rtsp2jpg)")
    p.add_argument("--username", default="", help="broker user name")
    p.add_argument("--password", default=None, help="broker password (default: $MQTT_PASSWORD)")
    p.add_argument("--tls", action="store_true", help="connect with TLS")
    p.add_argument("--ca-file", default="", help="CA certificate for TLS (implies --tls)")
    p.add_argument("--insecure", action="store_true", help="TLS without hostname verification")
    p.add_argument("--timeout", type=float, default=10.0, help="seconds to wait for the broker (default: 10)")
    p.add_argument("--watch", action="store_true", help="keep running and reprint on every change")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    return p
