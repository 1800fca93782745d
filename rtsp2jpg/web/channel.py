"""Waitress's channel and task pool as rtsp2jpg runs them (serve.make_server installs both): a
deadline on every request (slowloris), and plain polls answered on the I/O thread that read them.

Waitress hands every request to a worker thread. For a poll of a camera's newest, already encoded
frame (web/fastpath.py) the hand-off cost more than the answer: a lock, a notify and two GIL
hand-offs, most of Waitress's own time under a 16-connection flood (py-spy --gil). Such a request
is answered where it was parsed; anything that may wait or encode still goes to a worker, so the
I/O thread never blocks on a camera, and it gives any one client only INLINE_PER_READ answers a read.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from waitress.channel import HTTPChannel
from waitress.task import ThreadedTaskDispatcher, WSGITask

log = logging.getLogger(__name__)

INLINE_OUTBUF_MAX = 1 << 20  # unsent bytes past which a channel's next answer goes to a worker again
INLINE_PER_READ = 8  # pipelined answers the I/O thread gives one channel per read, so others get their turn

_drops = {"count": 0, "logged_at": -1e9}  # touched only by Waitress's I/O thread


def _note_drop(timeout: float) -> None:
    """One warning a minute at most, with the count: a slowloris must not flood the log too."""
    _drops["count"] += 1
    now = time.monotonic()
    if now - _drops["logged_at"] >= 60:
        log.warning("closed %d connection(s) that did not send a whole request within %gs (slow or hostile "
                    "clients; http.request_timeout_sec)", _drops["count"], timeout)
        _drops.update(count=0, logged_at=now)


class PreparedTask(WSGITask):
    """A WSGITask that reuses the environ BoundedChannel.take_inline already built for its request."""

    def get_environment(self) -> dict[str, Any]:
        if self.environ is None:
            self.environ = getattr(self.request, "prepared_environ", None)
        return super().get_environment()


class BoundedChannel(HTTPChannel):
    """An HTTPChannel that drops a client whose request is not complete `request_timeout` s after it
    began (Waitress only drops idle channels), and answers on the I/O thread what needs no worker
    (InlineDispatcher). Apart from service() on a worker, all of it runs in Waitress's I/O thread."""

    task_class = PreparedTask
    request_timeout = 10.0
    answer_now: Callable[[dict[str, Any]], bool] | None = None  # FastSnapshots.answer_now (a staticmethod)
    _pending: Any = None  # the partial request being timed
    _started = 0.0
    _io_thread: int | None = None  # ident of the I/O thread while inside received() (and service() from it)
    _inline_left = 0  # answers this read may still give on the I/O thread
    _inline_due = False  # take_inline said yes: service() runs here once requests_lock is released

    def received(self, data: bytes) -> bool:
        self._io_thread, self._inline_left = threading.get_ident(), INLINE_PER_READ
        try:
            result = super().received(data)
        finally:
            self._io_thread = None
        if self.request is None:
            self._pending = None
        elif self.request is not self._pending:
            self._pending, self._started = self.request, time.monotonic()
        self._serve_inline()
        return result

    def take_inline(self) -> bool:
        """Asked by InlineDispatcher.add_task (under requests_lock) for this channel's first request:
        True when it is answered on this thread, after the lock is released (_serve_inline). Only
        from the I/O thread, only while the client reads what it was sent (a full outbuf makes
        Waitress's write wait for the I/O thread itself), and only what answer_now has at hand."""
        if (self._io_thread != threading.get_ident() or self.answer_now is None or self._inline_left <= 0
                or not self.connected or self.total_outbufs_len > INLINE_OUTBUF_MAX):
            return False
        request = self.requests[0]
        if request.error:
            return False
        try:
            environ = self.task_class(self, request).get_environment()
            request.prepared_environ = environ  # a worker's task takes it too: built once either way
            if not self.answer_now(environ):
                return False
        except Exception:  # a bug here must not close the connection: the worker answers instead
            log.exception("deciding whether to answer on the I/O thread failed")
            return False
        self._inline_left -= 1
        self._inline_due = True
        return True

    def _serve_inline(self) -> None:
        """Answer the request take_inline kept; service() may keep the next pipelined one here too."""
        while self._inline_due:
            self._inline_due = False
            self._io_thread = threading.get_ident()
            _answering.inline = True
            try:
                self.service()
            finally:
                self._io_thread, _answering.inline = None, False

    def readable(self) -> bool:
        # Asked of every channel on every turn of the I/O loop: the common case (no partial request)
        # costs one attribute test before Waitress's own answer, which already says no once closing.
        pending = self._pending
        if (pending is not None and self.request is pending and not self.requests and not self.will_close
                and time.monotonic() - self._started > self.request_timeout):
            self.will_close = True  # writable() then closes it
            _note_drop(self.request_timeout)
        return HTTPChannel.readable(self)


_answering = threading.local()  # .inline: this thread is the I/O thread, answering in BoundedChannel._serve_inline


def quiet_on_io_thread(pull: Callable[[], None]) -> Callable[[], None]:
    """A server's pull_trigger that does nothing when the I/O thread answers inline: that wake-up is
    for the I/O thread itself, which looks at every channel on its next turn anyway. And it must not
    write: the trigger is a blocking pipe, drained by that same thread, so a full one would hang it."""
    def pull_trigger() -> None:
        if not getattr(_answering, "inline", False):
            pull()
    return pull_trigger


class InlineDispatcher(ThreadedTaskDispatcher):
    """Waitress's worker pool, except for requests a BoundedChannel answers on the I/O thread (see
    the module's docstring for why)."""

    def add_task(self, task: Any) -> None:
        if isinstance(task, BoundedChannel) and task.take_inline():
            return
        super().add_task(task)
