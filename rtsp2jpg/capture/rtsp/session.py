"""Our own RTSP session over TCP: DESCRIBE, SETUP of the video track, PLAY, keep-alives, TEARDOWN, and
the track's RTP packets read off the connection only when the camera thread asks for them.

Why not rtspsrc for the receive half of adaptive decoding: rtspsrc wakes its threads for every packet
(~250 per second at 720p25, 2.3 Mbit/s), and on a small board each wake-up costs more than the work it
does (measured here: 50 wake-ups/s of an idle Python loop cost 5 ms of CPU per second, 250/s 13 ms).
`rtspsrc ! depay ! parse` alone cost 0.29x the decode floor with nobody reading. This client reads
whatever the socket holds when the camera thread wakes (4 times a second while nobody reads), so the
kernel's socket buffer does the batching. It speaks only what that needs: rtsp://, RTP over the RTSP
connection (interleaved), over TLS for rtsps://, H.264/H.265, Basic and Digest auth. Anything else raises
`Unsupported`, and rtspsrc receives that camera instead.
"""

from __future__ import annotations

import logging
import select
import socket
import ssl
import threading
import time
from urllib.parse import unquote, urlsplit

from rtsp2jpg.capture.rtsp import client, wire
from rtsp2jpg.capture.rtsp.fmtp import unsupported
from rtsp2jpg.capture.rtsp.interleaved import Demuxer
from rtsp2jpg.capture.rtsp.sdp import Track, video_track
from rtsp2jpg.urls import DEFAULT_PORTS, host_of, split_credentials

log = logging.getLogger(__name__)

MAX_READ = 4 * 1024 * 1024  # bytes taken off the socket per wake-up; the rest waits for the next
_RECV = 256 * 1024


class Unsupported(Exception):
    """The camera needs something this client does not speak (a redirect, UDP only, another codec or
    packetization): rtspsrc is used for it instead. Never carries credentials."""


class SessionError(RuntimeError):
    """A definite failure (refused login, no such stream, connection lost); the message has no password."""


