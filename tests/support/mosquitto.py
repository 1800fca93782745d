"""A real mosquitto broker for tests: free loopback ports, generated config, optional TLS and passwords.

`Mosquitto(workdir, tls=True, users={"dev": "pw"}).start()`; `.kill()` / `.start()` again keeps the
ports, so clients reconnect to the same address. `extra` is appended to the generated config (a
bridge, an ACL file); `persistence=True` keeps retained messages across `.stop()`/`.start()`.
`Subscriber` is a paho client that records every message (topic, payload, retain, qos, arrival time)
for assertions.
"""

from __future__ import annotations

import re
import shutil
import signal
import socket
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

FLEET_DOC = Path(__file__).resolve().parents[2] / "docs" / "fleet.md"


def documented_block(marker: str) -> str:
    """The ```conf block after `<!-- marker -->` in docs/fleet.md: the tests and the bench run the
    documented broker configuration, so the two cannot drift."""
    block = re.search(rf"<!-- {re.escape(marker)} -->\n```conf\n(.*?)```", FLEET_DOC.read_text(), re.S)
    if block is None:
        raise AssertionError(f"docs/fleet.md lost its {marker} block")
    return block.group(1)


def documented_bridge(central_port: int, site: str) -> str:
    """docs/fleet.md's site-broker bridge configuration, pointed at a central broker on 127.0.0.1."""
    return (documented_block("bridge-config").replace("CENTRAL_HOST:PORT", f"127.0.0.1:{central_port}")
            .replace("SITE", site))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def make_ca(directory: Path, name: str) -> tuple[Path, Path]:
    """A throwaway CA (EC P-256): returns (cert, key)."""
    directory.mkdir(parents=True, exist_ok=True)
    cert, key = directory / f"{name}.crt", directory / f"{name}.key"
    _openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
             "-keyout", key.name, "-out", cert.name, "-days", "2", "-subj", f"/CN=rtsp2jpg test {name}",
             "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign",
             cwd=directory)
    return cert, key


def make_server_cert(directory: Path, ca: tuple[Path, Path]) -> tuple[Path, Path]:
    """A server certificate for 127.0.0.1/localhost signed by `ca`: returns (cert, key)."""
    cert, key, csr = directory / "server.crt", directory / "server.key", directory / "server.csr"
    ext = directory / "server.ext"
    ext.write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n"
                   "keyUsage=critical,digitalSignature\n")
    _openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", key.name,
             "-out", csr.name, "-subj", "/CN=localhost", cwd=directory)
    _openssl("x509", "-req", "-in", csr.name, "-CA", str(ca[0]), "-CAkey", str(ca[1]), "-CAcreateserial",
             "-out", cert.name, "-days", "2", "-extfile", ext.name, cwd=directory)
    return cert, key


class Mosquitto:
    """One mosquitto process; plain listener on `port`, TLS listener on `tls_port` when `tls`."""

    def __init__(self, workdir: Path, *, tls: bool = False, users: dict[str, str] | None = None,
                 extra: str = "", persistence: bool = False) -> None:
        if shutil.which("mosquitto") is None:
            raise RuntimeError("mosquitto is not installed (apt install mosquitto mosquitto-clients)")
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.tls_port = free_port() if tls else None
        self.users = users or {}
        self.extra, self.persistence = extra, persistence
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = self.workdir / "mosquitto.log"
        self.ca_cert: Path | None = None
        if tls:
            ca = make_ca(self.workdir / "pki", "ca")
            self.ca_cert = ca[0]
            self.server_cert, self.server_key = make_server_cert(self.workdir / "pki", ca)
        self.config_path = self.workdir / "mosquitto.conf"
        self.config_path.write_text(self._config())

    def _config(self) -> str:
        persist = [f"persistence true\npersistence_location {self.workdir}/"] if self.persistence else []
        lines = ["per_listener_settings false", *(persist or ["persistence false"]), "user root",
                 f"log_dest file {self.log_path}", "log_type all", "log_timestamp true",
                 f"listener {self.port} 127.0.0.1"]
        if self.users:
            passwd = self.workdir / "passwd"
            passwd.write_text("")
            for user, password in self.users.items():
                subprocess.run(["mosquitto_passwd", "-b", str(passwd), user, password], check=True,
                               capture_output=True)
            passwd.chmod(0o600)
            lines += ["allow_anonymous false", f"password_file {passwd}"]
        else:
            lines.append("allow_anonymous true")
        if self.tls_port:
            lines += [f"listener {self.tls_port} 127.0.0.1", f"cafile {self.ca_cert}",
                      f"certfile {self.server_cert}", f"keyfile {self.server_key}"]
        return "\n".join(lines) + "\n" + (self.extra.rstrip() + "\n" if self.extra else "")

    def start(self, timeout: float = 10.0) -> Mosquitto:
        self.proc = subprocess.Popen(["mosquitto", "-c", str(self.config_path)], stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"mosquitto exited with {self.proc.returncode}:\n{self.log()}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return self
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"mosquitto did not listen within {timeout}s:\n{self.log()}")

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc and self.proc.poll() is None else None

    def kill(self) -> None:
        """SIGKILL: clients see the connection drop; retained messages are gone (no persistence)."""
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def freeze(self) -> None:
        """SIGSTOP: connections stay open but nothing is read or acknowledged (a hung broker)."""
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGSTOP)

    def thaw(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)

    def stop(self) -> None:
        self.thaw()
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.kill()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


