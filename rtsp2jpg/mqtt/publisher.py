"""Publisher: the device's availability, state, camera statuses, snapshots and HA discovery over MQTT.

Threads and who may block whom (nobody may block capture, HTTP or shutdown):
- camera threads call `on_status()`: it records the latest status per camera and queues the
  transition under a lock held for a dict/deque update, then returns. It never touches paho.
- paho's network thread runs the callbacks: they only set flags and wake our threads.
- our `mqtt-publisher` thread does every status/state/discovery publish; `mqtt-snapshots`
  (snapshots.py) reads frame slots and publishes JPEGs.
Offline buffering is bounded by construction: the latest status per camera (one dict entry each)
plus a capped queue of transitions; after every (re)connect the whole truth is re-published, so
nothing that matters depends on paho's own retry queue.
"""

from __future__ import annotations

import logging
import random
import ssl
import sys
import threading
import time
from collections import deque
from typing import Any

import paho.mqtt.client as mqtt

from rtsp2jpg.capture.status import StatusChange
from rtsp2jpg.config import ConfigError
from rtsp2jpg.mqtt import contract
from rtsp2jpg.mqtt.client import jitter_reconnect, make_client
from rtsp2jpg.mqtt.commands import Commands
from rtsp2jpg.mqtt.messages import Messages, PublisherHost
from rtsp2jpg.mqtt.snapshots import Snapshotter
from rtsp2jpg.mqtt.stats import StatsTimer
from rtsp2jpg.urls import redact

log = logging.getLogger(__name__)

MAX_PENDING = 1000  # queued transitions; beyond this the queue collapses into one full re-publish
MAX_PAHO_QUEUE = 1000  # paho's own QoS>0 queue (max_queued_messages_set): never unbounded
RETRY_SEC = 1.0


