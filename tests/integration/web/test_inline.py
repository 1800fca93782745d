"""Answers given on Waitress's I/O thread (web/channel.py), over real sockets, against serve.make_server
with a stand-in app (one worker thread): which requests may be answered there is the app's
answer_now, so the stand-in says yes to /fast and /big; what the channel must keep whoever answers
is HTTP's (order, bytes, close), and the I/O thread must never be the one that waits."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rtsp2jpg.config import HttpConfig
from rtsp2jpg.serve import make_server

BIG = bytes(range(256)) * 1024  # 256 KB: a few of these fill a socket's buffers


class App:
    """/hold waits for `release` (holding the only worker); /big answers BIG; anything else its path."""

    def __init__(self) -> None:
        self.holding = threading.Event()
        self.release = threading.Event()

    def __call__(self, environ: dict[str, Any], start_response: Any) -> list[bytes]:
        path = environ["PATH_INFO"]
        if path == "/hold":
            self.holding.set()
            self.release.wait(30)
        body = BIG if path.startswith("/big") else path.encode()
        start_response("200 OK", [("Content-Type", "application/octet-stream"), ("Content-Length", str(len(body)))])
        return [body]


def _at_hand(environ: dict[str, Any]) -> bool:
    return environ["PATH_INFO"].startswith(("/fast", "/big"))


@pytest.fixture(scope="module")
def server() -> Iterator[tuple[App, int]]:
    app = App()
    srv = make_server(app, HttpConfig(host="127.0.0.1", port=0, threads=1), answer_now=_at_hand)
    loop = threading.Thread(target=srv.run, daemon=True)
    loop.start()
    yield app, srv.effective_port
    app.release.set()
    srv.close()
    loop.join(5)


def _connect(port: int) -> socket.socket:
    return socket.create_connection(("127.0.0.1", port), timeout=10)


def _get(path: str, close: bool = False) -> bytes:
    return f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{'Connection: close' if close else ''}\r\n\r\n".encode()


def _response(reader: Any) -> tuple[int, bytes]:
    """(status, body) of the next response on `reader` (the socket's one buffered file)."""
    status = int(reader.readline().split()[1])
    length = 0
    while (line := reader.readline()) not in (b"\r\n", b""):
        name, _, value = line.decode().partition(":")
        if name.lower() == "content-length":
            length = int(value)
    return status, reader.read(length)


def test_an_answer_at_hand_is_given_while_the_only_worker_is_busy(server: tuple[App, int]) -> None:
    app, port = server
    app.release.clear()
    app.holding.clear()
    holder, fast, queued = _connect(port), _connect(port), _connect(port)
    try:
        holder.sendall(_get("/hold"))
        assert app.holding.wait(10)
        queued.sendall(_get("/slow"))  # needs the worker, which /hold keeps
        fast.sendall(_get("/fast"))
        assert _response(fast.makefile("rb")) == (200, b"/fast")
        queued.settimeout(0.5)
        with pytest.raises(TimeoutError):  # the premise: the worker really is taken
            queued.recv(1)
        app.release.set()
        queued.settimeout(10)
        assert _response(queued.makefile("rb")) == (200, b"/slow")
        assert _response(holder.makefile("rb")) == (200, b"/hold")
    finally:
        app.release.set()
        for sock in (holder, fast, queued):
            sock.close()


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.sampled_from(["/fast", "/slow", "/big"]), min_size=1, max_size=14))
def test_pipelined_answers_come_back_in_order_whoever_gives_them(server: tuple[App, int], kinds: list[str]) -> None:
    _, port = server
    paths = [f"{kind}/{i}" for i, kind in enumerate(kinds)]
    with _connect(port) as sock:
        sock.sendall(b"".join(_get(p) for p in paths))
        reader = sock.makefile("rb")
        got = [_response(reader) for _ in paths]
    assert got == [(200, BIG if p.startswith("/big") else p.encode()) for p in paths]


def test_a_client_that_does_not_read_cannot_stall_the_io_thread(server: tuple[App, int]) -> None:
    """100 pipelined 256 KB answers are more than Waitress buffers before a write must wait for
    the I/O thread to send; answered all on that thread, the wait would be on itself, for ever."""
    _, port = server
    with _connect(port) as lazy, _connect(port) as other:
        lazy.sendall(b"".join(_get(f"/big/{i}") for i in range(100)))
        other.sendall(_get("/fast/other"))
        assert _response(other.makefile("rb")) == (200, b"/fast/other")
        reader = lazy.makefile("rb")
        assert all(_response(reader) == (200, BIG) for _ in range(100))  # nothing lost meanwhile


def test_connection_close_is_kept_when_answered_on_the_io_thread(server: tuple[App, int]) -> None:
    _, port = server
    with _connect(port) as sock:
        sock.sendall(_get("/fast/last", close=True))
        reader = sock.makefile("rb")
        assert _response(reader) == (200, b"/fast/last")
        assert reader.read() == b""  # closed by the server after the answer
