"""systemd's notify protocol without a dependency: one datagram per message to $NOTIFY_SOCKET.

The protocol is small and "guaranteed to be stable" (systemd's notify-selfcontained-example.py):
READY=1 once serving, STATUS=<one line> for `systemctl status`, WATCHDOG=1 every half of
$WATCHDOG_USEC while healthy, STOPPING=1 when shutting down. Outside systemd every call is a no-op.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Mapping

log = logging.getLogger(__name__)


class Notifier:
    """Sends notify messages to the socket named in the environment (a path, or '@' = abstract)."""

    def __init__(self, env: Mapping[str, str] | None = None, pid: int | None = None) -> None:
        env = os.environ if env is None else env
        address = env.get("NOTIFY_SOCKET", "")
        if address.startswith("@"):
            address = "\0" + address[1:]  # abstract namespace: a leading NUL byte, no file
        self.address = address
        self.watchdog_sec = _watchdog_interval(env, os.getpid() if pid is None else pid)
        self._lock = threading.Lock()
        self._warned = False

    @property
    def enabled(self) -> bool:
        return bool(self.address)

    def send(self, *fields: str) -> bool:
        """One datagram of `KEY=value` lines; False (logged once) if it cannot be delivered."""
        if not self.address:
            return False
        message = "\n".join(f.replace("\n", " ") for f in fields).encode()
        try:
            with self._lock, socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
                sock.connect(self.address)
                sock.sendall(message)
        except OSError as e:
            if not self._warned:
                self._warned = True
                log.warning("cannot notify systemd at %r: %s", self.address.replace("\0", "@"), e)
            return False
        return True

    def ready(self, status: str = "") -> bool:
        return self.send("READY=1", f"STATUS={status}") if status else self.send("READY=1")

    def status(self, text: str) -> bool:
        return self.send(f"STATUS={text}")

    def watchdog(self) -> bool:
        return self.send("WATCHDOG=1")

    def stopping(self) -> bool:
        return self.send("STOPPING=1", "STATUS=stopping")


def _watchdog_interval(env: Mapping[str, str], pid: int) -> float | None:
    """Seconds between WATCHDOG=1 pings (half of $WATCHDOG_USEC, as sd_watchdog_enabled(3) advises).

    None when no watchdog is armed for this process ($WATCHDOG_PID names another one).
    """
    usec, owner = env.get("WATCHDOG_USEC", ""), env.get("WATCHDOG_PID", "")
    try:
        if not usec or int(usec) <= 0 or (owner and int(owner) != pid):
            return None
        return int(usec) / 2_000_000
    except ValueError:
        return None


class NotifyLoop:
    """READY=1 once healthy, STATUS= on change, WATCHDOG=1 every half-period only while healthy.

    `problem()` returns None when healthy, else the reason. Gating the ping on it (rather than
    pinging unconditionally, which only proves the interpreter runs) lets systemd restart a process
    whose supervisor or HTTP server has wedged. Runs only under systemd ($NOTIFY_SOCKET set).
    """

    def __init__(self, notifier: Notifier, problem: Callable[[], str | None], status: Callable[[], str],
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._notifier = notifier
        self._problem = problem
        self._status = status
        self._clock = clock
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.ready = threading.Event()

    def start(self) -> None:
        if not self._notifier.enabled or self._thread is not None:
            return
        self._thread = threading.Thread(target=self._run, name="sd-notify", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop pinging, then say STOPPING=1 (idempotent; a no-op outside systemd)."""
        if self._stop.is_set():
            return
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
        self._notifier.stopping()

    def _check(self) -> str | None:
        try:
            return self._problem()
        except Exception as e:  # a failing check is itself a reason to withhold the ping
            return f"health check failed: {type(e).__name__}: {e}"

    def _run(self) -> None:
        interval = self._notifier.watchdog_sec
        if interval:
            log.info("systemd watchdog armed: WATCHDOG=1 every %.1fs while healthy", interval)
        tick = min(1.0, interval or 1.0)
        last_status = ""
        # Before READY, poll quickly: systemd's start timeout runs until then.
        while not self.ready.is_set() and not self._stop.wait(0.2):
            problem = self._check()
            if problem is None:
                last_status = self._status()
                if not self._stop.is_set():
                    self._notifier.ready(last_status)
                    self.ready.set()
                    log.info("ready (%s)", last_status)
        next_ping = self._clock()
        failing: str | None = None
        while not self._stop.is_set():
            status = self._status()
            if status != last_status:
                self._notifier.status(status)
                last_status = status
            if interval and self._clock() >= next_ping:
                problem = self._check()
                if self._stop.is_set():
                    break
                if problem is None:
                    self._notifier.watchdog()
                    next_ping += interval
                    next_ping = max(next_ping, self._clock() + interval / 2)  # no burst after a stall
                    if failing is not None:
                        log.warning("healthy again; watchdog pings resumed")
                elif problem != failing:
                    log.warning("unhealthy, withholding the systemd watchdog ping: %s", problem)
                failing = problem
            self._stop.wait(tick)