class Session:
    """One camera connection: open() (the whole handshake within `timeout`), then packets() from one
    thread; close() from any thread ends a packets() wait at once. Every use of the socket after the
    handshake holds `_io` (never while waiting), so a close from another thread cannot meet a read
    half-way: TLS connections are not safe to read and write from two threads at once."""

    def __init__(self, url: str, timeout: float, cancelled: wire.Cancelled | None = None,
                 tls_verify: bool = True) -> None:
        parts = urlsplit(url)
        scheme = parts.scheme.lower()
        if scheme not in ("rtsp", "rtsps") or not parts.hostname:
            raise Unsupported("only rtsp:// and rtsps:// are received by our own client")
        self._tls, self._tls_verify = scheme == "rtsps", tls_verify
        self._bare, user, password = split_credentials(url)
        self._user = unquote(user) if user is not None else None
        self._password = unquote(password) if password is not None else ""
        self._host, self._port = parts.hostname, parts.port or DEFAULT_PORTS.get(scheme, 554)
        self.where = host_of(url)
        self._timeout, self._cancelled = timeout, cancelled
        self._sock: socket.socket | None = None
        self._io = threading.Lock()
        self._challenges: list[str] = []
        self._cseq = 0
        self._session_id = ""
        self._keepalive_sec = client.DEFAULT_SESSION_TIMEOUT_SEC / 2
        self._next_keepalive = 0.0
        self._channel = 0
        self._control = self._bare  # the session's URL: PLAY, keep-alives, TEARDOWN
        self._demux = Demuxer()
        self._pending: list[tuple[int, bytes]] = []
        self._poll: select.poll | None = None
        self._closed = threading.Event()
        self.track: Track | None = None
        self.received = 0  # bytes read after PLAY

    # -- the handshake -------------------------------------------------------------------------

    def open(self) -> Track:
        """Connect, DESCRIBE, SETUP the video track over TCP, PLAY. Raises Unsupported, SessionError,
        wire.ExchangeCancelled; nothing is left open when it raises."""
        deadline = wire.Deadline(self._timeout, self._cancelled)
        try:
            self._sock = wire.connect(self._host, self._port, deadline)
            if self._tls:
                self._sock = self._handshake(self._sock, deadline)
            track = self._describe(deadline)
            self._setup(track, deadline)
            self._play(deadline)
        except (Unsupported, wire.ExchangeCancelled):
            self.close()
            raise
        except wire.DeadlineExceeded as e:
            self.close()
            slow = "answers RTSP too slowly" if e.partial else "does not answer RTSP"
            raise SessionError(f"{self.where} {slow} (no complete handshake within {self._timeout:g}s)") from None
        except ConnectionRefusedError:
            self.close()
            raise SessionError(f"connection refused by {self.where}") from None
        except ssl.SSLCertVerificationError as e:
            self.close()
            raise SessionError(f"{self.where}: the camera's certificate was refused ({e.verify_message})") from None
        except (OSError, ValueError, UnicodeError) as e:
            self.close()
            raise SessionError(f"{self.where}: {type(e).__name__} during the RTSP handshake") from None
        except BaseException:
            self.close()
            raise
        self._sock.setblocking(False)
        self._poll = select.poll()
        self._poll.register(self._sock, select.POLLIN)
        self.track = track
        return track

    def _handshake(self, raw: socket.socket, deadline: wire.Deadline) -> ssl.SSLSocket:
        """TLS over `raw` within the deadline: the system's CAs and the host name, unless
        capture.tls_verify is false (cameras ship self-signed certificates)."""
        context = ssl.create_default_context()
        if not self._tls_verify:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        tls = context.wrap_socket(raw, server_hostname=self._host, do_handshake_on_connect=False)
        try:
            while True:
                tls.settimeout(deadline.slice(partial=True))  # raises once out of time or cancelled
                try:
                    tls.do_handshake()
                    return tls
                except (TimeoutError, ssl.SSLWantReadError, ssl.SSLWantWriteError):
                    continue
        except BaseException:
            tls.close()  # `raw` was detached into it
            raise

    def _request(self, method: str, uri: str, deadline: wire.Deadline, *headers: str) -> wire.Response:
        """One request, answered once more with credentials when the camera challenges it (401)."""
        assert self._sock is not None
        for attempt in range(2):
            self._cseq += 1
            lines = client.request_lines(method, uri, self._cseq, self._authorization(method, uri), headers)
            resp = wire.exchange(self._sock, lines, deadline)
            fresh = resp.headers.get("www-authenticate", [])
            if resp.status != 401 or attempt or self._user is None or not fresh:
                return resp
            self._challenges = fresh
        return resp

    def _authorization(self, method: str, uri: str) -> str | None:
        if not self._challenges or self._user is None:
            return None
        return client.authorization(self._challenges, method, uri, self._user, self._password)

    def _describe(self, deadline: wire.Deadline) -> Track:
        resp = self._request("DESCRIBE", self._bare, deadline, "Accept: application/sdp")
        self._refuse(resp, "DESCRIBE")
        base = resp.header("content-base") or resp.header("content-location") or self._bare
        track = video_track(resp.body.decode("utf-8", "replace"), base)
        if track is None or not track.codec:
            raise Unsupported("the camera's SDP has no H.264 or H.265 video track")
        why = unsupported(track.codec, track.fmtp)
        if why:
            raise Unsupported(why)
        return track

    def _setup(self, track: Track, deadline: wire.Deadline) -> None:
        resp = self._request("SETUP", track.control, deadline, "Transport: RTP/AVP/TCP;unicast;interleaved=0-1")
        if resp.status == 461:
            raise Unsupported("the camera does not offer RTP over TCP")
        self._refuse(resp, "SETUP")
        transport = resp.header("transport").lower()
        channel = client.interleaved_channel(transport)
        if "tcp" not in transport or channel is None:
            raise Unsupported("the camera answered SETUP without an interleaved TCP transport")
        self._channel = channel
        session = resp.header("session")
        self._session_id, timeout = client.session_header(session)
        if not self._session_id:
            raise Unsupported("the camera answered SETUP without a session")
        self._keepalive_sec = max(5.0, timeout / 2)
        self._control = track.aggregate or self._bare

    def _play(self, deadline: wire.Deadline) -> None:
        resp = self._request("PLAY", self._control, deadline, f"Session: {self._session_id}", "Range: npt=0.000-")
        self._refuse(resp, "PLAY")
        self._next_keepalive = time.monotonic() + self._keepalive_sec
        if resp.rest:  # the first frames came in the same read as the reply
            self.received += len(resp.rest)
            self._pending += self._demux.feed(resp.rest)

    def _refuse(self, resp: wire.Response, method: str) -> None:
        """SessionError for an answer no other client would get past either (a DESCRIBE refused),
        Unsupported for the rest: a SETUP or PLAY refused after DESCRIBE worked is more likely our
        reading of the camera's URLs than the camera's verdict, so rtspsrc gets to try."""
        code = resp.status
        if code == 200:
            return
        if method != "DESCRIBE":
            raise Unsupported(f"the camera answered {method} with RTSP status {code}")
        if code == 401:
            why = "wrong user name or password" if self._user is not None else "the URL has no credentials"
            raise SessionError(f"authentication failed (401) at {self.where}: {why}")
        if code in (403, 404):
            reason = "forbidden" if code == 403 else "no such stream"
            raise SessionError(f"{reason} ({code}) at {self.where}")
        raise Unsupported(f"the camera answered {method} with RTSP status {code}")

    # -- streaming -----------------------------------------------------------------------------

    def packets(self, timeout: float) -> list[bytes]:
        """The video track's RTP packets received so far, waiting up to `timeout` s for one; [] when
        none came. SessionError when the connection ended (or close() was called)."""
        deadline = time.monotonic() + timeout
        while True:
            self._keep_alive()
            out = self._take()
            left = deadline - time.monotonic()
            if out or left <= 0:
                return out
            self._wait(min(left, wire.SLICE_SEC))

    def _take(self) -> list[bytes]:
        """Everything the socket holds (up to MAX_READ), as the video channel's packets."""
        frames, self._pending = self._pending, []
        taken = 0
        with self._io:
            sock = self._sock
            if sock is None or self._closed.is_set():
                raise SessionError("the session was closed")
            while taken < MAX_READ:
                try:
                    chunk = sock.recv(_RECV)
                except (BlockingIOError, InterruptedError, ssl.SSLWantReadError, ssl.SSLWantWriteError):
                    break
                except OSError as e:
                    raise SessionError(f"connection to {self.where} lost ({type(e).__name__})") from None
                if not chunk:
                    raise SessionError(f"{self.where} closed the connection")
                taken += len(chunk)
                frames += self._demux.feed(chunk)
        self.received += taken
        return [payload for channel, payload in frames if channel == self._channel]

    def _wait(self, seconds: float) -> None:
        poll = self._poll
        if poll is None or self._closed.is_set():
            return
        try:
            poll.poll(int(seconds * 1000) + 1)
        except (OSError, ValueError):
            pass  # closed under us: the next _take() says so

    def _keep_alive(self) -> None:
        """An OPTIONS with our session every half session timeout; its reply is skipped by the demuxer."""
        now = time.monotonic()
        if now < self._next_keepalive:
            return
        self._next_keepalive = now + self._keepalive_sec
        with self._io:
            if not self._closed.is_set():
                self._send("OPTIONS", self._control, f"Session: {self._session_id}")

    def _send(self, method: str, uri: str, *headers: str) -> None:
        """Send a request without waiting for its answer (best effort: a full socket buffer skips it).
        The socket is non-blocking after the handshake; the caller holds `_io`."""
        sock = self._sock
        if sock is None:
            return
        self._cseq += 1
        try:
            lines = client.request_lines(method, uri, self._cseq, self._authorization(method, uri), headers)
            sock.send(wire.encode(lines))
        except (OSError, ValueError):  # ValueError: a session id with a line break, never sent
            pass

    def close(self) -> None:
        """TEARDOWN (best effort) and close the connection; safe from any thread, safe twice."""
        if self._closed.is_set():
            return
        self._closed.set()  # a reader past its poll() now stops before touching the socket
        with self._io:
            sock = self._sock
            if sock is None:
                return
            if self._session_id and sock.gettimeout() == 0.0:  # after the handshake (else: mid-exchange)
                self._send("TEARDOWN", self._control, f"Session: {self._session_id}")
            try:
                socket.socket.shutdown(sock, socket.SHUT_RDWR)  # wakes a poll(); the fd, not the TLS layer
            except OSError:
                pass
            sock.close()
