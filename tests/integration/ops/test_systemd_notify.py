"""The notify protocol against a real `rtsp2jpg serve` and a datagram socket the test owns.

There is no systemd as PID 1 here, so the test plays systemd's part: it binds the AF_UNIX datagram
socket named by $NOTIFY_SOCKET, arms the watchdog with $WATCHDOG_USEC and reads what arrives.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from pathlib import Path

import pytest

from rtsp2jpg.process.sdnotify import Notifier
from tests.support.rtsp_server import wait_until

WATCHDOG_USEC = 2_000_000  # pings every 1 s
UNREACHABLE = "rtsp://127.0.0.1:9/none"  # connection refused at once: a camera that never goes active
WEDGED_SERVE = Path(__file__).resolve().parents[2] / "support" / "wedged_serve.py"  # the service with a wedge hook


class NotifySocket:
    """systemd's end: collects (monotonic time, {key: value}) for every datagram."""

    def __init__(self, address: str) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(address if not address.startswith("@") else "\0" + address[1:])
        self.sock.settimeout(0.2)
        self.messages: list[tuple[float, dict[str, str]]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                data = self.sock.recv(4096)
            except TimeoutError:
                continue
            fields = dict(line.split("=", 1) for line in data.decode().splitlines() if "=" in line)
            self.messages.append((time.monotonic(), fields))

    def times(self, key: str) -> list[float]:
        return [t for t, m in list(self.messages) if key in m]

    def values(self, key: str) -> list[str]:
        return [m[key] for _, m in list(self.messages) if key in m]

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2)
        self.sock.close()


@pytest.fixture
def notify_socket(tmp_path: Path):
    sock = NotifySocket(str(tmp_path / "notify.sock"))
    yield sock
    sock.close()


def test_notifier_reaches_path_and_abstract_sockets(tmp_path: Path) -> None:
    path = NotifySocket(str(tmp_path / "n.sock"))
    abstract_name = f"@rtsp2jpg-test-{os.getpid()}-{time.monotonic_ns()}"
    abstract = NotifySocket(abstract_name)
    try:
        assert Notifier({"NOTIFY_SOCKET": str(tmp_path / "n.sock")}).ready("0 cameras")
        assert Notifier({"NOTIFY_SOCKET": abstract_name}).watchdog()
        wait_until(lambda: path.values("READY") == ["1"] and abstract.values("WATCHDOG") == ["1"], 5)
        assert path.values("STATUS") == ["0 cameras"]
    finally:
        path.close()
        abstract.close()


def test_notifier_outside_systemd_is_a_no_op_and_respects_watchdog_pid() -> None:
    assert not Notifier({}).enabled and Notifier({}).send("READY=1") is False
    assert Notifier({"WATCHDOG_USEC": "30000000"}, pid=42).watchdog_sec == 15.0
    assert Notifier({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "42"}, pid=42).watchdog_sec == 15.0
    assert Notifier({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "7"}, pid=42).watchdog_sec is None
    assert Notifier({"WATCHDOG_USEC": "junk"}).watchdog_sec is None
    # A socket that is gone: reported as False (and logged once), never raised.
    assert Notifier({"NOTIFY_SOCKET": "/nonexistent/notify.sock"}).send("READY=1") is False


