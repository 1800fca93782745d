"""The Waitress server, with its connection limits chosen so slow or idle clients cannot stall it.

Waitress reads requests asynchronously (a half-sent request holds no worker), but every open
connection counts against `connection_limit`, and Waitress stops accepting at that limit. Its
`channel_timeout` drops only *idle* connections: a client sending one header byte a second is never
idle, so 100 such clients (Waitress's default limit) kept /health and the watchdog's self-probe
out for as long as they trickled. Hence, deliberately:

- `connection_limit` from `http.connection_limit` (500), kept under the open-files limit so an
  accept cannot fail with EMFILE and starve the cameras' sockets;
- every request must be complete within `http.request_timeout_sec` of its first byte, else the
  connection is closed (checked on each loop pass, about once a second);
- poll() rather than select(), which fails beyond 1024 descriptors;
- idle keep-alive connections closed after `channel_timeout` (longer than a long-poll), checked every
  CLEANUP_INTERVAL_SEC rather than Waitress's 30 s.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from waitress.channel import HTTPChannel
from waitress.server import BaseWSGIServer, create_server

from rtsp2jpg.config import HttpConfig

log = logging.getLogger(__name__)

CLEANUP_INTERVAL_SEC = 5
BACKLOG = 1024  # connections the kernel holds for us while at connection_limit: they wait, not fail
FD_RESERVE = 128  # descriptors left for cameras, the registry, MQTT and logs


def _fd_soft_limit() -> int | None:
    try:
        import resource
    except ImportError:  # pragma: no cover - not on Linux
        return None
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    return None if soft == resource.RLIM_INFINITY else int(soft)


def effective_connection_limit(configured: int, fd_limit: int | None) -> int:
    """`configured`, lowered to leave FD_RESERVE descriptors free under the open-files limit."""
    if fd_limit is None:
        return configured
    return max(16, min(configured, fd_limit - FD_RESERVE))


_drops = {"count": 0, "logged_at": -1e9}  # touched only by Waitress's I/O thread


def _note_drop(timeout: float) -> None:
    """One warning a minute at most, with the count: a slowloris must not flood the log too."""
    _drops["count"] += 1
    now = time.monotonic()
    if now - _drops["logged_at"] >= 60:
        log.warning("closed %d connection(s) that did not send a whole request within %gs (slow or hostile "
                    "clients; http.request_timeout_sec)", _drops["count"], timeout)
        _drops.update(count=0, logged_at=now)


class BoundedChannel(HTTPChannel):
    """An HTTPChannel that drops a client whose request is not complete `request_timeout` s after it
    began (Waitress only drops idle channels). All of it runs in Waitress's I/O thread."""

    request_timeout = 10.0
    _pending: Any = None  # the partial request being timed
    _started = 0.0

    def received(self, data: bytes) -> bool:
        result = super().received(data)
        if self.request is None:
            self._pending = None
        elif self.request is not self._pending:
            self._pending, self._started = self.request, time.monotonic()
        return result

    def readable(self) -> bool:
        if (self.request is not None and self.request is self._pending and not self.requests
                and not self.will_close and time.monotonic() - self._started > self.request_timeout):
            self.will_close = True  # writable() then closes it
            _note_drop(self.request_timeout)
        if self.will_close:
            return False
        return bool(super().readable())


def make_server(app: Any, http: HttpConfig) -> Any:
    """waitress.create_server with the limits above; the caller runs and closes it."""
    limit = effective_connection_limit(http.connection_limit, _fd_soft_limit())
    if limit < http.connection_limit:
        log.warning("http.connection_limit %d lowered to %d: the open-files limit is %s (raise LimitNOFILE)",
                    http.connection_limit, limit, _fd_soft_limit())
    server = create_server(
        app, host=http.host, port=http.port, threads=http.threads, ident="rtsp2jpg",
        # Long-polls hold a connection quietly; a keep-alive client idle longer than this is dropped.
        channel_timeout=max(30, int(http.long_poll_timeout_sec) + 10), cleanup_interval=CLEANUP_INTERVAL_SEC,
        connection_limit=limit, backlog=BACKLOG, asyncore_use_poll=True,
        max_request_body_size=http.max_body_bytes,
        # Waitress must not strip forwarding headers: rtsp2jpg.trust needs to see them to refuse the
        # loopback shortcut to an unlisted proxy (stripped, nginx's requests looked like local ones),
        # and it follows them only from http.trusted_proxies (Waitress's trusted_proxy takes one IP).
        clear_untrusted_proxy_headers=False)
    channel = type("BoundedChannel", (BoundedChannel,), {"request_timeout": http.request_timeout_sec})
    listeners = [server] if isinstance(server, BaseWSGIServer) else \
        [d for d in getattr(server, "map", {}).values() if isinstance(d, BaseWSGIServer)]
    for listener in listeners:
        listener.channel_class = channel  # read per accept; nothing is accepted before run()
    return server
