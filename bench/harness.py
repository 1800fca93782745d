"""The parts every benchmark needs: processes it owns, the demo RTSP server, the service, /proc readings.

Every process the bench starts goes through `Procs`, which kills them all (and only them) on exit,
Ctrl-C or SIGTERM, so an interrupted run leaves nothing behind.
"""

from __future__ import annotations

import json
import math
import os
import platform
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")


class BenchError(RuntimeError):
    """A benchmark could not set itself up (server did not start, camera never became active)."""


# -- small helpers ---------------------------------------------------------------------------------

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_until(pred: Callable[[], Any], timeout: float, interval: float = 0.1, what: str = "condition") -> Any:
    """Poll `pred` until it returns something truthy; BenchError after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = pred()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise BenchError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(interval)


def percentile(values: Sequence[float], p: float) -> float | None:
    """Nearest-rank percentile (p in 0..100); None for no values. Small samples: p99 is the max."""
    if not values:
        return None
    ordered = sorted(values)
    k = max(0, min(len(ordered) - 1, math.ceil(p / 100 * len(ordered)) - 1))
    return ordered[k]


def median(values: Sequence[float]) -> float | None:
    return statistics.median(values) if values else None


def get(url: str, timeout: float = 10.0) -> tuple[int, dict[str, str], bytes]:
    """One GET; HTTP errors come back as a status, not an exception."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:  # noqa: S310 - loopback URLs we built
            return resp.status, {k.lower(): v for k, v in resp.headers.items()}, resp.read()
    except urllib.error.HTTPError as e:
        return e.code, {k.lower(): v for k, v in e.headers.items()}, e.read()


def get_json(url: str, timeout: float = 10.0) -> Any:
    status, _, body = get(url, timeout)
    if status != 200:
        raise BenchError(f"GET {url} -> {status}: {body[:200]!r}")
    return json.loads(body)


# -- /proc readings --------------------------------------------------------------------------------

def cpu_seconds(pid: int) -> float:
    """CPU time of a process (all its live threads) and of its children (nginx's worker), in seconds.

    The sum of each thread's nanosecond run time from /proc/<pid>/task/*/schedstat: a decoder at a
    few ms per frame uses only a handful of utime+stime clock ticks (10 ms each) in a short window.
    (A thread that ends mid-window takes its time with it; the processes measured here keep theirs.)
    Falls back to utime+stime where schedstat is missing.
    """
    total, found = 0, False
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except FileNotFoundError:
        tids = []
    for tid in tids:
        try:
            with open(f"/proc/{pid}/task/{tid}/schedstat") as f:
                total += int(f.read().split()[0])
                found = True
        except (FileNotFoundError, ProcessLookupError):
            continue  # the thread ended between listdir and open
    if found:
        own = total / 1e9
    else:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        own = (int(fields[11]) + int(fields[12])) / CLK_TCK  # fields 14 and 15 of stat(5)
    return own + sum(_child_cpu(child) for child in _children(pid))


def _child_cpu(pid: int) -> float:
    try:
        return cpu_seconds(pid)
    except (FileNotFoundError, ProcessLookupError):
        return 0.0  # it exited


def _children(pid: int) -> list[int]:
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return [int(x) for x in f.read().split()]
    except (FileNotFoundError, ProcessLookupError):
        return []


def rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/statm") as f:
        return int(f.read().split()[1]) * PAGE / 1e6


def threads(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/task"))


def cpu_rate(pid: int, seconds: float, windows: int = 1) -> list[float]:
    """CPU seconds per wall second of `pid`, measured over `windows` consecutive windows."""
    rates = []
    for _ in range(windows):
        c0, t0 = cpu_seconds(pid), time.monotonic()
        time.sleep(seconds)
        c1, t1 = cpu_seconds(pid), time.monotonic()
        rates.append((c1 - c0) / (t1 - t0))
    return rates


def machine() -> dict[str, Any]:
    """What the figures were measured on."""
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        import cv2
        cv2_version = cv2.__version__
    except ImportError:
        cv2_version = "missing"
    ffmpeg = _first_line(["ffmpeg", "-version"])
    return {"cpu": model or platform.processor() or platform.machine(), "cores": os.cpu_count(),
            "opencv": cv2_version, "python": platform.python_version(), "kernel": platform.release(),
            "ffmpeg": ffmpeg.split(" Copyright")[0], "load_at_start": [round(x, 2) for x in os.getloadavg()]}


def _first_line(cmd: list[str]) -> str:
    try:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=10).stdout.splitlines()[0]
    except (OSError, IndexError, subprocess.TimeoutExpired):
        return "missing"