def test_journald_is_recognised_by_device_and_inode(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A child that inherited $JOURNAL_STREAM but writes elsewhere keeps its timestamps."""
    from rtsp2jpg.process.logs import _is_journal

    with open(tmp_path / "journal", "w") as journal, open(tmp_path / "file", "w") as other:
        st = os.fstat(journal.fileno())
        monkeypatch.setenv("JOURNAL_STREAM", f"{st.st_dev}:{st.st_ino}")
        assert _is_journal(journal) and not _is_journal(other)
        monkeypatch.setenv("JOURNAL_STREAM", "junk")
        assert not _is_journal(journal)


def test_ready_status_watchdog_wedge_and_stopping(service_factory, notify_socket, tmp_path: Path) -> None:
    wedge = tmp_path / "wedge"
    svc = service_factory(
        {"cameras": [{"id": "door", "url": UNREACHABLE}]},
        env={"NOTIFY_SOCKET": str(tmp_path / "notify.sock"), "WATCHDOG_USEC": str(WATCHDOG_USEC)},
        start=False)
    svc.entry = [str(WEDGED_SERVE), str(wedge)]  # the supervisor hook, injected
    # Play journald: $JOURNAL_STREAM names the device:inode of the service's stderr (its log file).
    svc.workdir.mkdir(parents=True, exist_ok=True)
    svc.log_path.touch()
    st = os.stat(svc.log_path)
    svc.env["JOURNAL_STREAM"] = f"{st.st_dev}:{st.st_ino}"
    svc.start()

    # READY=1 comes with the first STATUS line, and only after HTTP answered.
    wait_until(lambda: notify_socket.values("READY"), 15)
    ready_at = notify_socket.times("READY")[0]
    assert notify_socket.values("STATUS")[0].startswith("1 camera: ")

    # WATCHDOG=1 at half of WATCHDOG_USEC: never in bursts, and steadily.
    wait_until(lambda: len(notify_socket.times("WATCHDOG")) >= 5, 20)
    pings = notify_socket.times("WATCHDOG")[:5]
    assert all(t >= ready_at for t in pings)
    gaps = [b - a for a, b in zip(pings, pings[1:], strict=False)]
    assert min(gaps) >= 0.4, gaps  # the loop schedules pings; a busy machine only delays them
    assert sum(gaps) / len(gaps) <= 3.0, gaps

    # STATUS is refreshed when the set of cameras changes.
    assert svc.post("/register", {"rtsp_url": "rtsp://127.0.0.1:9/other"}).status == 200
    wait_until(lambda: any(s.startswith("2 cameras: ") for s in notify_socket.values("STATUS")), 10)

    # A wedged supervisor stops the pings (systemd would then kill and restart the service)...
    wedge.touch()
    wait_until(lambda: "withholding the systemd watchdog ping: camera supervisor has not ticked" in svc.log(), 20)
    withheld = len(notify_socket.times("WATCHDOG"))
    time.sleep(3 * WATCHDOG_USEC / 2e6)  # three ping intervals with nothing sent
    assert len(notify_socket.times("WATCHDOG")) == withheld
    # ... and an unwedged one resumes them.
    wedge.unlink()
    wait_until(lambda: len(notify_socket.times("WATCHDOG")) > withheld, 10)
    assert "healthy again" in svc.log()

    # SIGTERM: STOPPING=1, then no more pings, exit 0.
    assert svc.stop() == 0
    stopping = notify_socket.times("STOPPING")
    assert stopping, notify_socket.messages[-3:]
    assert not [t for t in notify_socket.times("WATCHDOG") if t > stopping[0]]

    # Under journald ($JOURNAL_STREAM) lines carry no timestamp of their own: journald adds one.
    lines = [line for line in svc.log().splitlines() if line.strip()]
    assert lines and all(line.startswith("[") for line in lines if "] rtsp2jpg" in line), lines[:3]
    assert not any(line[:4].isdigit() and "[INFO]" in line for line in lines)


def test_watchdog_stops_when_http_workers_are_starved(service_factory, notify_socket, tmp_path: Path) -> None:
    """A real wedge: one Waitress worker held by a long-poll, so /health cannot be served."""
    svc = service_factory(
        {"cameras": [{"id": "door", "url": UNREACHABLE}], "http": {"threads": 1, "long_poll_timeout_sec": 60}},
        env={"NOTIFY_SOCKET": str(tmp_path / "notify.sock"), "WATCHDOG_USEC": str(WATCHDOG_USEC)})
    wait_until(lambda: len(notify_socket.times("WATCHDOG")) >= 2, 20)

    holder = threading.Thread(target=lambda: _swallow(svc.get, "/snapshot/door?after=0", timeout=70), daemon=True)
    holder.start()
    wait_until(lambda: "withholding the systemd watchdog ping: HTTP server did not answer" in svc.log(), 20)
    withheld = len(notify_socket.times("WATCHDOG"))
    time.sleep(3 * WATCHDOG_USEC / 2e6)
    assert len(notify_socket.times("WATCHDOG")) == withheld
    svc.kill()  # the held worker would delay a graceful stop by the long-poll's minute


def _swallow(fn, *args, **kw) -> None:
    try:
        fn(*args, **kw)
    except OSError:
        pass


@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")
def test_a_capture_thread_that_dies_makes_the_service_unhealthy(tmp_path: Path) -> None:
    """The supervisor's other half: a capture thread that ended without being stopped."""
    from rtsp2jpg import config
    from rtsp2jpg.capture.backend import Backend
    from rtsp2jpg.service import Service

    def open_source(_spec: object) -> None:
        raise SystemExit  # a BaseException: nothing in the capture loop catches it, the thread just ends

    cfg_file = tmp_path / "config.yaml"
    cfg_file.write_text(f"storage: {{db_path: {tmp_path / 'r.db'}}}\n"
                        f"cameras: [{{id: door, url: '{UNREACHABLE}'}}, {{id: yard, url: '{UNREACHABLE}x'}}]\n")
    from rtsp2jpg.capture.sources import Capabilities, SourceSpec

    backend = Backend(capabilities=Capabilities.nothing(),
                      candidates=lambda url, *a: [SourceSpec("fake", "ffmpeg", url)], open_source=open_source,
                      encode_jpeg=lambda *a, **k: b"")
    service = Service(config.load(cfg_file, env={}), backend)
    service.start()
    try:
        problem = wait_until(service.supervisor_problem, 10)
        assert "capture thread(s) ended unexpectedly: door, yard" in problem
        assert service.summary().startswith("2 cameras: ")
    finally:
        service.stop()
