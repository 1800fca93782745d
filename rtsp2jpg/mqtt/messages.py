"""What the Publisher's thread sends: retained status, state and discovery messages, and their clearing.
A mixin of Publisher (publisher.py holds the threads, the queue and paho's callbacks); payloads: contract.py.
"""

from __future__ import annotations

import json
import logging
import socket
from collections.abc import Sequence
from typing import Any, Protocol

import paho.mqtt.client as mqtt

from rtsp2jpg.capture.backend import Backend
from rtsp2jpg.capture.camera import Camera
from rtsp2jpg.capture.status import StatusChange
from rtsp2jpg.config import Config
from rtsp2jpg.mqtt import contract

log = logging.getLogger("rtsp2jpg.mqtt.publisher")


class PublisherHost(Protocol):
    """What the Publisher reads from the Service: config, the cameras, capabilities. The registry is
    the Service's alone: the Publisher asks for the ids it knows, never for the registry."""

    config: Config
    backend: Backend
    started_at: float

    def camera(self, camera_id: str) -> Camera | None: ...
    def cameras(self) -> Sequence[Camera]: ...
    def known_camera_ids(self) -> set[str]: ...


class Messages:
    """Publisher's sending side (see Publisher for the attributes used)."""

    @property
    def connected(self) -> bool:
        return self._connected

    @property
    def state(self) -> str:
        return "connected" if self._connected else "disconnected"

    def publish_response(self, topic: str, payload: dict[str, Any]) -> bool:
        """A command's answer (commands.py): QoS 1, not retained; dropped while disconnected."""
        client = self.client
        if client is None or not self._connected:
            return False
        return client.publish(topic, json.dumps(payload, separators=(",", ":")), qos=1).rc == mqtt.MQTT_ERR_SUCCESS

    def publish_stats(self, payload: dict[str, Any]) -> bool:
        """The retained stats message (stats.py's thread); False while disconnected or paho's queue is full."""
        return self.client is not None and self._ready and self._send(self.topics.stats, payload, "stats")

    def publish_snapshot(self, camera_id: str, jpeg: bytes) -> bool:
        """QoS 0 JPEG; skipped while disconnected or while this camera's previous one is still queued."""
        client = self.client
        if client is None or not self._ready:
            return False
        previous = self._snapshot_inflight.get(camera_id)
        if previous is not None and not previous.is_published():
            return False  # a slow broker: drop this one rather than pile JPEGs up in paho's queue
        info = client.publish(self.topics.snapshot(camera_id), jpeg, qos=0, retain=self.cfg.snapshot_retain)
        if info.rc != mqtt.MQTT_ERR_SUCCESS:
            return False
        self._snapshot_inflight[camera_id] = info
        self.published["snapshot"] += 1
        return True

    def _send(self, topic: str, payload: Any, kind: str) -> bool:
        """Retained, QoS 1; False only when paho's bounded queue is full (a slow broker)."""
        data = payload if isinstance(payload, str | bytes) else json.dumps(payload, separators=(",", ":"))
        info = self.client.publish(topic, data, qos=1, retain=True)
        if info.rc == mqtt.MQTT_ERR_QUEUE_SIZE:
            return False
        self.published[kind] += 1
        return True

    def _publish_status(self, change: StatusChange) -> bool:
        cam = self.service.camera(change.camera_id)
        if cam is None:
            return True
        payload = contract.status_payload(change.status.value, change.previous.value, change.since,
                                          change.error, cam.stats)
        return self._send(self.topics.status(change.camera_id), payload, "status")

    def _publish_state(self, camera_ids: list[str]) -> bool:
        caps = self.service.backend.capabilities
        payload = contract.state_payload(self.service.started_at, camera_ids, socket.gethostname(),
                                         dict(caps.decoders))
        return self._send(self.topics.state, payload, "state")

    def _publish_discovery(self, camera_id: str) -> bool:
        cam = self.service.camera(camera_id)
        if cam is None:
            return True
        return all(self._send(topic, payload, "discovery")
                   for topic, payload in contract.discovery(self.topics, camera_id, cam.name).items())

    def _clear(self, camera_id: str) -> bool:
        """Empty retained payloads delete the broker's copies (and HA's entities)."""
        found = [self.topics.status(camera_id), self.topics.snapshot(camera_id)]
        if self.cfg.homeassistant.enabled:
            found += [self.topics.ha_camera(camera_id), self.topics.ha_connectivity(camera_id),
                      self.topics.ha_problem(camera_id)]
        return all(self._send(topic, b"", "clear") for topic in found)

    def _sweep(self, stale: set[str], latest: dict[str, StatusChange]) -> bool:
        """Retained statuses of cameras this device no longer has (removed from the file while down)."""
        try:
            known = set(latest) | self.service.known_camera_ids()
        except Exception:  # registry trouble: sweep nothing rather than something live
            return True
        ok = True
        for camera_id in stale - known:
            log.info("MQTT: clearing retained topics of %s, a camera this device no longer has", camera_id)
            ok &= self._clear(camera_id)
        return ok
