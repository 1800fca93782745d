"""When to try a lost camera again (Camera._run): soon after a healthy session, and the moment a
camera that went away accepts connections again.

Measured with bench/reconnect.py (demo server killed after 4 s of stream, back 3 s later on the same
port): the first JPEG of the new session came 14.5 s (median; 62 s in the third round) after the
server was back, of which the open was 0.14 s. The rest was backoff: 2 s doubling per failure, never
reset by sessions shorter than stall_timeout_sec. A camera that reboots or drops off the network
for a moment is the common case, so two rules:

- after a session that streamed HEALTHY_SEC or longer, the failure count starts over and the first
  retry comes after QUICK_RETRY_SEC (a camera that drops every few seconds still waits that long);
- while the camera's RTSP port refuses connections (or nothing answers), a TCP connect every
  PROBE_EVERY_SEC ends the backoff wait as soon as the port accepts: a SYN is all it costs, where a
  full attempt is an RTSP exchange and two pipelines. A camera whose port accepts but whose stream
  fails (a wrong path, a password) keeps the plain exponential backoff.
"""

from __future__ import annotations

import ipaddress
import random
import socket
import threading
import time
from collections.abc import Callable
from urllib.parse import urlsplit

from rtsp2jpg.config import CaptureConfig

HEALTHY_SEC = 5.0
QUICK_RETRY_SEC = 0.25
PROBE_EVERY_SEC = 0.25
DEFAULT_PORTS = {"rtsp": 554, "rtsps": 322}

Probe = Callable[[], bool]  # True: the camera's port accepted a connection just now


def backoff(cfg: CaptureConfig, failures: int, auth_failures: int) -> float:
    """The wait before attempt `failures` + 1: doubling from reconnect_delay_sec with jitter, capped;
    after wrong passwords from auth_retry_delay_sec up to hourly (cameras lock accounts)."""
    if auth_failures:
        delay = cfg.auth_retry_delay_sec * 2 ** min(auth_failures - 1, 12)
        return min(3600.0, delay) * random.uniform(1.0, 1.2)
    base = cfg.reconnect_delay_sec * 2 ** min(failures - 1, 16)
    return min(cfg.reconnect_max_delay_sec, base) * random.uniform(0.8, 1.2)


def quick_retry() -> float:
    return QUICK_RETRY_SEC * random.uniform(0.8, 1.2)


def port_probe(url: str) -> Probe | None:
    """A probe of `url`'s host and RTSP port, resolved once (a name that does not resolve: None, and
    the caller waits its plain backoff). Each call connects with a PROBE_EVERY_SEC timeout."""
    try:
        parts = urlsplit(url)
        host, port = parts.hostname, parts.port or DEFAULT_PORTS.get(parts.scheme.lower())
    except ValueError:
        return None
    if not host or not port:
        return None
    try:
        ipaddress.ip_address(host)
        infos = [(socket.AF_INET6 if ":" in host else socket.AF_INET, (host, port))]
    except ValueError:
        try:
            infos = [(i[0], i[4]) for i in socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)][:1]
        except OSError:
            return None
    if not infos:
        return None
    family, address = infos[0]

    def accepts() -> bool:
        with socket.socket(family, socket.SOCK_STREAM) as sock:
            sock.settimeout(PROBE_EVERY_SEC)
            try:
                sock.connect(address)
            except OSError:
                return False
            return True

    return accepts


def wait_for_camera(stop: threading.Event, delay: float, probe: Probe | None,
                    clock: Callable[[], float] = time.monotonic) -> str:
    """Wait `delay` s. If the port refuses at the start, probe it while waiting and return "back" as
    soon as it accepts; "waited" after the whole delay, "stopped" when `stop` is set."""
    if probe is None or probe():
        return "stopped" if stop.wait(delay) else "waited"
    deadline = clock() + delay
    while True:
        left = deadline - clock()
        if left <= 0:
            return "waited"
        if stop.wait(min(PROBE_EVERY_SEC, left)):
            return "stopped"
        if probe():
            return "back"
