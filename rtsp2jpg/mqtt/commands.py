"""Commands over MQTT (off unless `mqtt.commands_enabled`): restart, disable and enable a camera.

`<base>/<device>/commands/<action>` with a JSON payload `{"camera": "<id>", "request_id": "<opaque>"}`
is answered, not retained, on `<base>/<device>/commands/<action>/response` with
`{"request_id", "action", "camera", "ok", "status" | "error"}`. Who may send is the broker's
business (ACLs, docs/fleet.md): the device trusts whatever reaches its command topic, so the topic
is off by default and every payload is checked before anything happens.

Threads: paho's thread only parses and queues (a bounded queue; when it is full the command is
refused with an answer, never waited for); the `mqtt-commands` thread does the work, which may take
a camera's stop deadline.
"""

from __future__ import annotations

import json
import logging
import queue
import re
import threading
from collections.abc import Callable
from typing import Any

from rtsp2jpg.mqtt.contract import Topics

log = logging.getLogger(__name__)

ACTIONS = ("restart", "disable", "enable")
MAX_QUEUE = 16  # commands waiting; each may take a camera's stop deadline
MAX_PAYLOAD = 1024
_ID = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")  # camera ids are slugs or hex; request ids opaque but tame
_ACTION = re.compile(r"^[a-z0-9_-]{1,32}$")  # an unknown action is answered only if it is safe to echo


class CommandError(ValueError):
    """A command that cannot be run; the message is the `error` of the response."""


def parse(action: str, payload: bytes) -> tuple[str, str | None]:
    """(camera id, request id) of a command, else CommandError saying what is wrong."""
    if action not in ACTIONS:
        raise CommandError(f"unknown action; one of {', '.join(ACTIONS)}")
    if len(payload) > MAX_PAYLOAD:
        raise CommandError(f"payload over {MAX_PAYLOAD} bytes")
    try:
        data = json.loads(payload.decode("utf-8"))
    except (ValueError, RecursionError):
        raise CommandError('payload is not JSON; send {"camera": "<id>", "request_id": "<id>"}') from None
    if not isinstance(data, dict):
        raise CommandError('payload is not a JSON object; send {"camera": "<id>"}')
    request_id = data.get("request_id")
    if request_id is not None and not (isinstance(request_id, str) and _ID.match(request_id)):
        raise CommandError("request_id must be 1-64 characters of A-Z a-z 0-9 _ . : -")
    camera = data.get("camera")
    if not (isinstance(camera, str) and _ID.match(camera)):
        raise CommandError("camera must be a camera id")
    return camera, request_id


def answer(action: str, camera: str | None, request_id: str | None, ok: bool, detail: str) -> dict[str, Any]:
    """The response payload: `status` (the camera's, after the command) when ok, else `error`."""
    return {"request_id": request_id, "action": action, "camera": camera, "ok": ok,
            ("status" if ok else "error"): detail}


class Commands:
    """Owns the command queue and thread; inert (no topic, no thread) unless enabled."""

    def __init__(self, topics: Topics, service: Any, respond: Callable[[str, dict[str, Any]], bool],
                 enabled: bool) -> None:
        self.topics, self.service, self.respond, self.enabled = topics, service, respond, enabled
        self._queue: queue.Queue[tuple[str, str, str | None] | None] = queue.Queue(MAX_QUEUE)
        self._thread: threading.Thread | None = None
        self.counts = {"done": 0, "failed": 0, "refused": 0}

    @property
    def filters(self) -> list[tuple[str, int]]:
        return [(self.topics.command_filter, 1)] if self.enabled else []

    def start(self) -> None:
        if self.enabled and self._thread is None:
            self._thread = threading.Thread(target=self._run, name="mqtt-commands", daemon=True)
            self._thread.start()

    def stop(self, timeout: float) -> None:
        if self._thread is not None:
            try:
                self._queue.put_nowait(None)
            except queue.Full:  # the thread is busy with a full queue; it checks `stopping` per command
                pass
            self._thread.join(max(0.0, timeout))

    def offer(self, topic: str, payload: bytes) -> bool:
        """Paho's thread: True if `topic` is a command topic (handled: queued or answered), else False."""
        action = self.topics.action_of(topic) if self.enabled else None
        if action is None:
            return False
        if not _ACTION.match(action):
            self.counts["refused"] += 1
            log.warning("MQTT command on an unusable topic level ignored (not a-z 0-9 _ -)")
            return True
        try:
            camera, request_id = parse(action, bytes(payload))
        except CommandError as e:
            self._refuse(action, None, None, str(e))
            return True
        try:
            self._queue.put_nowait((action, camera, request_id))
        except queue.Full:
            self._refuse(action, camera, request_id, f"busy: {MAX_QUEUE} commands already queued; try again")
        return True

    def _refuse(self, action: str, camera: str | None, request_id: str | None, error: str) -> None:
        self.counts["refused"] += 1
        log.warning("MQTT command %s refused: %s", action, error)
        self.respond(self.topics.command_response(action), answer(action, camera, request_id, False, error))

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is None or self.service.stopping:
                return
            action, camera, request_id = item
            try:
                ok, detail = self.execute(action, camera)
            except Exception:  # a bug in one command must not end the commands
                log.exception("MQTT command %s failed", action)
                ok, detail = False, "internal error; see the device's log"
            self.counts["done" if ok else "failed"] += 1
            log.info("MQTT command %s %s: %s", action, camera, detail if ok else f"failed: {detail}")
            self.respond(self.topics.command_response(action), answer(action, camera, request_id, ok, detail))

    def execute(self, action: str, camera_id: str) -> tuple[bool, str]:
        """Run one parsed command: (ok, the camera's status after it, or why not)."""
        cam = self.service.camera(camera_id)
        if cam is None:
            return False, "no such camera on this device"
        if action == "disable":
            done = cam.disable()
        elif action == "enable" and not cam.disabled and cam.alive:
            return True, cam.status.value  # already enabled: nothing to do
        else:  # restart, or enable a disabled camera
            done = cam.restart()
        if not done:
            return False, "the capture thread is still blocked in a call; try again later"
        if self.service.camera(camera_id) is not cam:  # unregistered meanwhile: leave nothing running
            cam.stop()
            return False, "no such camera on this device"
        return True, cam.status.value
