"""The process: `run()` builds the Service and its web app, serves them on Waitress until SIGTERM/SIGINT,
speaks systemd's notify protocol and filters fds 1 and 2 (process/). Below it, the Waitress server, with its
connection limits chosen so slow or idle clients cannot stall it.

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
  CLEANUP_INTERVAL_SEC rather than Waitress's 30 s;
- a poll whose answer is already at hand is answered on the I/O thread itself (web/channel.py).
"""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Callable
from http.client import HTTPConnection
from typing import Any

from waitress.server import BaseWSGIServer, create_server

from rtsp2jpg.capture.backend import Backend, default_backend
from rtsp2jpg.config import Config, HttpConfig
from rtsp2jpg.process import sdnotify
from rtsp2jpg.service import Service
from rtsp2jpg.web.channel import BoundedChannel, InlineDispatcher, quiet_on_io_thread

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


def make_server(app: Any, http: HttpConfig, answer_now: Callable[[dict[str, Any]], bool] | None = None) -> Any:
    """waitress.create_server with the limits above; the caller runs and closes it. `answer_now`
    (environ -> answer at hand?) picks the requests answered on the I/O thread."""
    limit = effective_connection_limit(http.connection_limit, _fd_soft_limit())
    if limit < http.connection_limit:
        log.warning("http.connection_limit %d lowered to %d: the open-files limit is %s (raise LimitNOFILE)",
                    http.connection_limit, limit, _fd_soft_limit())
    dispatcher = InlineDispatcher()
    dispatcher.set_thread_count(http.threads)
    try:
        server = create_server(
            app, _dispatcher=dispatcher, host=http.host, port=http.port, threads=http.threads, ident="rtsp2jpg",
            # Long-polls hold a connection quietly; a keep-alive client idle longer than this is dropped.
            channel_timeout=max(30, int(http.long_poll_timeout_sec) + 10), cleanup_interval=CLEANUP_INTERVAL_SEC,
            connection_limit=limit, backlog=BACKLOG, asyncore_use_poll=True,
            max_request_body_size=http.max_body_bytes,
            # Waitress must not strip forwarding headers: rtsp2jpg.web.trust needs to see them to refuse the
            # loopback shortcut to an unlisted proxy (stripped, nginx's requests looked like local ones),
            # and it follows them only from http.trusted_proxies (Waitress's trusted_proxy takes one IP).
            clear_untrusted_proxy_headers=False)
    except BaseException:
        dispatcher.shutdown()  # its threads would outlive a server that could not bind
        raise
    channel = type("BoundedChannel", (BoundedChannel,), {
        "request_timeout": http.request_timeout_sec,
        "answer_now": staticmethod(answer_now) if answer_now is not None else None})
    listeners = [server] if isinstance(server, BaseWSGIServer) else \
        [d for d in getattr(server, "map", {}).values() if isinstance(d, BaseWSGIServer)]
    for listener in listeners:
        listener.channel_class = channel  # read per accept; nothing is accepted before run()
        listener.pull_trigger = quiet_on_io_thread(listener.pull_trigger)
    return server


def probe_http(host: str, port: int, timeout: float) -> str | None:
    """GET /health from our own server over loopback: None if it answered within `timeout`.

    Any complete response counts: this asks whether the server and a worker are alive, not whether
    the cameras are fine (a restart would not fix a camera, nor an auth rule on /health).
    """
    host = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(host, host)
    conn = HTTPConnection(host, port, timeout=timeout)
    try:
        conn.request("GET", "/health")
        conn.getresponse().read()
    except OSError as e:
        return f"HTTP server did not answer /health within {timeout:g}s ({type(e).__name__})"
    finally:
        conn.close()
    return None


def run(config: Config, backend: Backend | None = None, ready: Callable[[Any], None] | None = None,
        supervisor_tick_hook: Callable[[threading.Event], None] | None = None) -> int:
    """Serve until SIGTERM/SIGINT; returns the exit code. Under systemd, speaks the notify protocol."""
    from rtsp2jpg.capture.monitor import HealthMonitor
    from rtsp2jpg.process import malloc
    from rtsp2jpg.process.nativelog import NativeStderrRedactor
    from rtsp2jpg.web.app import make_app

    malloc.tune()  # before any thread or frame: the systemd unit's malloc settings wherever we run

    # OpenCV/FFmpeg/GStreamer write to fd 2 directly, past the redacting log formatter: filter fd 2 too.
    services: list[Service] = []
    secrets = lambda: [p for s in services for p in s.secrets]  # noqa: E731
    redactors = [NativeStderrRedactor(secrets, fd) for fd in (2, 1)]
    for redactor in redactors:
        redactor.start()
    try:
        backend = backend or default_backend(config)
        service = Service(config, backend, supervisor_tick_hook=supervisor_tick_hook)
    except BaseException:
        for redactor in redactors:
            redactor.stop()  # give fds 1 and 2 back so the caller's error message is not lost with the pumps
        raise
    services.append(service)
    http = config.http
    # Connection limit, request deadline, poll(): see make_server below (slowloris). Long-polls hold a
    # worker; a bounded queue warning stays quiet (see DESIGN 9 on waitress.queue).
    app = make_app(service)
    server = make_server(app, http, answer_now=app.wsgi.answer_now)
    logging.getLogger("waitress.queue").setLevel(logging.ERROR)
    host = getattr(server, "effective_host", http.host)
    port = server.effective_port  # type: ignore[attr-defined]
    notifier = sdnotify.Notifier()
    # Long enough for a worker to free up when long-polls hold them all (a busy server is healthy),
    # short enough that the ping still lands before systemd's deadline (2 x the ping interval).
    probe_timeout = max(1.0, 0.6 * (notifier.watchdog_sec or 10.0))

    def problem() -> str | None:
        """Healthy = the supervisor ticked recently, every capture thread runs, and HTTP answers itself."""
        return service.supervisor_problem() or probe_http(host, port, probe_timeout)

    systemd = sdnotify.NotifyLoop(notifier, problem, service.summary)

    def on_signal(signum: int, _frame: object) -> None:
        log.info("received %s, stopping", signal.Signals(signum).name)
        raise SystemExit(0)  # waitress's run() turns this into a clean shutdown of its threads

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    health = HealthMonitor(service.cameras, config.health)  # picture checks: active <-> degraded
    try:
        service.start()
        health.start()
        log.info("serving on http://%s:%s", http.host, port)
        systemd.start()  # READY=1 once /health answers; WATCHDOG=1 while healthy
        if ready:
            ready(server)
        server.run()
    except SystemExit:
        pass
    finally:
        systemd.stop()  # STOPPING=1 first: no watchdog ping may follow it
        server.close()
        health.stop()
        service.stop()
        log.info("stopped")
        for redactor in redactors:
            redactor.stop()
    return 0
