"""A real RTSP server (`python -m rtsp2jpg.demo`) in a subprocess, to start, kill and restart in tests."""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def wait_until(predicate: Callable[[], object], timeout: float, interval: float = 0.05) -> bool:
    """Poll `predicate` until it is truthy or `timeout` passes; exceptions count as "not yet"."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            if predicate():
                return True
        except Exception:  # noqa: BLE001 - e.g. the server is not answering yet
            pass
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)


class RtspServer:
    """`RtspServer(streams={"cam": "640x360@25:h264"})`; `url(name)`; `stop()`, `kill()`, `restart()`."""

    def __init__(self, streams: dict[str, str] | None = None, port: int = 0, host: str = "127.0.0.1") -> None:
        self.streams = streams or {"cam": "640x360@25:h264"}
        self.host = host
        self.port = port
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 20.0) -> RtspServer:
        cmd = [sys.executable, "-m", "rtsp2jpg.demo", "--host", self.host, "--port", str(self.port)]
        for name, spec in self.streams.items():
            cmd += ["--stream", f"{name}={spec}"]
        self.proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     env={**os.environ, "PYTHONUNBUFFERED": "1"})
        assert self.proc.stdout is not None
        deadline = time.monotonic() + timeout
        line = b""
        while time.monotonic() < deadline:
            ready, _, _ = select.select([self.proc.stdout], [], [], 0.2)
            if ready:
                line = self.proc.stdout.readline()
                if line.startswith(b"READY "):
                    self.port = int(line.split()[1].rsplit(b":", 1)[1])
                    return self
            if self.proc.poll() is not None:
                break
        err = self.proc.stderr.read().decode(errors="replace") if self.proc.poll() is not None else ""
        self.kill()
        raise RuntimeError(f"RTSP server did not start: {line!r} {err}")

    def url(self, name: str) -> str:
        return f"rtsp://{self.host}:{self.port}/{name}"

    def stop(self, timeout: float = 10.0) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def restart(self) -> RtspServer:
        """Start again on the same port, so clients reconnect to the same URL."""
        self.kill()
        deadline = time.monotonic() + 10
        while True:
            try:
                return self.start()
            except RuntimeError:
                if time.monotonic() > deadline:  # the port may linger briefly after a kill
                    raise
                time.sleep(0.3)

    def __enter__(self) -> RtspServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
