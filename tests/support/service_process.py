"""Run the real service (`python -m rtsp2jpg serve`) as a subprocess on a free port, for tests."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Response:
    def __init__(self, status: int, headers: dict[str, str], body: bytes) -> None:
        self.status, self.headers, self.body = status, headers, body

    def json(self) -> Any:
        return json.loads(self.body)


def http(method: str, url: str, body: Any = None, headers: dict[str, str] | None = None,
         timeout: float = 15.0, raw: bytes | None = None) -> Response:
    """One HTTP request over a real socket; never raises for HTTP error codes."""
    data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
    req = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    if data is not None and "Content-Type" not in (headers or {}):
        req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:  # noqa: S310 - test URLs only
            return Response(resp.status, {k.lower(): v for k, v in resp.headers.items()}, resp.read())
    except urllib.error.HTTPError as e:
        return Response(e.code, {k.lower(): v for k, v in e.headers.items()}, e.read())


class ServiceProcess:
    """`rtsp2jpg serve` with a config written to `workdir`; logs go to `workdir/service.log`."""

    def __init__(self, workdir: Path, config: dict[str, Any] | None = None, env: dict[str, str] | None = None,
                 port: int | None = None) -> None:
        self.workdir = Path(workdir)
        self.port = port or free_port()
        self.config = {"storage": {"db_path": str(self.workdir / "registry.db")}, **(config or {})}
        self.config.setdefault("http", {})
        self.config["http"] = {"host": "127.0.0.1", "port": self.port, **self.config["http"]}
        self.config["http"]["port"] = self.port
        self.env = env or {}
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = self.workdir / "service.log"
        self.entry = ["-m", "rtsp2jpg"]  # or a test-only entry script (tests/support/wedged_serve.py)

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 20.0) -> ServiceProcess:
        self.workdir.mkdir(parents=True, exist_ok=True)
        cfg_path = self.workdir / "config.yaml"
        cfg_path.write_text(yaml.safe_dump(self.config))
        env = {**os.environ, "PYTHONUNBUFFERED": "1", **self.env}
        env.pop("RTSP2JPG_CONFIG", None)
        log = open(self.log_path, "ab")  # noqa: SIM115 - closed by the process's lifetime
        self.proc = subprocess.Popen([sys.executable, *self.entry, "serve", "--config", str(cfg_path)],
                                     cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"service exited with {self.proc.returncode}:\n{self.log()}")
            try:
                if http("GET", self.base + "/health", timeout=1).status == 200:
                    return self
            except OSError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"service did not answer within {timeout}s:\n{self.log()}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def get(self, path: str, **kw: Any) -> Response:
        return http("GET", self.base + path, **kw)

    def post(self, path: str, body: Any = None, **kw: Any) -> Response:
        return http("POST", self.base + path, body, **kw)

    def status(self, camera_id: str) -> dict[str, Any]:
        return self.get(f"/status/{camera_id}").json()

    def stop(self, timeout: float = 15.0) -> int | None:
        """SIGTERM and wait; returns the exit code."""
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else None
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError(f"service did not stop within {timeout}s after SIGTERM") from None

    def kill(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def __enter__(self) -> ServiceProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        try:
            self.stop()
        finally:
            self.kill()


def lan_address() -> str | None:
    """This machine's non-loopback IPv4 address (the one a LAN client would reach), or None."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.connect(("10.255.255.255", 1))
            addr = s.getsockname()[0]
        except OSError:
            return None
    return None if addr.startswith("127.") else addr
