"""Misbehaving servers for fault tests: real sockets, real RTSP, each fault switchable at run time.

- `DemoRtsp`: the project's real RTSP server (`python -m rtsp2jpg.demo`) in a subprocess, restartable
  on the same port (also with a different resolution).
- `SilentServer`: accepts TCP connections and never says a word (a wedged camera or a black hole).
- `FakeRtsp`: a tiny hand-written RTSP server that answers OPTIONS/DESCRIBE/SETUP/PLAY and then sends
  no RTP at all (`mode="no_rtp"`), or refuses every DESCRIBE with 401 (`mode="auth"`), counting the
  attempts so a test can see how hard a camera would be hammered.
- `DripServer`: reads a request and answers one byte every 0.3 s for ever: the status line over and
  over (`mode="status"`), an endless header (`"header"`) or a body that never ends (`"body"`);
  methods in `prompt` (e.g. OPTIONS) get a normal answer first. `interval=0` floods instead.
- `Relay`: a TCP relay in front of a real server that can cut every connection mid-frame, stall
  (stop forwarding but keep the sockets open) or garble the payload of interleaved RTP packets.
"""

from __future__ import annotations

import random
import re
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def _listener(host: str = "127.0.0.1", port: int = 0) -> socket.socket:
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(64)
    return sock


def read_request_head(conn: socket.socket, buf: bytes) -> tuple[list[str], bytes] | None:
    """The next request's head lines from `conn` (after what `buf` holds), and the bytes after it;
    None when the client closed first."""
    while b"\r\n\r\n" not in buf:
        data = conn.recv(4096)
        if not data:
            return None
        buf += data
    head, _, rest = buf.partition(b"\r\n\r\n")
    return head.decode("latin-1").split("\r\n"), rest


class _Server:
    """A listening socket with an accept thread; subclasses handle each connection in a thread."""

    def __init__(self) -> None:
        self._sock = _listener()
        self.port = self._sock.getsockname()[1]
        self._stop = threading.Event()
        self._conns: list[socket.socket] = []
        self._lock = threading.Lock()
        self.connections = 0
        self.active = 0  # connections being served now: a client that closed its socket is not counted
        self._thread = threading.Thread(target=self._accept, daemon=True, name=type(self).__name__)

    def url(self, path: str = "cam", userinfo: str = "") -> str:
        return f"rtsp://{userinfo + '@' if userinfo else ''}127.0.0.1:{self.port}/{path}"

    def start(self) -> _Server:
        self._thread.start()
        return self

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except OSError:
                return
            with self._lock:
                self._conns.append(conn)
                self.connections += 1
            threading.Thread(target=self._serve_safely, args=(conn,), daemon=True).start()

    def _serve_safely(self, conn: socket.socket) -> None:
        with self._lock:
            self.active += 1
        try:
            self.serve(conn)
        except OSError:
            pass
        finally:
            conn.close()
            with self._lock:
                self.active -= 1

    def serve(self, conn: socket.socket) -> None:  # pragma: no cover - overridden
        raise NotImplementedError

    def close_connections(self) -> None:
        with self._lock:
            conns, self._conns = self._conns, []
        for c in conns:
            try:
                c.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            c.close()

    def stop(self) -> None:
        self._stop.set()
        self._sock.close()
        self.close_connections()

    def __enter__(self) -> _Server:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class SilentServer(_Server):
    """Accepts TCP and then says nothing, for ever (until stopped)."""

    def serve(self, conn: socket.socket) -> None:
        while not self._stop.is_set() and conn.recv(4096):
            pass


SDP = ("v=0\r\no=- 0 0 IN IP4 127.0.0.1\r\ns=fake\r\nc=IN IP4 0.0.0.0\r\nt=0 0\r\n"
       "m=video 0 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\n"
       "a=fmtp:96 packetization-mode=1;profile-level-id=42c01e;"
       "sprop-parameter-sets=Z0LAHtkAoC/5YQAAAwABAAADADIPFi5I,aMuMsg==\r\na=control:stream=0\r\n")


