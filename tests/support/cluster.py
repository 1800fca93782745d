"""A real two-node MQTT broker cluster for tests: aedes nodes (npm `aedes-cli`, installed under
.test-tools/ by `scripts/setup.sh --test`) sharing one redis-server for retained messages, Wills,
sessions and routing. Free loopback ports, a temp dir, nothing left running.

Why aedes and not the Debian 12 brokers, measured here: ejabberd 23.01's mod_mqtt replicates its
retained store in mnesia, but answers a SUBSCRIBE from a node-local topic cache filled at node
start and by that node's own publishes, so a reader on node B never sees what a device on node A
retained; RabbitMQ 3.10's MQTT plugin keeps retained messages node-local by design.
"""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

from tests.support.mosquitto import free_port

REPO = Path(__file__).resolve().parents[2]
AEDES = REPO / ".test-tools" / "node_modules" / ".bin" / "aedes"
HEARTBEAT_MS = 1000  # a node that stops beating for ~3 beats is dead: the others publish its clients' Wills


def _wait_listening(proc: subprocess.Popen[bytes], port: int, log: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"exited with {proc.returncode}:\n{log.read_text(errors='replace')[-3000:]}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"did not listen on {port} within {timeout}s:\n{log.read_text(errors='replace')[-3000:]}")


class Process:
    """One child process with its log; `port` is its listening port."""

    def __init__(self, argv: list[str], port: int, log: Path) -> None:
        self.argv, self.port, self.log_path = argv, port, log
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 20.0) -> Process:
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(self.argv, stdout=log, stderr=subprocess.STDOUT)
        _wait_listening(self.proc, self.port, self.log_path, timeout)
        return self

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc and self.proc.poll() is None else None

    def kill(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.kill()


class Cluster:
    """redis + two aedes nodes: `a.port`, `b.port`; `stop()` ends all three."""

    def __init__(self, workdir: Path) -> None:
        for tool, hint in ((str(AEDES), "scripts/setup.sh --test (npm aedes-cli)"),
                           ("redis-server", "apt install redis-server")):
            if shutil.which(tool) is None:
                raise RuntimeError(f"{tool} is not installed ({hint})")
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        rport = free_port()
        self.redis = Process(["redis-server", "--port", str(rport), "--bind", "127.0.0.1", "--save", "",
                              "--appendonly", "no", "--dir", str(self.workdir)], rport, self.workdir / "redis.log")
        self.a = self._node("node-a", rport)
        self.b = self._node("node-b", rport)

    def _node(self, name: str, redis_port: int) -> Process:
        port = free_port()
        config = self.workdir / f"{name}.js"
        backend = f"{{ name: 'redis', options: {{ host: '127.0.0.1', port: {redis_port} }} }}"
        config.write_text(f"module.exports = {{ protos: ['tcp'], host: '127.0.0.1', port: {port}, "
                          f"brokerId: '{name}', heartbeatInterval: {HEARTBEAT_MS}, "
                          f"persistence: {backend}, mq: {backend} }}\n")
        return Process([str(AEDES), "--config", str(config)], port, self.workdir / f"{name}.log")

    def start(self) -> Cluster:
        self.redis.start()
        self.a.start()
        self.b.start()
        return self

    def stop(self) -> None:
        for proc in (self.a, self.b, self.redis):
            proc.stop()
