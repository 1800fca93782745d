"""Service: builds and owns everything (registry, cameras, listeners); serve.py runs it as a process.

Imports no web code: the HTTP app (web/) and the process (serve.py) are built on top of it. Start
reads top to bottom (registry -> publisher -> cameras -> HTTP); stop undoes it in reverse, within a
deadline, and is safe to call twice.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from rtsp2jpg import __version__
from rtsp2jpg.capture import reconnect
from rtsp2jpg.capture.backend import Backend
from rtsp2jpg.capture.camera import Camera
from rtsp2jpg.capture.frames import EncodeBudget
from rtsp2jpg.capture.sources import PREFERENCES
from rtsp2jpg.capture.status import StatusChange, count_line, status_counts
from rtsp2jpg.capture.streams import main_capture, same_streams, sub_id
from rtsp2jpg.capture.view import Picture, same_settings, settings_json
from rtsp2jpg.config import CaptureConfig, Config
from rtsp2jpg.registry import Registration, Registry, RegistryError
from rtsp2jpg.urls import UrlError, canonical, check_allowed, secrets_of, validate_rtsp_url

if TYPE_CHECKING:  # paho is imported only when MQTT is on
    from rtsp2jpg.mqtt.publisher import Publisher

log = logging.getLogger(__name__)

SUPERVISE_EVERY_SEC = 1.0
SUPERVISOR_STALE_SEC = 5.0  # a supervisor that has not ticked for this long is wedged


class ConflictError(RuntimeError):
    """The request contradicts the configuration (e.g. removing a camera declared in the file)."""


class CapacityError(ConflictError):
    """capture.max_cameras cameras already run: each is a thread and a decoder, so the limit holds."""


class Service:
    """Owns the Registry, the MQTT publisher (if enabled), the status listeners and `{id: Camera}`."""

    def __init__(self, config: Config, backend: Backend, registry: Registry | None = None,
                 publisher: Publisher | None = None,
                 supervisor_tick_hook: Callable[[threading.Event], None] | None = None) -> None:
        self.config = config
        # Called at the start of every supervisor tick with the stop event; tests pass one that blocks
        # (a real wedge, on demand, so they can prove the systemd watchdog stops). None in production.
        self._tick_hook = supervisor_tick_hook
        self.backend = backend
        self.registry = registry or Registry(config.storage.db_path)
        self.started_at = time.time()
        self._cameras: dict[str, Camera] = {}
        # One byte budget for the JPEG encodings of every camera's frames (see frames.EncodeBudget).
        self.encode_budget = EncodeBudget(int(config.http.encode_cache_mb * 1024 * 1024))
        # Every camera password this process has handled, removed cameras included: an abandoned
        # open may still print its pipeline (user-pw=...) after the camera is gone.
        self.secrets: set[str] = set()
        self._lock = threading.Lock()
        # Held across the same-URL check, the registry insert and the camera insert: two requests
        # for one URL must not both start a Camera under one id. Only fast work happens under it.
        self._register_lock = threading.Lock()
        self._listeners: list[Callable[[StatusChange], None]] = []
        self._stopped = False
        if publisher is None and config.mqtt.enabled:
            from rtsp2jpg.mqtt.publisher import Publisher  # paho is needed only when MQTT is on

            publisher = Publisher(self)
        self.publisher = publisher
        if publisher is not None:
            self.add_listener(publisher.on_status)
        self.resolve: Callable[..., Any] = socket.getaddrinfo  # tests inject a changing resolver
        self.last_tick = time.monotonic()
        self.dead_threads: list[str] = []
        self._stop_supervisor = threading.Event()
        self._supervisor: threading.Thread | None = None

    # -- lifecycle -------------------------------------------------------------------------------

    def add_listener(self, listener: Callable[[StatusChange], None]) -> None:
        """Status transitions go to every listener (MQTT publisher, metrics, history)."""
        self._listeners.append(listener)

    def start(self) -> None:
        if self.publisher is not None:
            self.publisher.start()  # before cameras, so their first transitions are published
        for cam in self.config.cameras:
            self._start_camera(cam.id, cam.name, cam.url, cam.capture, source="config", picture=Picture(
                cam.id, cam.name, cam.privacy_masks, cam.rotate, cam.crop, cam.timestamp), sub_url=cam.streams.sub)
        try:
            registered = self.registry.all()
        except RegistryError as e:  # the config cameras must run even if the registry cannot be read
            log.error("%s; starting without registered cameras", e)
            registered = []
        skipped = []
        for reg in registered:
            if reg.id in self._cameras:
                log.warning("%s: registered camera shadowed by a camera of the same id in the config", reg.id)
                continue
            if len(self._cameras) >= self.config.capture.max_cameras:
                skipped.append(reg.id)  # kept in the registry; starts once the limit allows, after a restart
                continue
            self._start_camera(reg.id, reg.name, reg.url, self.config.capture, prefer=reg.prefer,
                               picture=Picture.from_json(reg.id, reg.name, reg.picture), sub_url=reg.sub_url)
        if skipped:
            log.warning("%d registered camera(s) not started, capture.max_cameras is %d: %s "
                        "(raise the limit or unregister cameras, then restart)",
                        len(skipped), self.config.capture.max_cameras, ", ".join(skipped))
        log.info("started %d camera(s)", len(self._cameras))
        self._supervisor = threading.Thread(target=self._supervise, name="supervisor", daemon=True)
        self._supervisor.start()

    def stop(self) -> None:
        """Stop every camera in parallel within one deadline, then close the registry. Idempotent."""
        if self._stopped:
            return
        self._stopped = True
        self._stop_supervisor.set()
        if self._supervisor is not None:
            self._supervisor.join(SUPERVISE_EVERY_SEC * 2)
        with self._lock:
            cameras = list(self._cameras.values())
        for cam in cameras:
            cam.request_stop()
        deadline = time.monotonic() + self.config.capture.stop_timeout_sec
        stuck = [c.id for c in cameras if not c.join(deadline - time.monotonic())]
        if stuck:
            log.warning("%d capture thread(s) did not stop in time: %s", len(stuck), ", ".join(stuck))
        if self.publisher is not None:
            self.publisher.stop()  # publishes the cameras' last transitions, then `offline`; bounded
        self.registry.close()

    # -- supervision -----------------------------------------------------------------------------

    def _supervise(self) -> None:
        """Every second: check that each capture thread is alive, then tick (the watchdog reads both)."""
        suspects: set[str] = set()
        while not self._stop_supervisor.wait(SUPERVISE_EVERY_SEC):
            if self._tick_hook is not None:
                self._tick_hook(self._stop_supervisor)
            # Dead on two ticks in a row: a camera being added is in the dict just before its start().
            not_alive = [cam.id for cam in self.cameras() if not cam.alive and not cam.disabled]
            dead = [cid for cid in not_alive if cid in suspects]
            suspects = set(not_alive)
            if dead and dead != self.dead_threads:
                log.error("capture thread(s) ended unexpectedly: %s", ", ".join(dead))
            self.dead_threads = dead
            self.last_tick = time.monotonic()

    def supervisor_problem(self) -> str | None:
        """None while the supervisor ticks and every capture thread runs; else why not."""
        age = time.monotonic() - self.last_tick
        if age > SUPERVISOR_STALE_SEC:
            return f"camera supervisor has not ticked for {age:.0f}s"
        if self.dead_threads:
            return f"capture thread(s) ended unexpectedly: {', '.join(self.dead_threads)}"
        return None

    def summary(self) -> str:
        """One line for `systemctl status`: "4 cameras: 3 active, 1 connecting"."""
        return count_line([cam.status for cam in self.cameras()])

    # -- cameras ---------------------------------------------------------------------------------

    def _notify(self, change: StatusChange) -> None:
        for listener in self._listeners:
            try:
                listener(change)
            except Exception:
                log.exception("status listener failed")

    def _start_camera(self, camera_id: str, name: str, url: str, capture: CaptureConfig, *, source: str = "api",
                      prefer: str = "default", picture: Picture, sub_url: str = "") -> Camera:
        """One Camera (and its sub stream's, which only logs its status: the camera's is the main one's)."""
        cam = self._camera(camera_id, name, url, main_capture(capture) if sub_url else capture, self._notify,
                           source, prefer, picture)
        if sub_url:
            cam.sub = self._camera(sub_id(camera_id), name, sub_url, capture, lambda _: None, source, prefer, picture)
        with self._lock:
            self._cameras[camera_id] = cam
        cam.start()
        return cam

    def _camera(self, camera_id: str, name: str, url: str, capture: CaptureConfig,
                on_status: Callable[[StatusChange], None], source: str, prefer: str, picture: Picture) -> Camera:
        self.secrets.update(secrets_of(url))  # before anything can print the URL (query/path secrets too)
        sources = self.backend.candidates(url, capture, self.backend.capabilities, prefer)
        networks = capture.allow_networks
        return Camera(camera_id, name, url, capture, sources, open_source=self.backend.open_source,
                      on_status=on_status, source=source, prefer=prefer, diagnose=self.backend.diagnose,
                      probe=self.backend.probe, admit=lambda u: self._admit(u, networks),
                      encode_budget=self.encode_budget, picture=picture, port_probe=reconnect.port_probe)

    def _admit(self, url: str, networks: tuple[str, ...]) -> None:
        """Before every connection (start, reconnect): the registry may predate the allow-list, and a
        name may resolve elsewhere later. Raises NotAllowedError/UrlError; the camera shows it."""
        check_allowed(url, networks, self.resolve)

    @property
    def stopping(self) -> bool:
        return self._stopped

    def cameras(self) -> list[Camera]:
        with self._lock:
            return list(self._cameras.values())

    def camera(self, camera_id: str) -> Camera | None:
        with self._lock:
            return self._cameras.get(camera_id)

    def known_camera_ids(self) -> set[str]:
        """Every camera this device has: the config file's, the running ones and the registry's.
        Raises when the registry cannot be read (a caller sweeping stale topics then sweeps nothing)."""
        known = {c.id for c in self.config.cameras} | {c.id for c in self.cameras()}
        return known | {r.id for r in self.registry.all()}

    def register(self, url: str, name: str = "", prefer: str = "default", picture: dict[str, Any] | None = None,
                 sub_url: str = "") -> tuple[Camera, bool]:
        """Persist then start; the same (main) URL again is that camera (other picture or sub stream: ConflictError)."""
        if prefer not in PREFERENCES:
            raise ValueError(f"prefer must be one of {', '.join(PREFERENCES)}")
        for each in (url, sub_url) if sub_url else (url,):  # a leaked API key must not make a host scanner
            self._admit(validate_rtsp_url(each), self.config.capture.allow_networks)
        if sub_url and canonical(sub_url) == canonical(url):
            raise UrlError("of the sub stream is the main stream's URL")
        with self._register_lock:  # check, insert and start as one step (see __init__)
            same = self._find_same(url)
            if same is not None:
                if same_streams(same, sub_url) and (picture is None or same_settings(same.slot.picture, picture)):
                    return same, False
                raise ConflictError(f"camera {same.id} reads this URL with other picture settings or another sub "
                                    "stream; unregister it first")
            self._check_capacity()  # before persisting: a refused camera must not start at the next boot
            reg: Registration
            reg, created = self.registry.add(url, name, prefer, settings_json(picture or {}), sub_url)
            existing = self.camera(reg.id)
            if existing is not None:
                return existing, False
            cam = self._start_camera(reg.id, reg.name, reg.url, self.config.capture, prefer=reg.prefer,
                                     picture=Picture.from_json(reg.id, reg.name, reg.picture), sub_url=reg.sub_url)
        log.info("%s: registered (%s)", cam.id, "new" if created else "from registry")
        return cam, True

    def _find_same(self, url: str) -> Camera | None:
        """The running camera that already reads `url` under any spelling (one stream under many
        spellings would be many RTSP sessions, and cameras allow 2-4); called under the registration lock."""
        key = canonical(url)
        for cam in self.cameras():
            if canonical(cam.url) == key:
                return cam
        return None

    def _check_capacity(self) -> None:
        """Refuse a new camera once capture.max_cameras run (config + registered); 500 registrations
        used to start 500 threads in 0.4 s. Called under the registration lock, before the row is written."""
        limit = self.config.capture.max_cameras
        running = len(self._cameras)
        if running >= limit:
            raise CapacityError(f"{running} cameras already run, the limit set by capture.max_cameras ({limit}); "
                                "unregister one or raise the limit")

    def unregister(self, camera_id: str) -> bool:
        """Remove from the registry first (so a crash cannot resurrect it), then stop the thread."""
        cam = self.camera(camera_id)
        if cam is not None and cam.source == "config":
            raise ConflictError(f"camera {camera_id} is declared in the config file; remove it there")
        with self._register_lock:  # not between another request's check and its start
            removed = self.registry.remove(camera_id)
            with self._lock:
                cam = self._cameras.pop(camera_id, None)
        if cam is not None:
            cam.stop()
            log.info("%s: unregistered", camera_id)
        if self.publisher is not None and (removed or cam is not None):
            self.publisher.forget(camera_id)  # clears its retained status, snapshot and discovery
        return removed or cam is not None

    def health(self) -> dict[str, Any]:
        caps = self.backend.capabilities
        return {"ok": True, "version": __version__, "backends_built": dict(caps.backends),
                "decoders": dict(caps.decoders), "board": caps.board, "board_model": caps.board_model,
                "cameras": status_counts([cam.status for cam in self.cameras()]),
                **self._mqtt_health(), **self._registry_health()}

    def _registry_health(self) -> dict[str, Any]:
        """Present only after a corrupt registry was moved aside at start (see Registry.recovery)."""
        recovery = getattr(self.registry, "recovery", None)
        return {"registry": dict(recovery)} if recovery else {}

    def _mqtt_health(self) -> dict[str, Any]:
        if self.publisher is None:
            return {"mqtt": "disabled"}
        return {"mqtt": self.publisher.state, "mqtt_error": self.publisher.error}
