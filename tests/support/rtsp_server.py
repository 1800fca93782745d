"""A real RTSP server for tests: ``python -m rtsp2jpg.demo`` in a subprocess, killable and restartable.

Integration tests use real parts, so cameras are a GStreamer RTSP server, not a fake: a test can
kill it (camera gone), restart it on the same port (camera back) and read the capture time drawn
into every frame (``rtsp2jpg.demo.timecode.decode_stamp``).
"""

from __future__ import annotations

import importlib.util
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import IO, TypeVar

REPO_ROOT = Path(__file__).resolve().parents[2]
SYSTEM_PYTHON = "/usr/bin/python3"
T = TypeVar("T")


def demo_python() -> str:
    """The interpreter to run the server with: it needs PyGObject (Debian's python3-gi).

    ``$RTSP2JPG_DEMO_PYTHON`` wins; else this interpreter if it has gi (a venv made with
    --system-site-packages does), else the system Python.
    """
    if os.environ.get("RTSP2JPG_DEMO_PYTHON"):
        return os.environ["RTSP2JPG_DEMO_PYTHON"]
    return sys.executable if importlib.util.find_spec("gi") else SYSTEM_PYTHON


def gst_rtsp_missing() -> str | None:
    """Why the demo server cannot run here (None if it can); for ``pytest.skip``."""
    check = "import gi; gi.require_version('GstRtspServer', '1.0'); from gi.repository import GstRtspServer"
    try:
        r = subprocess.run([demo_python(), "-c", check], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as e:
        return f"{demo_python()}: {e}"
    if r.returncode:
        return f"GstRtspServer unavailable in {demo_python()}: {r.stderr.strip().splitlines()[-1:]}"
    return None


def wait_until(predicate: Callable[[], T], timeout: float = 10.0, interval: float = 0.05,
               message: str = "") -> T:
    """Poll ``predicate`` until it returns something truthy, and return that.

    An exception from ``predicate`` counts as "not yet" (the service may not be answering yet);
    on timeout this raises AssertionError naming the last one, so a bare call is an assertion
    and ``assert wait_until(...)`` works too.
    """
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while True:
        try:
            value = predicate()
        except Exception as e:  # noqa: BLE001 - reported on timeout
            last_error, value = e, None
        if value:
            return value
        if time.monotonic() >= deadline:
            detail = f" (last error: {last_error!r})" if last_error else ""
            raise AssertionError(f"{message or 'condition not met'} within {timeout:g} s{detail}")
        time.sleep(interval)


def self_signed_cert(directory: Path) -> tuple[Path, Path]:
    """(certificate, key) PEM files for 127.0.0.1, self-signed, as cameras ship them."""
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key),
                    "-out", str(cert), "-days", "2", "-subj", "/CN=127.0.0.1", "-addext",
                    "subjectAltName=IP:127.0.0.1"], check=True, capture_output=True, timeout=60)
    return cert, key


class RtspServer:
    """``rtsp2jpg.demo`` as a subprocess serving ``streams`` ({name: "WxH@FPS[:h264|h265]"}).

    ``port=0`` binds a free port on the first start; ``restart()`` reuses it, so clients can
    reconnect to the same URL. The server's stderr goes to a file, never an unread pipe (a full
    pipe would freeze it), and is included in errors.
    """

    def __init__(self, streams: Mapping[str, str] | None = None, port: int = 0, host: str = "127.0.0.1",
                 start_timeout: float = 20.0, args: Sequence[str] = ()) -> None:
        self.streams = dict(streams if streams is not None else {"cam": "640x360@25:h264"})
        self.args = list(args)  # more server options: --user, --auth, --tls-cert/--tls-key
        self.scheme = "rtsp"  # from the READY line: rtsps with TLS
        self.host = host
        self.port = port
        self.start_timeout = start_timeout
        self.proc: subprocess.Popen[str] | None = None
        self._stdout: IO[str] | None = None
        self._stderr: IO[str] | None = None

    def start(self) -> RtspServer:
        """Start and wait for ``READY``; RuntimeError (with the server's stderr) on failure."""
        if self.running:
            return self
        args = [demo_python(), "-m", "rtsp2jpg.demo", "--host", self.host, "--port", str(self.port)]
        for name, spec in self.streams.items():
            args += ["--stream", f"{name}={spec}"]
        args += self.args
        self._close_files()
        self._stdout = tempfile.TemporaryFile("w+", prefix="rtsp-demo-out-")
        self._stderr = tempfile.TemporaryFile("w+", prefix="rtsp-demo-err-")
        self.proc = subprocess.Popen(args, cwd=REPO_ROOT, stdin=subprocess.DEVNULL, stdout=self._stdout,
                                     stderr=self._stderr, text=True)
        deadline = time.monotonic() + self.start_timeout
        while True:
            line = self._read(self._stdout)
            if line.startswith("READY ") and line.endswith("\n"):  # a whole line, not half a write
                self.scheme, _, address = line.split()[1].partition("://")
                self.port = int(address.rsplit(":", 1)[1])
                return self
            if self.proc.poll() is not None or time.monotonic() >= deadline:
                rc = self.proc.poll()
                self.kill()
                what = f"exited with {rc}" if rc is not None else f"not ready within {self.start_timeout:g} s"
                raise RuntimeError(f"RTSP demo server {what}: {' '.join(args)}\n{self.stderr()}")
            time.sleep(0.02)

    def url(self, name: str, userinfo: str = "") -> str:
        """The RTSP URL of stream ``name``, with ``userinfo`` (``user:password``, URL-encoded) if given."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        login = f"{userinfo}@" if userinfo else ""
        return f"{self.scheme}://{login}{host}:{self.port}/{name}"

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, timeout: float = 5.0) -> None:
        """SIGTERM and wait; SIGKILL if it has not exited by ``timeout``. Safe to call twice."""
        if self.running:
            assert self.proc is not None
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill()

    def kill(self) -> None:
        """SIGKILL: the camera vanishes without closing its connections."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

    def restart(self, timeout: float = 10.0) -> RtspServer:
        """Stop (if running), then start again on the same port, so clients reconnect to the same URL.

        Retries for a while: after a kill the port can take a moment to become bindable again.
        """
        self.stop()
        deadline = time.monotonic() + timeout
        while True:
            try:
                return self.start()
            except RuntimeError:
                if time.monotonic() >= deadline:
                    raise
                time.sleep(0.3)

    def stderr(self) -> str:
        """What the server has written to stderr so far (diagnostics for failed tests)."""
        return self._read(self._stderr, whole=True)

    def _close_files(self) -> None:
        for f in (self._stdout, self._stderr):
            if f is not None:
                f.close()
        self._stdout = self._stderr = None

    @staticmethod
    def _read(f: IO[str] | None, whole: bool = False) -> str:
        if f is None:
            return ""
        f.seek(0)
        return f.read() if whole else f.readline()

    def __enter__(self) -> RtspServer:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()
        self._close_files()

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        return f"<RtspServer {self.host}:{self.port} {state} streams={self.streams!r}>"

