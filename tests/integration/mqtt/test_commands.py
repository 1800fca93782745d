"""Commands over MQTT against a real mosquitto with docs/fleet.md's ACL file: restart, disable and
enable answered on the response topic; bad payloads answered with an error; an unauthorised client
cannot command; off by default (the device does not even subscribe)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.mosquitto import Mosquitto, Subscriber, documented_block
from tests.support.rtsp_server import wait_until

DEVICE = "edge-c1"
ROOT = f"rtsp2jpg/{DEVICE}"
USERS = {DEVICE: "dev-pw", "ops": "ops-pw", "monitor": "mon-pw", "intruder": "bad-pw"}


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Mosquitto]:
    acl = tmp_path / "rtsp2jpg.acl"
    acl.write_text(documented_block("acl-config"))
    b = Mosquitto(tmp_path / "broker", users=USERS, extra=f"acl_file {acl}").start()
    yield b
    b.stop()


def device_config(broker: Mosquitto, url: str, **mqtt: object) -> dict:
    return {"device_id": DEVICE, "mqtt": {"enabled": True, "host": "127.0.0.1", "port": broker.port,
                                          "username": DEVICE, "password": USERS[DEVICE], **mqtt},
            "cameras": [{"id": "front", "url": url}]}


def as_user(broker: Mosquitto, user: str) -> Subscriber:
    return Subscriber(broker, [f"{ROOT}/#"], username=user, password=USERS[user]).start()


def send(sub: Subscriber, action: str, payload: object) -> None:
    data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    sub.client.publish(f"{ROOT}/commands/{action}", data, qos=1).wait_for_publish(10)


def response_to(request_id: str):
    return lambda m: m.topic.endswith("/response") and json.loads(m.payload).get("request_id") == request_id


def status_is(status: str):
    topic = f"{ROOT}/cameras/front/status"
    return lambda m: m.topic == topic and m.payload and json.loads(m.payload)["status"] == status


def answer(sub: Subscriber, request_id: str) -> dict:
    return json.loads(sub.wait_for(response_to(request_id), 30).payload)


def test_restart_disable_enable_are_answered_and_an_intruder_cannot_command(rtsp, service_factory, broker):
    ops, intruder = as_user(broker, "ops"), as_user(broker, "intruder")
    svc = service_factory(device_config(broker, rtsp.url("cam"), commands_enabled=True))
    try:
        ops.wait_for(status_is("active"), 30)
        assert intruder.on(f"{ROOT}/cameras/front/status") == []  # the ACL denies it even reading

        # The intruder's disable is dropped by the broker: ops' enable, queued behind it, finds the
        # camera still running and leaves it alone (it would restart a disabled one).
        send(intruder, "disable", {"camera": "front", "request_id": "intruder-1"})
        send(ops, "enable", {"camera": "front", "request_id": "ops-0"})
        assert answer(ops, "ops-0") == {"request_id": "ops-0", "action": "enable", "camera": "front",
                                        "ok": True, "status": "active"}
        assert not any(response_to("intruder-1")(m) for m in ops.messages)
        assert not any(status_is("inactive")(m) for m in ops.messages), "the intruder's disable ran"

        send(ops, "restart", {"camera": "front", "request_id": "ops-1"})
        assert answer(ops, "ops-1") == {"request_id": "ops-1", "action": "restart", "camera": "front", "ok": True,
                                        "status": "connecting"}
        seen = len(ops.messages)
        wait_until(lambda: any(status_is("active")(m) for m in ops.messages[seen:]), 30)

        send(ops, "disable", {"camera": "front", "request_id": "ops-2"})
        assert answer(ops, "ops-2")["status"] == "inactive"
        ops.wait_for(status_is("inactive"), 10)
        assert svc.status("front")["status"] == "inactive"
        time.sleep(2.5)  # over two supervisor ticks: long enough for a disabled camera to be called dead
        assert "ended unexpectedly" not in svc.log()
        send(ops, "enable", {"camera": "front", "request_id": "ops-3"})
        assert answer(ops, "ops-3")["ok"] is True
        seen = len(ops.messages)
        wait_until(lambda: any(status_is("active")(m) for m in ops.messages[seen:]), 30)
        assert "ended unexpectedly" not in svc.log()  # disabled is not a dead thread to the supervisor
    finally:
        ops.stop()
        intruder.stop()


BAD = [("restart", b"{not json", "not JSON"), ("restart", b"[1, 2]", "not a JSON object"),
       ("restart", b'{"request_id": "b3"}', "camera must be"), ("disable", b'{"camera": "../x"}', "camera must be"),
       ("restart", b'{"camera": "nope", "request_id": "b5"}', "no such camera"),
       ("reboot", b'{"camera": "front"}', "unknown action"), ("restart", b"x" * 5000, "over 1024 bytes"),
       ("enable", b'{"camera": "front", "request_id": "\\u001b[2J"}', "request_id must be"),
       ("restart", b"\xff\xfe", "not JSON")]


def test_bad_payloads_get_an_error_answer_and_the_device_carries_on(rtsp, service_factory, broker):
    svc = service_factory(device_config(broker, rtsp.url("cam"), commands_enabled=True))
    ops = as_user(broker, "ops")
    try:
        ops.wait_for(status_is("active"), 30)
        ops.client.subscribe("rtsp2jpg/+/commands/+/response", 2)
        for i, (action, payload, error) in enumerate(BAD):
            seen = len(ops.messages)
            send(ops, action, payload)
            got = ops.wait_for(lambda m, seen=seen: m.topic.endswith("/response") and m in ops.messages[seen:], 20)
            body = json.loads(got.payload)
            assert got.topic == f"{ROOT}/commands/{action}/response" and body["ok"] is False, (i, body)
            assert error in body["error"], (i, body)
            assert "rtsp://" not in got.payload.decode()
        send(ops, "restart", {"camera": "front", "request_id": "good"})
        assert answer(ops, "good")["ok"] is True
        assert svc.proc.poll() is None and "Traceback" not in svc.log()
    finally:
        ops.stop()


def test_commands_are_off_by_default(rtsp, service_factory, broker):
    ops = as_user(broker, "ops")
    service_factory(device_config(broker, rtsp.url("cam")))
    try:
        ops.wait_for(status_is("active"), 30)
        send(ops, "restart", {"camera": "front", "request_id": "off-1"})
        send(ops, "disable", {"camera": "front", "request_id": "off-2"})
        # The device subscribed to its snapshot requests, but never to a command topic.
        wait_until(lambda: f"{ROOT}/cameras/+/snapshot/request" in broker.log(), 10)
        assert f"{ROOT}/commands/+" not in broker.log()
        assert not [m for m in ops.messages if "/commands/" in m.topic and m.topic.endswith("response")]
    finally:
        ops.stop()