# -- processes -------------------------------------------------------------------------------------

class Procs:
    """Owns every child process of a bench run; `close()` stops them all, newest first. Idempotent."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self._procs: list[subprocess.Popen[bytes]] = []

    def start(self, args: Sequence[str], name: str, env: dict[str, str] | None = None,
              stdout: int | None = None) -> subprocess.Popen[bytes]:
        """Start `args` in its own process group, stderr (and stdout unless piped) to `<workdir>/<name>.log`."""
        log = open(self.workdir / f"{name}.log", "ab")  # noqa: SIM115 - the child keeps it
        proc = subprocess.Popen(list(args), cwd=REPO, env={**os.environ, **(env or {})}, stdin=subprocess.DEVNULL,
                                stdout=log if stdout is None else stdout, stderr=log, start_new_session=True)
        log.close()
        self._procs.append(proc)
        return proc

    def stop(self, proc: subprocess.Popen[bytes], timeout: float = 10.0) -> int | None:
        """SIGTERM the process group, SIGKILL after `timeout`; returns the exit code."""
        if proc.poll() is None:
            _signal_group(proc, signal.SIGTERM)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                _signal_group(proc, signal.SIGKILL)
                proc.wait()
        if proc in self._procs:
            self._procs.remove(proc)
        if proc.stdout:
            proc.stdout.close()
        return proc.returncode

    def close(self) -> None:
        for proc in reversed(list(self._procs)):
            self.stop(proc, timeout=5.0)


def _signal_group(proc: subprocess.Popen[bytes], sig: int) -> None:
    try:
        os.killpg(proc.pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


@contextmanager
def session(keep: bool = False) -> Iterator[Procs]:
    """A work directory and a Procs; SIGTERM/SIGINT unwind through here so every child is stopped."""
    def on_signal(signum: int, _frame: object) -> None:
        raise KeyboardInterrupt(signal.Signals(signum).name)

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
    workdir = Path(tempfile.mkdtemp(prefix="rtsp2jpg-bench-"))
    procs = Procs(workdir)
    try:
        yield procs
    finally:
        procs.close()
        for s, handler in previous.items():
            signal.signal(s, handler)
        if not keep:
            shutil.rmtree(workdir, ignore_errors=True)


# -- the demo RTSP server --------------------------------------------------------------------------

@dataclass
class RtspServer:
    """`python -m rtsp2jpg.demo` on a free port with the given mounts (NAME -> "WxH@FPS:h264")."""

    procs: Procs
    streams: dict[str, str]
    proc: subprocess.Popen[bytes] | None = None
    base: str = ""

    def start(self, timeout: float = 20.0) -> RtspServer:
        args = [PYTHON, "-m", "rtsp2jpg.demo", "--host", "127.0.0.1", "--port", "0"]
        for name, spec in self.streams.items():
            args += ["--stream", f"{name}={spec}"]
        self.proc = self.procs.start(args, "rtsp-server", stdout=subprocess.PIPE)
        assert self.proc.stdout is not None
        deadline = time.monotonic() + timeout
        os.set_blocking(self.proc.stdout.fileno(), False)
        buf = b""
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise BenchError(f"RTSP demo server exited with {self.proc.returncode}; see rtsp-server.log")
            buf += self.proc.stdout.read() or b""
            m = re.search(rb"READY (rtsp://\S+)", buf)
            if m:
                self.base = m.group(1).decode()
                return self
            time.sleep(0.05)
        raise BenchError("RTSP demo server did not print READY")

    def url(self, name: str, tag: str = "") -> str:
        """URL of a mount; `tag` makes the URL unique (the service treats the same URL as the same camera)."""
        return f"{self.base}/{name}" + (f"?bench={tag}" if tag else "")

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid


# -- the service under test ------------------------------------------------------------------------

@dataclass
class Service:
    """`python -m rtsp2jpg serve --config <generated yaml>` on a free loopback port."""

    procs: Procs
    name: str
    cameras: list[dict[str, Any]] = field(default_factory=list)
    decoder: str = "auto"
    http: dict[str, Any] = field(default_factory=dict)
    env: dict[str, str] = field(default_factory=dict)  # e.g. the systemd unit's malloc settings
    capture: dict[str, Any] = field(default_factory=dict)  # more capture.* keys than the decoder
    proc: subprocess.Popen[bytes] | None = None
    port: int = 0

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def start(self, timeout: float = 30.0) -> Service:
        self.port = free_port()
        workdir = self.procs.workdir / self.name
        workdir.mkdir(parents=True, exist_ok=True)
        config = {"log_level": "INFO",
                  "http": {"host": "127.0.0.1", "port": self.port, **self.http},
                  "storage": {"db_path": str(workdir / "registry.db")},
                  "capture": {"decoder": self.decoder, **self.capture},
                  "cameras": self.cameras}
        cfg_path = workdir / "config.yaml"
        cfg_path.write_text(yaml.safe_dump(config))
        env = {"PYTHONUNBUFFERED": "1", **self.env}
        self.proc = self.procs.start([PYTHON, "-m", "rtsp2jpg", "serve", "--config", str(cfg_path)],
                                     f"service-{self.name}", env=env)
        def up() -> bool:
            if self.proc is not None and self.proc.poll() is not None:
                raise BenchError(f"service exited with {self.proc.returncode}; see {self.log_path}")
            try:
                return get(self.base + "/health", timeout=1)[0] == 200
            except OSError:
                return False
        wait_until(up, timeout, what="the service to answer /health")
        return self

    @property
    def log_path(self) -> Path:
        return self.procs.workdir / f"service-{self.name}.log"

    def status(self, camera_id: str) -> dict[str, Any]:
        return dict(get_json(f"{self.base}/status/{camera_id}"))

    def wait_active(self, camera_id: str, timeout: float = 40.0) -> dict[str, Any]:
        """Wait until the camera is active and has delivered a frame; its /status."""
        def active() -> dict[str, Any] | None:
            st = self.status(camera_id)
            return st if st.get("status") == "active" and st.get("frames") else None
        return dict(wait_until(active, timeout, 0.2, what=f"camera {camera_id} to become active"))

    def register(self, url: str, name: str = "") -> str:
        body = json.dumps({"rtsp_url": url, "name": name}).encode()
        req = urllib.request.Request(self.base + "/register", data=body, method="POST",
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=10) as resp:  # noqa: S310 - loopback
            return str(json.loads(resp.read())["id"])

    def add_cameras(self, urls: Sequence[str], timeout: float = 40.0) -> list[dict[str, Any]]:
        """Register cameras one at a time, each after the previous is active.

        OpenCV's FFmpeg backend serialises open() per process anyway (~2 s each while FFmpeg probes
        the stream); one at a time also keeps clear of the demo server's trouble with simultaneous
        first connections (DESIGN 9) and tells which camera failed.
        """
        out = []
        for url in urls:
            camera_id = self.register(url)
            out.append(self.wait_active(camera_id, timeout))
        return out

    def stop(self) -> None:
        if self.proc is not None:
            self.procs.stop(self.proc, timeout=15.0)
            self.proc = None


def single_camera_service(procs: Procs, name: str, url: str, decoder: str, **http: Any) -> tuple[Service, dict]:
    """A service with one camera `cam` declared in its config, started and active."""
    svc = Service(procs, name, cameras=[{"id": "cam", "url": url}], decoder=decoder, http=http).start()
    try:
        status = svc.wait_active("cam")
    except BenchError:
        svc.stop()
        raise
    return svc, status
