"""`rtsp2jpg fleet`: a paho client that subscribes to the devices' retained topics and fills a Fleet.

It subscribes to `<base>/+/availability`, `<base>/+/state`, `<base>/+/stats` and
`<base>/+/cameras/+/status` (never the snapshots), then publishes a marker to itself: the broker
replays retained messages before it delivers the marker, so the marker says "you have the whole fleet".
Exit codes: cli/codes.py.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
import time
import uuid
from typing import Any, TextIO

from rtsp2jpg.cli.codes import FAILED, MALFORMED, OK, UNREACHABLE
from rtsp2jpg.mqtt.client import make_client
from rtsp2jpg.mqtt.fleet import QUIET_SEC, Fleet, table

SETTLE_SEC = 0.25  # after the marker: no retained message for this long and the replay is over


class Reader:
    """A paho client that fills a Fleet; `wait_complete()` returns once the retained replay is in."""

    def __init__(self, args: argparse.Namespace, fleet: Fleet) -> None:
        self.fleet = fleet
        self.marker = f"rtsp2jpg-fleet/{uuid.uuid4().hex}"
        self.complete = threading.Event()
        self.subscribed_at: float | None = None
        self.last_message_at = 0.0
        self.error: str | None = None
        self.client = make_client(f"rtsp2jpg-fleet-{uuid.uuid4().hex[:8]}", username=args.username,
                                  password=args.password, tls=bool(args.tls or args.ca_file),
                                  ca_file=args.ca_file, insecure=args.insecure)
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
        client.subscribe([(f"{base}/+/availability", 0), (f"{base}/+/state", 0), (f"{base}/+/stats", 0),
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
                # mosquitto replays retained messages before it delivers the marker; a clustered
                # broker (aedes on redis) may not, so the marker ends the wait only after a quiet spell.
                while time.monotonic() - self.last_message_at < SETTLE_SEC and time.monotonic() < deadline:
                    time.sleep(0.02)
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
        # Until Ctrl-C / SIGTERM, reprint on change at most once a second. The signals set an event
        # rather than raise KeyboardInterrupt anywhere: raised inside `with lock:` in fleet.view(),
        # it could leave the lock held, and the final verdict then waited on it for ever.
        stop = threading.Event()
        if threading.current_thread() is threading.main_thread():  # only there can handlers be set
            for sig in (signal.SIGINT, signal.SIGTERM):
                signal.signal(sig, lambda *_: stop.set())
        while not stop.wait(1.0):
            if fleet.version != shown:
                shown = fleet.version
                if not args.json and out.isatty():
                    out.write("\x1b[2J\x1b[H")
                code = output(fleet, args.json, out)
        return verdict(fleet.view())
    except KeyboardInterrupt:  # the verdict of what was last seen, even if ^C cut an assignment short
        return code if code == UNREACHABLE else verdict(fleet.view())
    finally:
        reader.stop()