class Publisher(Messages):
    """Owns the paho client and the publisher thread; `Service` starts it before cameras, stops it after."""

    def __init__(self, service: PublisherHost, client_factory: Any = mqtt.Client) -> None:
        self.service = service
        self.cfg = cfg = service.config.mqtt
        device_id = service.config.device_id
        problem = contract.topic_problem(cfg.base_topic, device_id)
        if problem:
            raise ConfigError(problem)
        self.topics = contract.Topics(cfg.base_topic, device_id, cfg.homeassistant.prefix)
        self.client_id = cfg.client_id or f"rtsp2jpg-{device_id}"
        self._client_factory = client_factory
        self.client: Any = None
        self._intervals = {c.id: c.snapshot_interval_sec for c in service.config.cameras
                           if c.snapshot_interval_sec >= 0}
        self.snapshots = Snapshotter(service.cameras, self._interval_for, service.backend.encode_jpeg,
                                     cfg.snapshot_quality, cfg.snapshot_width, self.publish_snapshot)
        self.stats = StatsTimer(cfg.stats_interval_sec, service.started_at, service.cameras, lambda: self._ready,
                                self.publish_stats)
        self.commands = Commands(self.topics, service, self.publish_response, cfg.commands_enabled)
        self._lock = threading.Lock()
        self._latest: dict[str, StatusChange] = {}  # the truth re-published after every connect
        self._ops: deque[tuple[str, str, StatusChange | None]] = deque()
        self._resync = self._state_dirty = False
        self._hass_for: set[str] = set()
        self._hass_all_at: float | None = None
        self._stale: set[str] = set()
        self._snapshot_inflight: dict[str, Any] = {}
        self._connected = False  # CONNACK accepted
        self._ready = False  # ...and subscribed: paho has re-sent its own queue, our turn
        self.error: str | None = None
        self.published = {"status": 0, "state": 0, "snapshot": 0, "discovery": 0, "clear": 0, "stats": 0}  # /metrics
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._stopped = False

    # -- public ----------------------------------------------------------------------------------

    def start(self) -> None:
        """Connect in the background (a dead broker at boot is retried, never raised) and start threads."""
        self._thread = threading.Thread(target=self._run, name="mqtt-publisher", daemon=True)
        self._thread.start()
        self.snapshots.start()
        self.stats.start()
        self.commands.start()
        try:
            self.client = self._make_client()
            self.client.connect_async(self.cfg.host, self.cfg.port, keepalive=self.cfg.keepalive)
            self.client.loop_start()
        except (OSError, ValueError) as e:  # e.g. a CA file that is missing or not a certificate
            self.error = f"cannot set up the MQTT client: {redact(str(e))}"
            log.error("%s; MQTT stays off until restart", self.error)
            self.client = None
            return
        log.info("MQTT: connecting to %s:%d as %s (topics under %s/)", self.cfg.host, self.cfg.port,
                 self.client_id, self.topics.root)

    def on_status(self, change: StatusChange) -> None:
        """Status listener, called on camera threads: record and wake, never block."""
        if self.service.camera(change.camera_id) is None:
            return  # unregistered (or being unregistered): its topics are cleared, do not resurrect them
        with self._lock:
            new = change.camera_id not in self._latest
            self._latest[change.camera_id] = change
            if new:
                self._state_dirty = True
                self._hass_for.add(change.camera_id)
            if self._ready:
                if len(self._ops) >= MAX_PENDING:
                    self._collapse()
                else:
                    self._ops.append(("status", change.camera_id, change))
        self._wake.set()

    def forget(self, camera_id: str) -> None:
        """A camera was unregistered: clear its retained status, snapshot and discovery topics."""
        with self._lock:
            self._latest.pop(camera_id, None)
            self._hass_for.discard(camera_id)
            self._ops.append(("forget", camera_id, None))
            self._state_dirty = True
        self._wake.set()

    def stop(self, timeout: float = 5.0) -> None:
        """Flush transitions (the cameras' `inactive`), publish `offline`, wait, disconnect. Bounded; idempotent."""
        if self._stopped:
            return
        self._stopped = True
        deadline = time.monotonic() + timeout
        self.snapshots.stop(min(1.0, timeout / 4))
        self.stats.stop(min(1.0, timeout / 4))
        self.commands.stop(min(1.0, timeout / 4))
        self._stopping.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(max(0.0, min(deadline - time.monotonic(), timeout / 2)))
        client = self.client
        if client is None:
            return
        if self._connected:
            info = client.publish(self.topics.availability, contract.OFFLINE, qos=1, retain=True)
            try:
                info.wait_for_publish(max(0.1, deadline - time.monotonic()))
            except (RuntimeError, ValueError) as e:
                log.warning("MQTT: could not publish offline: %s", e)
            if not info.is_published():
                log.warning("MQTT: broker did not acknowledge offline in time; the Will covers it")
        client.disconnect()
        stopper = threading.Thread(target=client.loop_stop, name="mqtt-loop-stop", daemon=True)
        stopper.start()
        stopper.join(max(0.1, deadline - time.monotonic()))
        if stopper.is_alive():
            log.warning("MQTT: network thread still busy at the stop deadline; leaving it behind")
        self._connected = self._ready = False
        log.info("MQTT: stopped")

    # -- paho set-up and callbacks (paho's thread: flags only) ----------------------------------

    def _make_client(self) -> Any:
        cfg = self.cfg
        client = make_client(self.client_id, username=cfg.username, password=cfg.password, tls=cfg.tls.enabled,
                             ca_file=cfg.tls.ca_file, cert_file=cfg.tls.cert_file, key_file=cfg.tls.key_file,
                             insecure=cfg.tls.insecure, factory=self._client_factory)
        client.will_set(self.topics.availability, contract.OFFLINE, qos=1, retain=True)
        jitter_reconnect(client)  # first retry after 1-5 s, doubling to 30 s
        client.max_queued_messages_set(MAX_PAHO_QUEUE)
        client.on_connect = self._on_connect
        client.on_connect_fail = self._on_connect_fail
        client.on_disconnect = self._on_disconnect
        client.on_subscribe = self._on_subscribe
        client.on_message = self._on_message
        return client

    def _on_connect(self, client: Any, _userdata: Any, _flags: Any, reason: Any, _props: Any) -> None:
        if reason.is_failure:
            error = f"broker {self.cfg.host}:{self.cfg.port} refused the connection: {reason}"
            if error != self.error:  # paho retries with backoff; say it once, not every attempt
                log.error("MQTT: %s (check mqtt.username/password and the broker's ACL)", error)
            self.error = error
            return
        self._connected = True
        self.error = None
        log.info("MQTT: connected to %s:%d", self.cfg.host, self.cfg.port)
        client.publish(self.topics.availability, contract.ONLINE, qos=1, retain=True)  # birth, every connect
        subs = [(self.topics.request_filter, 1), (self.topics.status_filter, 1), *self.commands.filters]
        if self.cfg.homeassistant.enabled:
            subs.append((self.topics.ha_status, 1))
        # The re-publish waits for SUBACK: paho re-sends messages left over from the previous
        # connection after this callback returns, and our fresh truth must land after them.
        client.subscribe(subs)

    def _on_subscribe(self, _client: Any, _userdata: Any, _mid: Any, _codes: Any, _props: Any) -> None:
        with self._lock:
            self._ready = self._connected
            self._resync = True
        self._wake.set()

    def _on_connect_fail(self, _client: Any, _userdata: Any) -> None:
        exc = sys.exc_info()[1]  # paho calls this inside its `except OSError`; say what failed
        reason = redact(str(exc)) if exc else "connection failed"
        if isinstance(exc, ssl.SSLError):
            reason = f"TLS: {reason} (check mqtt.tls.ca_file and the broker's certificate)"
        if reason != self.error:
            log.error("MQTT: cannot connect to %s:%d: %s (retrying)", self.cfg.host, self.cfg.port, reason)
        self.error = reason

    def _on_disconnect(self, client: Any, _userdata: Any, _flags: Any, reason: Any, _props: Any) -> None:
        was = self._connected
        jitter_reconnect(client)  # a fresh draw per outage: the fleet's retries stay spread
        with self._lock:
            self._connected = self._ready = False
        self._snapshot_inflight.clear()  # paho drops unsent QoS 0 packets on reconnect
        if was and not self._stopping.is_set():
            log.warning("MQTT: disconnected from %s:%d (%s); reconnecting", self.cfg.host, self.cfg.port, reason)

    def _on_message(self, _client: Any, _userdata: Any, msg: Any) -> None:
        topic = msg.topic
        if self.commands.offer(topic, msg.payload):
            return
        if topic == self.topics.ha_status:
            if msg.payload == b"online":  # HA (re)started: re-send discovery, with jitter as HA asks
                with self._lock:
                    self._hass_all_at = time.monotonic() + random.uniform(0.0, 1.0)
                self._wake.set()
            return
        camera_id = self.topics.camera_of(topic, "snapshot/request")
        if camera_id is not None:
            if self.service.camera(camera_id) is not None:
                self.snapshots.request(camera_id)
            return
        camera_id = self.topics.camera_of(topic, "status")
        if camera_id is not None and msg.retain and msg.payload:
            with self._lock:
                self._stale.add(camera_id)  # checked by our thread against the registry
            self._wake.set()

    # -- the publisher thread ---------------------------------------------------------------------

    def _collapse(self) -> None:
        """Too many queued transitions: keep forgets, re-publish the latest of everything instead."""
        self._ops = deque(op for op in self._ops if op[0] == "forget")
        self._resync = True

    def _run(self) -> None:
        delay: float | None = None
        while True:
            self._wake.wait(delay)
            self._wake.clear()
            stopping = self._stopping.is_set()
            try:
                delay = self._flush() if self._ready else None
            except Exception:  # keep publishing after a bug in one message
                log.exception("MQTT publisher step failed")
                delay = RETRY_SEC
            if stopping:
                return

    def _flush(self) -> float | None:
        """Publish what is pending; returns when to look again (None: when woken)."""
        with self._lock:
            resync, self._resync = self._resync, False
            ops, self._ops = self._ops, deque()
            state, self._state_dirty = self._state_dirty or resync, False
            hass_all = resync or (self._hass_all_at is not None and time.monotonic() >= self._hass_all_at)
            if hass_all:
                self._hass_all_at = None
            hass_for, self._hass_for = self._hass_for, set()
            stale, self._stale = self._stale, set()
            latest = dict(self._latest)
        ok = True
        for kind, camera_id, change in ops:
            if kind == "forget":
                ok &= self._clear(camera_id)
            elif not resync and change is not None and camera_id in latest:
                ok &= self._publish_status(change)
        if stale:
            ok &= self._sweep(stale, latest)
        if state:
            ok &= self._publish_state(list(latest))
        if resync:
            for change in latest.values():
                ok &= self._publish_status(change)
        if self.cfg.homeassistant.enabled:
            for camera_id in (latest if hass_all else hass_for & latest.keys()):
                ok &= self._publish_discovery(camera_id)
        if not ok:  # paho's queue is full (a slow broker): try the whole truth again shortly
            with self._lock:
                self._collapse()
            return RETRY_SEC
        with self._lock:
            pending_hass = self._hass_all_at
        return None if pending_hass is None else max(0.0, pending_hass - time.monotonic())

    def _interval_for(self, camera_id: str) -> float:
        return self._intervals.get(camera_id, self.cfg.snapshot_interval_sec)
