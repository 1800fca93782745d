"""Redact what native libraries write to stderr: OpenCV, FFmpeg and GStreamer bypass Python logging.

OpenCV's debug log prints the capture "filename" (the camera URL, password included), GStreamer's
debug log prints element properties, FFmpeg prints its own errors. `NativeStderrRedactor` puts a pipe
in place of file descriptor 2 and copies every line to the real stderr through `urls.redact` and a
literal replacement of every secret the cameras' URLs hold (`urls.secrets_of`: passwords, secret
query and vendor-path values, opaque path tokens; as written and percent-decoded), so no secret can
leave the process through any library's log, whatever its format.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterable

from rtsp2jpg.urls import redact

MIN_SECRET = 4  # shorter "passwords" would blank out ordinary words; URL redaction still covers them


class NativeStderrRedactor:
    """Owns the pipe behind fd 2 and the thread that drains it; `stop()` restores fd 2. Idempotent."""

    def __init__(self, secrets: Callable[[], Iterable[str]] = tuple, fd: int = 2) -> None:
        self._secrets = secrets
        self._fd = fd  # 2, and 1 too: OpenCV writes its INFO/DEBUG lines (pipelines included) to stdout
        self._saved: int | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self._saved is not None:
            return
        read_fd, write_fd = os.pipe()
        self._saved = os.dup(self._fd)
        os.dup2(write_fd, self._fd)
        os.close(write_fd)
        self._thread = threading.Thread(target=self._pump, args=(read_fd, self._saved),
                                        name=f"fd{self._fd}-redactor", daemon=True)
        self._thread.start()

    def clean(self, line: str) -> str:
        line = redact(line)
        for secret in sorted({s for s in self._secrets() if len(s) >= MIN_SECRET}, key=len, reverse=True):
            line = line.replace(secret, "***")
        return line

    def _pump(self, read_fd: int, out_fd: int) -> None:
        pending = b""
        with os.fdopen(read_fd, "rb", buffering=0) as pipe:
            while True:
                chunk = pipe.read(65536)
                if not chunk:
                    break
                pending += chunk
                *lines, pending = pending.split(b"\n")
                if lines:
                    self._write(out_fd, b"".join(line + b"\n" for line in lines))
                if len(pending) > 65536:  # a runaway line without a newline: redact and pass it on
                    self._write(out_fd, pending)
                    pending = b""
        if pending:
            self._write(out_fd, pending)

    def _write(self, fd: int, data: bytes) -> None:
        try:
            text = self.clean(data.decode("utf-8", "replace"))
        except Exception:  # never let a bad secrets() call silence stderr: drop the line instead
            text = "[stderr line withheld: redaction failed]\n"
        try:
            os.write(fd, text.encode("utf-8", "replace"))
        except OSError:
            pass

    def stop(self) -> None:
        """Put the real stderr back; the pump drains what was written and ends."""
        if self._saved is None:
            return
        saved, self._saved = self._saved, None
        os.dup2(saved, self._fd)  # closes the pipe's last write end: the pump sees EOF
        if self._thread is not None:
            self._thread.join(2.0)
        os.close(saved)