class FakeRtsp(_Server):
    """A plain-socket RTSP server: `no_rtp` plays nothing after PLAY; `auth` answers 401 to DESCRIBE;
    `udp_only` answers a SETUP for RTP over TCP with 461 Unsupported Transport."""

    def __init__(self, mode: str = "no_rtp") -> None:
        super().__init__()
        assert mode in ("no_rtp", "auth", "udp_only")
        self.mode = mode
        self.requests: list[tuple[float, str, bool]] = []  # (time, method, had Authorization)
        self.agents: list[tuple[str, str]] = []  # (method, User-Agent): which client asked

    def serve(self, conn: socket.socket) -> None:
        buf = b""
        while not self._stop.is_set():
            request = read_request_head(conn, buf)
            if request is None:
                return
            lines, buf = request
            method, url = (lines[0].split(" ") + ["", ""])[:2]
            headers = {k.strip().lower(): v.strip() for k, _, v in (ln.partition(":") for ln in lines[1:])}
            length = int(headers.get("content-length", "0") or 0)
            while len(buf) < length:
                buf += conn.recv(4096)
            buf = buf[length:]
            self.requests.append((time.monotonic(), method, "authorization" in headers))
            self.agents.append((method, headers.get("user-agent", "")))
            conn.sendall(self._answer(method, url, headers).encode())

    def _answer(self, method: str, url: str, headers: dict[str, str]) -> str:
        cseq = headers.get("cseq", "0")
        head = f"CSeq: {cseq}\r\nServer: fake\r\n"
        if method == "OPTIONS":
            return f"RTSP/1.0 200 OK\r\n{head}Public: OPTIONS, DESCRIBE, SETUP, PLAY, TEARDOWN\r\n\r\n"
        if method == "DESCRIBE":
            if self.mode == "auth":
                return (f"RTSP/1.0 401 Unauthorized\r\n{head}"
                        'WWW-Authenticate: Basic realm="fake"\r\n\r\n')
            base = url.rstrip("/") + "/"
            return (f"RTSP/1.0 200 OK\r\n{head}Content-Base: {base}\r\nContent-Type: application/sdp\r\n"
                    f"Content-Length: {len(SDP)}\r\n\r\n{SDP}")
        if method == "SETUP":
            transport = headers.get("transport", "RTP/AVP/TCP;unicast;interleaved=0-1")
            if self.mode == "udp_only" and "TCP" in transport.upper():
                return f"RTSP/1.0 461 Unsupported Transport\r\n{head}\r\n"
            return f"RTSP/1.0 200 OK\r\n{head}Transport: {transport}\r\nSession: 12345678;timeout=60\r\n\r\n"
        if method in ("PLAY", "TEARDOWN", "GET_PARAMETER", "SET_PARAMETER"):
            return f"RTSP/1.0 200 OK\r\n{head}Session: 12345678\r\n\r\n"
        return f"RTSP/1.0 405 Method Not Allowed\r\n{head}\r\n"

    def count(self, method: str) -> int:
        return sum(1 for _, m, _ in self.requests if m == method)


