"""Command parsing and the bounded queue, in-process (the broker side: tests/integration/mqtt/test_commands.py)."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rtsp2jpg.mqtt import commands
from rtsp2jpg.mqtt.commands import MAX_QUEUE, CommandError, Commands, parse
from rtsp2jpg.mqtt.contract import Topics

T = Topics("rtsp2jpg", "edge-01")


@given(st.binary(max_size=2048))
def test_any_bytes_parse_or_say_why(payload):
    try:
        camera, request_id = parse("restart", payload)
    except CommandError as e:
        assert str(e)
    else:
        assert commands._ID.match(camera) and (request_id is None or commands._ID.match(request_id))


@given(st.dictionaries(st.sampled_from(["camera", "request_id", "x"]),
                       st.none() | st.integers() | st.text(max_size=80) | st.lists(st.integers(), max_size=2)))
def test_any_json_object_parses_or_says_why(data):
    try:
        camera, _ = parse("disable", json.dumps(data).encode())
    except CommandError:
        assert not (isinstance(data.get("camera"), str) and commands._ID.match(data["camera"])
                    and (data.get("request_id") is None or (isinstance(data["request_id"], str)
                                                             and commands._ID.match(data["request_id"]))))
    else:
        assert camera == data["camera"]


def test_unknown_action_and_topics_that_are_not_commands():
    with pytest.raises(CommandError, match="unknown action"):
        parse("reboot", b'{"camera": "front"}')
    assert T.action_of("rtsp2jpg/edge-01/commands/restart") == "restart"
    assert T.action_of("rtsp2jpg/edge-01/commands/restart/response") is None
    assert T.action_of("rtsp2jpg/edge-02/commands/restart") is None
    sent = []
    off = Commands(T, None, lambda t, p: sent.append(p), enabled=False)
    assert off.filters == [] and off.offer("rtsp2jpg/edge-01/commands/restart", b"{}") is False and sent == []


def test_the_queue_is_bounded_and_the_rest_are_refused_with_an_answer():
    sent: list[tuple[str, dict]] = []
    cmds = Commands(T, None, lambda t, p: sent.append((t, p)), enabled=True)  # thread not started: nothing drains
    for i in range(MAX_QUEUE + 5):
        assert cmds.offer(T.command("restart"), json.dumps({"camera": "front", "request_id": f"r{i}"}).encode())
    assert cmds._queue.qsize() == MAX_QUEUE and len(sent) == 5
    assert all(t == T.command_response("restart") and p["ok"] is False and p["error"].startswith("busy")
               for t, p in sent)
    cmds.offer("rtsp2jpg/edge-01/commands/REBOOT!", b"{}")  # not echoed into a topic; counted
    assert len(sent) == 5 and cmds.counts["refused"] == 6


class FakeCamera:
    """Only what Commands.execute reads and calls; `stuck` plays a thread blocked in an OpenCV call."""

    def __init__(self, stuck: bool = False) -> None:
        self.disabled, self.alive, self.stuck = False, True, stuck
        self.status = type("S", (), {"value": "active"})()

    def disable(self) -> bool:
        self.disabled = True
        self.alive = self.stuck
        self.status.value = "inactive"
        return not self.stuck

    def restart(self) -> bool:
        if self.stuck:
            return False
        self.disabled, self.alive = False, True
        self.status.value = "connecting"
        return True


@pytest.mark.parametrize(("action", "start_disabled", "expected"), [
    ("restart", False, (True, "connecting")), ("disable", False, (True, "inactive")),
    ("enable", True, (True, "connecting")), ("enable", False, (True, "active"))])
def test_execute(action, start_disabled, expected):
    cam = FakeCamera()
    if start_disabled:
        cam.disable()
    service = type("Svc", (), {"camera": lambda self, cid: cam if cid == "front" else None})()
    cmds = Commands(T, service, lambda t, p: True, enabled=True)
    assert cmds.execute(action, "front") == expected
    assert cmds.execute(action, "nope") == (False, "no such camera on this device")


def test_a_stuck_capture_thread_is_reported_not_waited_for():
    cam = FakeCamera(stuck=True)
    service = type("Svc", (), {"camera": lambda self, cid: cam})()
    ok, why = Commands(T, service, lambda t, p: True, enabled=True).execute("restart", "front")
    assert not ok and "still blocked" in why