@dataclass(frozen=True)
class Message:
    topic: str
    payload: bytes
    retain: bool
    qos: int
    at: float  # time.time() on arrival


class Subscriber:
    """A paho client that records messages on `topics` (subscribed at QoS 2, so delivered QoS = published)."""

    def __init__(self, broker: Mosquitto, topics: list[str] | str = "#", *, username: str | None = None,
                 password: str | None = None) -> None:
        self.messages: list[Message] = []
        self._cond = threading.Condition()
        self._topics = [topics] if isinstance(topics, str) else topics
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"test-sub-{free_port()}")
        if username:
            self.client.username_pw_set(username, password)
        self.client.on_connect = self._on_connect
        self.client.on_message = self._on_message
        self.client.reconnect_delay_set(0.2, 1)
        self.broker = broker
        self.subscribed = threading.Event()
        self.client.on_subscribe = lambda *_: self.subscribed.set()

    def _on_connect(self, client: Any, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        if not reason.is_failure:
            client.subscribe([(t, 2) for t in self._topics])

    def _on_message(self, _c: Any, _u: Any, msg: Any) -> None:
        with self._cond:
            self.messages.append(Message(msg.topic, bytes(msg.payload), bool(msg.retain), msg.qos, time.time()))
            self._cond.notify_all()

    def start(self, timeout: float = 10.0) -> Subscriber:
        self.client.connect_async("127.0.0.1", self.broker.port, keepalive=5)
        self.client.loop_start()
        if not self.subscribed.wait(timeout):
            raise RuntimeError("subscriber did not connect")
        return self

    def stop(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()

    def __enter__(self) -> Subscriber:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def on(self, topic: str) -> list[Message]:
        with self._cond:
            return [m for m in self.messages if m.topic == topic]

    def last(self, topic: str) -> Message | None:
        found = self.on(topic)
        return found[-1] if found else None

    def wait_for(self, predicate: Any, timeout: float = 20.0) -> Message:
        """The first recorded message (old or new) satisfying `predicate`; AssertionError at the deadline."""
        deadline = time.monotonic() + timeout
        seen = 0
        with self._cond:
            while True:
                for m in self.messages[seen:]:
                    if predicate(m):
                        return m
                seen = len(self.messages)
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    topics = sorted({m.topic for m in self.messages})
                    raise AssertionError(f"no matching MQTT message within {timeout}s; topics seen: {topics}")
                self._cond.wait(remaining)


def retained(broker: Mosquitto, topic_filter: str, settle: float = 1.0, **auth: Any) -> dict[str, bytes]:
    """What the broker holds retained under `topic_filter`: a fresh subscriber's replay."""
    marker = f"test/retained-done/{free_port()}"
    with Subscriber(broker, [topic_filter, marker], **auth) as sub:
        sub.client.publish(marker, b"x", qos=1)
        sub.wait_for(lambda m: m.topic == marker, settle + 10)
        # mosquitto replays before it delivers the marker; a clustered broker (aedes on redis) may
        # not, so wait for a quiet spell too (as the fleet reader does).
        end = time.monotonic() + settle + 10
        while time.monotonic() < end and sub.messages and time.time() - sub.messages[-1].at < 0.3:
            time.sleep(0.02)
        return {m.topic: m.payload for m in sub.messages if m.retain and m.topic != marker}