class DripServer(_Server):
    """A camera that answers RTSP one byte at a time, for ever: every per-recv timeout is reset by
    each byte, so only a total deadline ends a client's wait. `dripping` counts live drips (a drip
    ends when its client closes the connection)."""

    def __init__(self, mode: str = "status", interval: float = 0.3, prompt: tuple[str, ...] = ()) -> None:
        super().__init__()
        assert mode in ("status", "header", "body")
        self.mode, self.interval, self.prompt = mode, interval, prompt
        self.methods: list[str] = []
        self.dripping = 0
        self.sent = 0

    def _drip(self) -> bytes:
        if self.mode == "status":
            return b"RTSP/1.0 200 OK\r\n"
        if self.mode == "header":
            return b"X-Drip: " + b"a" * 4096
        return b"v=0\r\n"

    def serve(self, conn: socket.socket) -> None:
        buf = b""
        while not self._stop.is_set():
            request = read_request_head(conn, buf)
            if request is None:
                return
            lines, buf = request
            method = lines[0].split(" ")[0]
            cseq = next((ln.split(":", 1)[1].strip() for ln in lines[1:] if ln.lower().startswith("cseq:")), "0")
            self.methods.append(method)
            if method in self.prompt:
                conn.sendall(f"RTSP/1.0 200 OK\r\nCSeq: {cseq}\r\nPublic: OPTIONS, DESCRIBE, SETUP, PLAY\r\n\r\n"
                             .encode())
                continue
            break
        else:
            return
        if self.mode == "header":
            conn.sendall(f"RTSP/1.0 200 OK\r\nCSeq: {cseq}\r\n".encode())
        elif self.mode == "body":
            conn.sendall(f"RTSP/1.0 200 OK\r\nCSeq: {cseq}\r\nContent-Type: application/sdp\r\n"
                         f"Content-Length: 60000\r\n\r\n".encode())
        with self._lock:
            self.dripping += 1
        try:
            while not self._stop.is_set():
                if not self.interval:  # flood: as fast as the client reads
                    conn.sendall(self._drip())
                    self.sent += len(self._drip())
                    continue
                for byte in self._drip():
                    if self._stop.is_set():
                        return
                    conn.sendall(bytes([byte]))
                    self.sent += 1
                    time.sleep(self.interval)
        finally:
            with self._lock:
                self.dripping -= 1


_REQUEST_LINE = re.compile(rb"(?m)^([A-Z_]+) rtsps?://\S* RTSP/1\.0\r$")


class Relay(_Server):
    """TCP relay to `upstream_port`; `cut()`, `stall()`/`resume()` and `garble(rate)` inject faults.

    Garbling parses the server->client byte stream (RTSP replies, then `$`-framed interleaved
    packets) and flips random bytes of RTP payloads only, so the RTSP session itself survives and the
    decoder is the one that sees damaged H.264.
    """

    def __init__(self, upstream_port: int, upstream_host: str = "127.0.0.1") -> None:
        super().__init__()
        self.upstream = (upstream_host, upstream_port)
        self._running = threading.Event()
        self._running.set()
        self.garble_rate = 0.0
        self.packets = 0
        self.methods: list[str] = []  # the client's requests, by method, in order
        self._rng = random.Random(1234)

    def stall(self) -> None:
        self._running.clear()

    def resume(self) -> None:
        self._running.set()

    def garble(self, rate: float) -> None:
        self.garble_rate = rate

    def count(self, method: str) -> int:
        return self.methods.count(method)

    def cut(self) -> None:
        """Close every relayed connection now, wherever the byte stream is (mid-frame, mid-packet)."""
        self.close_connections()

    def serve(self, conn: socket.socket) -> None:
        up = socket.create_connection(self.upstream, timeout=5)
        up.settimeout(None)
        with self._lock:
            self._conns.append(up)
        threading.Thread(target=self._pump_up, args=(conn, up), daemon=True).start()
        try:
            self._pump_down(up, conn)
        finally:
            up.close()

    def _pump_up(self, client: socket.socket, up: socket.socket) -> None:
        try:
            while data := client.recv(65536):
                self.methods += [m.decode() for m in _REQUEST_LINE.findall(data)]
                up.sendall(data)
        except OSError:
            pass
        finally:
            for s in (client, up):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def _pump_down(self, up: socket.socket, client: socket.socket) -> None:
        buf = bytearray()
        while not self._stop.is_set():
            data = up.recv(65536)
            if not data:
                return
            buf += data
            out = bytearray()
            while buf:
                if buf[0] == 0x24:  # '$' channel len16 payload
                    if len(buf) < 4:
                        break
                    size = int.from_bytes(buf[2:4], "big")
                    if len(buf) < 4 + size:
                        break
                    packet = bytearray(buf[:4 + size])
                    del buf[:4 + size]
                    self.packets += 1
                    if self.garble_rate and buf is not None and packet[1] % 2 == 0 and size > 16:
                        for i in range(16, 4 + size):
                            if self._rng.random() < self.garble_rate:
                                packet[i] = self._rng.randrange(256)
                    out += packet
                else:
                    end = buf.find(b"\r\n\r\n")
                    if end < 0:
                        break
                    head = bytes(buf[:end + 4])
                    m = re.search(rb"(?i)content-length:\s*(\d+)", head)
                    total = end + 4 + (int(m.group(1)) if m else 0)
                    if len(buf) < total:
                        break
                    out += buf[:total]
                    del buf[:total]
            if out:
                self._running.wait()  # a stall holds the bytes back but keeps the socket open
                if self._stop.is_set():
                    return
                client.sendall(out)


