"""How a camera opens a stream: which sources to try in what order, our own RTSP checks before and after,
and the trial of each source until one yields a frame. A mixin of Camera (its thread runs these).

Split out of camera.py by job: camera.py is the thread's lifecycle and the session loop.
"""

from __future__ import annotations

import logging
from typing import Any, Protocol

from rtsp2jpg.capture.sources import SourceSpec, tls_url
from rtsp2jpg.capture.status import DEFINITE_FAILURES, Status
from rtsp2jpg.urls import UrlError, redact

log = logging.getLogger("rtsp2jpg.worker")
TLS_HINT = ("rtsps://: if the camera's certificate is self-signed, set capture.tls_verify: false "
            "(FFmpeg is not tried while it is true: it cannot check certificates)")


class Capture(Protocol):
    """An opened source (opencv.py's Capture, direct_gst.py's DirectCapture; fakes in unit tests)."""

    spec: SourceSpec
    behind_sec: float  # how much older the last retrieved picture is than the last grabbed frame (a glance's)

    def grab(self) -> bool: ...
    def retrieve(self, glance: bool = False) -> Any: ...  # glance: a check, not a reader (see FrameSlot.want)
    def nominal_fps(self) -> float: ...
    def release(self) -> None: ...


class SourceTrials:
    """Camera's source selection and opening (see Camera for the attributes used)."""

    def _plan(self) -> list[SourceSpec] | None:
        """Sources in trial order: the last winner first, narrowed to the stream's codec when a probe
        (RTSP DESCRIBE) knows it. None, with the status set, when the probe failed definitely."""
        sources = list(self._sources)
        if self._winner in sources:
            sources.remove(self._winner)
            sources.insert(0, self._winner)
        # Only when the codec decides between hardware candidates (a failing hardware trial can cost
        # seconds; a software one fails in a fraction of one): every probe is one more connection
        # just before the real one, and GStreamer's RTSP server (the demo) answered that with 503
        # or a stream that never started. After a failed trial the probe says why (see _open).
        codecs = {spec.codec for spec in sources} - {""}
        hardware = any(spec.hardware for spec in sources)
        if self._probe is None or len(codecs) < 2 or not hardware:
            return sources
        info = self._probe(self.url, self.cfg.open_timeout_sec, cancelled=self._stop.is_set)
        if info.error:
            self._set_status(Status.ERROR, info.error)
            return None
        if info.codec:
            sources = [s for s in sources if s.codec in ("", info.codec)]
        return sources

    def _admitted(self) -> bool:
        """False, with the status set to error and why, when the URL may not be opened now."""
        if self._admit is None:
            return True
        try:
            self._admit(self.url)
        except UrlError as e:
            self._set_status(Status.ERROR, str(e))
            return False
        except Exception as e:  # fail closed: a check that cannot run admits nothing
            log.exception("%s: checking capture.allow_networks failed", self.id)
            self._set_status(Status.ERROR, f"cannot check capture.allow_networks ({type(e).__name__})")
            return False
        return True

    def _check(self, method: str) -> Any:
        """Our own RTSP request, for a reason more useful than "could not open"; None = no idea."""
        if self._diagnose is None or self._stop.is_set():
            return None
        try:
            # The whole exchange is bounded by the timeout and ends within 0.25 s of request_stop().
            return self._diagnose(self.url, min(5.0, self.cfg.open_timeout_sec), method, cancelled=self._stop.is_set)
        except Exception:
            log.exception("%s: checking the camera failed", self.id)
            return None

    def _open(self) -> Capture | None:
        """Try each source in order; the first that opens and yields a frame wins.

        An RTSP OPTIONS of our own goes first: OpenCV 4.6 opens FFmpeg captures under one
        process-wide mutex, so a camera that never answers held every other camera's (re)connect
        back for its whole open timeout. While the camera refuses our password, a DESCRIBE of ours
        replaces FFmpeg's login (one failed login per retry, not two). Only a definite answer
        (refused, silent, 401/403, 404) stops here; the rest is left to the real sources.
        """
        if not self._admitted():
            return None
        diagnosis = self._check("DESCRIBE" if self._auth_failures else "OPTIONS")
        if diagnosis is not None and diagnosis.kind in DEFINITE_FAILURES:
            self._auth_failures = self._auth_failures + 1 if diagnosis.is_auth else 0
            self._set_status(Status.ERROR, diagnosis.message)
            return None
        self._auth_failures = 0
        reasons = []
        sources = self._plan()
        if sources is None:
            return None
        opened = False
        for spec in sources:
            if self._stop.is_set():
                return None
            try:
                capture = self._open_source(spec)
            except Exception as e:
                reasons.append(redact(str(e)))
                continue
            opened = True
            if capture.grab():
                if spec is not self._winner:
                    log.info("%s: using %s", self.id, spec.label)
                self._winner = spec
                return capture
            capture.release()
            reasons.append(f"{spec.label}: opened but no frame within the timeout")
        if not opened and self.cfg.tls_verify and tls_url(self.url):
            # GStreamer says only "could not open resource" when it rejects a certificate.
            reasons.append(TLS_HINT)
        if not reasons:
            reasons.append("no capture source available for this camera")
        elif not opened:  # nothing opened: ask the camera why (wrong password, unknown path, ...)
            diagnosis = self._check("DESCRIBE")
            if diagnosis is not None and diagnosis.kind != "ok":
                reasons.append(diagnosis.message)
                self._auth_failures = 1 if diagnosis.is_auth else 0
        self._set_status(Status.ERROR, "; ".join(reasons))
        return None
