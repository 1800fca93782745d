"""Bounded RTSP request/response I/O under the one RTSP client (client.py; probe.py and diagnose.py use it).

A per-recv socket timeout bounds nothing against a hostile or broken camera: one byte every 0.3 s
resets it on every byte, and a 64 KB cap then takes hours to reach. So every exchange here runs
against one `Deadline` (connect + every request and reply, auth retry included), the reply head and
body are capped in bytes, and the socket is read in short slices (<= SLICE_SEC) between which a
`cancelled()` callable is asked, so a camera's stop interrupts a probe within a fraction of a second.
"""

from __future__ import annotations

import errno
import re
import selectors
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass

MAX_HEAD = 64 * 1024  # a reply's status line and headers
MAX_BODY = 64 * 1024  # a reply's body (an SDP is a few hundred bytes)
SLICE_SEC = 0.25  # longest single wait on the socket: how soon stop is noticed
_STATUS = re.compile(r"RTSP/\d\.\d (\d{3})(?:\s|$)")

Cancelled = Callable[[], bool]


class ExchangeCancelled(Exception):
    """The caller asked to stop (the camera is being stopped): not a fault of the camera."""


class DeadlineExceeded(TimeoutError):
    """The whole exchange did not finish in time; `partial` if the camera had started to answer."""

    def __init__(self, message: str, partial: bool = False) -> None:
        super().__init__(message)
        self.partial = partial


class Deadline:
    """One time budget for a whole exchange; `slice()` is the next wait, at most SLICE_SEC."""

    def __init__(self, seconds: float, cancelled: Cancelled | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.seconds = seconds
        self._clock = clock
        self._end = clock() + max(0.0, seconds)
        self._cancelled = cancelled

    def remaining(self) -> float:
        return self._end - self._clock()

    def slice(self, partial: bool = False) -> float:
        """Raise if cancelled or out of time, else how long the next socket wait may be."""
        if self._cancelled is not None and self._cancelled():
            raise ExchangeCancelled("cancelled")
        left = self.remaining()
        if left <= 0:
            raise DeadlineExceeded(f"no complete RTSP reply within {self.seconds:g}s", partial)
        return min(SLICE_SEC, left)


def connect(host: str, port: int, deadline: Deadline) -> socket.socket:
    """A TCP connection within the deadline, interruptible; errors as socket.create_connection's."""
    error: OSError | None = None
    for family, kind, proto, _, addr in socket.getaddrinfo(host, port, type=socket.SOCK_STREAM):
        sock = socket.socket(family, kind, proto)
        try:
            sock.setblocking(False)
            code = sock.connect_ex(addr)
            if code not in (0, errno.EINPROGRESS, errno.EWOULDBLOCK):
                raise OSError(code, f"connect: {errno.errorcode.get(code, code)}")
            with selectors.DefaultSelector() as sel:  # poll/epoll: no FD_SETSIZE limit
                sel.register(sock, selectors.EVENT_WRITE)
                while code:
                    if sel.select(deadline.slice()):
                        code = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                        if code:
                            raise OSError(code, f"connect: {errno.errorcode.get(code, code)}")
                        break
            return sock
        except DeadlineExceeded:
            sock.close()
            raise TimeoutError(f"connect timed out after {deadline.seconds:g}s") from None
        except BaseException as e:
            sock.close()
            if not isinstance(e, OSError) or isinstance(e, TimeoutError):
                raise
            error = e
    raise error or OSError("no address for the host")


def _recv(sock: socket.socket, size: int, deadline: Deadline, partial: bool) -> bytes:
    """One recv of at most `size` bytes, waiting in slices; b"" when the peer closed."""
    while True:
        sock.settimeout(deadline.slice(partial))
        try:
            return sock.recv(size)
        except TimeoutError:
            continue


@dataclass
class Response:
    status: int
    headers: dict[str, list[str]]  # lower-case names, every value in order
    body: bytes
    rest: bytes = b""  # what came after the reply in the same read (after PLAY: the first RTP frames)

    def header(self, name: str, default: str = "") -> str:
        values = self.headers.get(name.lower())
        return values[0] if values else default


def read_response(sock: socket.socket, deadline: Deadline) -> Response:
    """One RTSP reply: head <= MAX_HEAD, body (Content-Length) <= MAX_BODY, all before `deadline`.

    Raises DeadlineExceeded, ExchangeCancelled, ConnectionError (closed early) or ValueError (not
    RTSP, too large). A body cut short by the peer closing is returned as far as it came.
    """
    data = b""
    while (end := data.find(b"\r\n\r\n")) < 0:
        if len(data) > MAX_HEAD:
            raise ValueError(f"reply header larger than {MAX_HEAD} bytes")
        chunk = _recv(sock, 4096, deadline, bool(data))
        if not chunk:
            raise ConnectionError("connection closed by the camera")
        data += chunk
    if end > MAX_HEAD:
        raise ValueError(f"reply header larger than {MAX_HEAD} bytes")
    lines = data[:end].decode("iso-8859-1").split("\r\n")
    body = data[end + 4:]
    m = _STATUS.match(lines[0])
    if not m:
        raise ValueError("not an RTSP reply")
    headers: dict[str, list[str]] = {}
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if sep:
            headers.setdefault(name.strip().lower(), []).append(value.strip())
    raw_length = (headers.get("content-length") or ["0"])[0] or "0"
    if not raw_length.isdigit():
        raise ValueError("bad Content-Length")
    length = int(raw_length)
    if length > MAX_BODY:
        raise ValueError(f"reply body larger than {MAX_BODY} bytes")
    while len(body) < length:
        chunk = _recv(sock, length - len(body), deadline, True)
        if not chunk:
            break
        body += chunk
    return Response(int(m.group(1)), headers, body[:length], body[length:])


def encode(lines: list[str]) -> bytes:
    """A request's bytes from its request line and headers."""
    if any("\r" in line or "\n" in line for line in lines):
        # URL validation refuses control characters; a header value with CR/LF must still never go out.
        raise ValueError("refusing to send an RTSP header with CR/LF")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8")


def exchange(sock: socket.socket, lines: list[str], deadline: Deadline) -> Response:
    """Send one request (its request line and headers; a few hundred bytes, so sending never blocks
    long) and read its reply, both bounded."""
    request = encode(lines)
    sock.settimeout(deadline.slice() * 4)  # <= 1 s; raises first if cancelled or out of time
    sock.sendall(request)
    return read_response(sock, deadline)