class DemoRtsp:
    """`python -m rtsp2jpg.demo` in a subprocess on a fixed port; `restart()` can change the streams."""

    def __init__(self, streams: dict[str, str], port: int = 0) -> None:
        self.streams = streams
        self.port = port
        self.proc: subprocess.Popen[str] | None = None

    def start(self, timeout: float = 20.0) -> DemoRtsp:
        args = [sys.executable, "-m", "rtsp2jpg.demo", "--port", str(self.port)]
        for name, spec in self.streams.items():
            args += ["--stream", f"{name}={spec}"]
        deadline = time.monotonic() + timeout
        while True:  # the port of a just-stopped server may still be in TIME_WAIT for a moment
            self.proc = subprocess.Popen(args, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                         text=True)
            assert self.proc.stdout is not None
            line = self.proc.stdout.readline()
            m = re.match(r"READY rtsp://[^:]+:(\d+)", line)
            if m:
                self.port = int(m.group(1))
                return self
            self.proc.wait()
            if time.monotonic() > deadline:
                raise RuntimeError(f"demo RTSP server did not start: {line!r}")
            time.sleep(0.2)

    def url(self, name: str = "cam", userinfo: str = "") -> str:
        return f"rtsp://{userinfo + '@' if userinfo else ''}127.0.0.1:{self.port}/{name}"

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def restart(self, streams: dict[str, str] | None = None) -> DemoRtsp:
        self.stop()
        if streams is not None:
            self.streams = streams
        return self.start()

    def __enter__(self) -> DemoRtsp:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class Slowloris:
    """`count` HTTP clients that each send a request header one byte every `interval` s, never
    finishing it: the classic slowloris. `dropped` counts connections the server has closed."""

    PREFIX = b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n"
    DRIP = b"X-Slow: " + b"a" * 64 + b"\r\n"

    def __init__(self, port: int, count: int, interval: float = 1.0, host: str = "127.0.0.1") -> None:
        self.address = (host, port)
        self.count, self.interval = count, interval
        self.socks: list[socket.socket] = []
        self.failed = 0  # could not even connect (refused or timed out)
        self.dropped = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="slowloris")

    def start(self) -> Slowloris:
        for _ in range(self.count):
            try:
                sock = socket.create_connection(self.address, timeout=2)
                sock.sendall(self.PREFIX)
            except OSError:
                self.failed += 1
                continue
            sock.setblocking(False)
            self.socks.append(sock)
        self._thread.start()
        return self

    @property
    def open(self) -> int:
        return len(self.socks)

    def _run(self) -> None:
        step = 0
        while not self._stop.wait(self.interval):
            byte = self.DRIP[step % len(self.DRIP):][:1]
            step += 1
            for sock in list(self.socks):
                try:
                    if sock.recv(4096) == b"":  # the server closed it (a 4xx first, or nothing)
                        raise ConnectionResetError
                except BlockingIOError:
                    pass
                except OSError:
                    self._drop(sock)
                    continue
                try:
                    sock.send(byte)
                except BlockingIOError:
                    pass
                except OSError:
                    self._drop(sock)

    def _drop(self, sock: socket.socket) -> None:
        self.socks.remove(sock)
        self.dropped += 1
        sock.close()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)
        for sock in self.socks:
            sock.close()
        self.socks = []

    def __enter__(self) -> Slowloris:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
