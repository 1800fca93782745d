"""The MQTT contract (DESIGN section 5) as data: topic names and payloads, pure functions only.

The publisher (mqtt.py), the fleet view (fleet.py), the tests and the bench all build topics here,
so the contract lives in one place.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from rtsp2jpg import __version__
from rtsp2jpg.capture.status import stream_fields

ONLINE, OFFLINE = "online", "offline"
_UNSAFE = re.compile(r"[^a-zA-Z0-9_-]")
# Wildcards, NUL and other control characters: a topic we publish to must name exactly one topic.
_WILDCARDS = re.compile(r"[+#\x00-\x1f\x7f-\x9f]")
MAX_PREFIX = 200  # characters of a base topic or discovery prefix; MQTT allows 65,535 bytes in all


def prefix_problem(value: str) -> str | None:
    """Why `value` cannot start our topics (`a/b` levels, no wildcard, no empty level), or None.

    A `+` or `#` would not fail loudly: the broker drops a PUBLISH to a filter, so every status
    message would vanish.
    """
    if not value:
        return "must not be empty"
    if len(value) > MAX_PREFIX:
        return f"must be at most {MAX_PREFIX} characters"
    if _WILDCARDS.search(value):
        return "must not contain MQTT wildcards ('+', '#') or control characters"
    if value.startswith("/") or value.endswith("/") or "//" in value:
        return "must not start or end with '/' or contain an empty level ('//')"
    return None


def level_problem(value: str) -> str | None:
    """Why `value` cannot be one topic level (the device id), or None."""
    if "/" in value:
        return "must be one MQTT topic level (no '/')"
    return prefix_problem(value)


def topic_problem(base_topic: str, device_id: str) -> str | None:
    """Why these cannot build topics (wildcards, empty levels), or None."""
    problem = prefix_problem(base_topic)
    if problem:
        return f"mqtt.base_topic: {base_topic!r} {problem}"
    problem = level_problem(device_id)
    if problem:
        return f"device_id: {device_id!r} cannot be an MQTT topic level: {problem}"
    return None


def object_id(text: str) -> str:
    """Home Assistant object ids and unique ids allow [a-zA-Z0-9_-] only."""
    return _UNSAFE.sub("_", text)


@dataclass(frozen=True)
class Topics:
    """Every topic one device publishes or subscribes to."""

    base_topic: str
    device_id: str
    ha_prefix: str = "homeassistant"

    @property
    def root(self) -> str:
        return f"{self.base_topic}/{self.device_id}"

    @property
    def availability(self) -> str:
        return f"{self.root}/availability"

    @property
    def state(self) -> str:
        return f"{self.root}/state"

    @property
    def stats(self) -> str:
        return f"{self.root}/stats"

    def status(self, camera_id: str) -> str:
        return f"{self.root}/cameras/{camera_id}/status"

    def snapshot(self, camera_id: str) -> str:
        return f"{self.root}/cameras/{camera_id}/snapshot"

    def snapshot_request(self, camera_id: str) -> str:
        return f"{self.root}/cameras/{camera_id}/snapshot/request"

    @property
    def status_filter(self) -> str:
        return f"{self.root}/cameras/+/status"

    @property
    def request_filter(self) -> str:
        return f"{self.root}/cameras/+/snapshot/request"

    def command(self, action: str) -> str:
        return f"{self.root}/commands/{action}"

    def command_response(self, action: str) -> str:
        return f"{self.root}/commands/{action}/response"

    @property
    def command_filter(self) -> str:
        return f"{self.root}/commands/+"

    def action_of(self, topic: str) -> str | None:
        """`<root>/commands/<action>` -> action (any one level), else None."""
        head = f"{self.root}/commands/"
        rest = topic[len(head):] if topic.startswith(head) else ""
        return rest if rest and "/" not in rest else None

    @property
    def ha_status(self) -> str:
        return f"{self.ha_prefix}/status"

    def camera_of(self, topic: str, suffix: str) -> str | None:
        """`<root>/cameras/<id>/<suffix>` -> id, else None."""
        head, tail = f"{self.root}/cameras/", f"/{suffix}"
        if topic.startswith(head) and topic.endswith(tail):
            camera_id = topic[len(head):-len(tail)]
            return camera_id if camera_id and "/" not in camera_id else None
        return None

    # -- Home Assistant discovery ----------------------------------------------------------------

    @property
    def device_uid(self) -> str:
        return object_id(f"rtsp2jpg_{self.device_id}")

    def camera_uid(self, camera_id: str) -> str:
        return object_id(f"rtsp2jpg_{self.device_id}_{camera_id}")

    def ha_camera(self, camera_id: str) -> str:
        return f"{self.ha_prefix}/camera/{self.camera_uid(camera_id)}/config"

    def ha_connectivity(self, camera_id: str) -> str:
        return f"{self.ha_prefix}/binary_sensor/{self.camera_uid(camera_id)}_stream/config"

    def ha_problem(self, camera_id: str) -> str:
        return f"{self.ha_prefix}/binary_sensor/{self.camera_uid(camera_id)}_picture/config"


def status_payload(status: str, previous: str, since: float, error: str, stats: Any) -> dict[str, Any]:
    """`.../cameras/<id>/status`: exactly the contract's fields; the error is already redacted. The
    transition's own fields, then the stream's as /status shows them (capture.status.stream_fields)."""
    return {"status": status, "previous": previous, "since": round(since, 3), "error": error or None,
            **stream_fields(stats)}


def state_payload(started_at: float, camera_ids: list[str], hostname: str, decoders: dict[str, Any]) -> dict[str, Any]:
    """`.../state`: what this device is; `cameras` lists the ids whose status topics are live."""
    return {"version": __version__, "started_at": round(started_at, 3), "cameras": sorted(camera_ids),
            "hostname": hostname, "decoders": decoders}


def discovery(topics: Topics, camera_id: str, name: str) -> dict[str, dict[str, Any]]:
    """Home Assistant discovery configs for one camera: {config topic: payload}.

    One HA device per rtsp2jpg device; per camera a `camera` entity showing the snapshot topic and a
    connectivity `binary_sensor` fed by the status topic. Both are unavailable while the device is.
    """
    device = {"identifiers": [topics.device_uid], "name": topics.device_id, "manufacturer": "rtsp2jpg",
              "model": "rtsp2jpg edge service", "sw_version": __version__}
    origin = {"name": "rtsp2jpg", "sw_version": __version__}
    uid = topics.camera_uid(camera_id)
    status = topics.status(camera_id)
    active = "{{ 'online' if value_json.status in ('active', 'degraded') else 'offline' }}"
    camera = {"name": name, "unique_id": uid, "topic": topics.snapshot(camera_id),
              "availability": [{"topic": topics.availability},
                               {"topic": status, "value_template": active}],
              "availability_mode": "all", "device": device, "origin": origin}
    sensor = {"name": f"{name} stream", "unique_id": f"{uid}_stream",
              "device_class": "connectivity", "entity_category": "diagnostic", "state_topic": status,
              "value_template": "{{ 'ON' if value_json.status in ('active', 'degraded') else 'OFF' }}",
              "json_attributes_topic": status, "availability_topic": topics.availability,
              "device": device, "origin": origin}
    # Image health: ON while frames arrive but the picture is useless (the reason is the status's error).
    problem = {"name": f"{name} picture", "unique_id": f"{uid}_picture", "device_class": "problem",
               "entity_category": "diagnostic", "state_topic": status,
               "value_template": "{{ 'ON' if value_json.status == 'degraded' else 'OFF' }}",
               "json_attributes_topic": status, "availability_topic": topics.availability,
               "device": device, "origin": origin}
    return {topics.ha_camera(camera_id): camera, topics.ha_connectivity(camera_id): sensor,
            topics.ha_problem(camera_id): problem}
