"""A real RTSP server with synthetic cameras whose frames say when they were drawn.

Tests and benchmarks need a camera they can start, kill and restart on a free port, and a way to
measure snapshot age end to end: every frame carries its wall-clock capture time as a grid of large
black/white blocks in its top-left corner (see ``read_code``) that survives H.264/H.265 and JPEG at
quality 50.

Run: ``python3 -m rtsp2jpg.demo [--host H] [--port P] [--stream SPEC ...] [--user NAME:PW]
[--tls-cert PEM --tls-key PEM]`` (SPEC: spec.py; login and TLS: access.py). It prints one line
``READY rtsp://H:P`` (``rtsps://`` with TLS) once listening, then serves ``rtsp://H:P/NAME`` until
SIGTERM/SIGINT. GStreamer (PyGObject, GstRtspServer) is imported only when serving, so importing this
module needs numpy alone. The time code itself: timecode.py.

Frames are pushed only while the appsrc is PLAYING (see ``_Pusher``): a frame stamped while the
media was going to PLAYING once carried the absolute clock time as its running time (hours ahead),
and the RTSP stream's syncing sink waited for it, so that client, and on a shared mount every
later one, got a session but no frame.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
import time
from typing import Any

from rtsp2jpg.demo import access as access_mod
from rtsp2jpg.demo.access import Access
from rtsp2jpg.demo.spec import GRAMMAR, StreamSpec
from rtsp2jpg.demo.timecode import FrameMaker

__all__ = ["DemoServer", "StreamSpec", "main"]


def _gst() -> Any:
    """Import GStreamer lazily (the package must import without PyGObject)."""
    import gi

    gi.require_version("Gst", "1.0")
    gi.require_version("GstApp", "1.0")
    gi.require_version("GstRtspServer", "1.0")
    gi.require_version("GstVideo", "1.0")
    from gi.repository import GLib, Gst, GstApp, GstRtspServer, GstVideo

    Gst.init(None)
    return GLib, Gst, GstApp, GstRtspServer, GstVideo


class _Pusher(threading.Thread):
    """Feeds one media's appsrc at the stream's frame rate, stamping each frame as it is drawn.

    Paced on the monotonic clock; if it falls behind by more than a frame it skips ahead rather
    than bursting, so stamps stay honest about when a frame existed.

    It draws and pushes only while the appsrc is PLAYING, and stamps every buffer itself (the
    launch line has no do-timestamp). The wedge this avoids: the pusher starts in
    ``media-configure``, and its first frame raced the media's first PAUSED->PLAYING. GstPipeline
    hands its clock to every element before the bin sets each one's base time, sources last, so for
    a moment the appsrc had a clock and base time 0. A frame stamped then, by ``clock - base_time``
    here or by appsrc's do-timestamp (which does the same at push), got the clock's absolute time
    (the host's uptime, 3:21:01 in the measured case) as running time; the RTSP stream's sink, which
    syncs, waited for that, and the queue and encoder behind it stalled. Such a session never got a
    frame, and on a shared mount neither did any client that joined it. Once the appsrc is PLAYING
    its base time is set; a later pause and resume only re-bases it, which leaves frames stamped
    before the pause behind the resumed running time (late, sent at once), never ahead.
    """

    POLL_S = 0.005  # how often to look whether the appsrc is PLAYING (yet or again)

    def __init__(self, spec: StreamSpec, appsrc: Any, gst: Any) -> None:
        super().__init__(name=f"demo-push:{spec.name}", daemon=True)
        self.spec, self.appsrc, self.gst = spec, appsrc, gst
        self.stop_event = threading.Event()
        # One maker per size; with ``resize=`` the stream switches between them in the same session.
        self.makers = [FrameMaker(w, h, spec.mode) for w, h in spec.sizes()]
        self.caps = [gst.Caps.from_string(spec.caps(w, h)) for w, h in spec.sizes()]

    def _running_time(self, due: float) -> int | None:
        """Running time of the scheduled instant ``due`` (monotonic s), or None unless PLAYING.

        Scheduled rather than actual push times keep the frame interval regular like a real
        camera's (push jitter made FFmpeg warn about non-monotonic DTS). The state is read before
        the clock and base time: an element is PLAYING only after its bin has set its base time
        (see the class docstring for what a clock without one did).
        """
        if self.appsrc.get_state(0)[1] != self.gst.State.PLAYING:
            return None
        clock = self.appsrc.get_clock()
        if clock is None:
            return None
        late_ns = time.monotonic_ns() - int(due * 1e9)
        return max(0, clock.get_time() - self.appsrc.get_base_time() - late_ns)

    def _maker(self, started: float) -> FrameMaker:
        """The frame maker of the current size; switches the appsrc's caps when the size changes
        (x264enc/x265enc then start a new sequence with new parameter sets, as a camera does)."""
        turn = int((time.monotonic() - started) / self.spec.resize_sec) % len(self.makers)
        if turn != self._turn:
            self._turn = turn
            self.appsrc.set_caps(self.caps[turn])
        return self.makers[turn]

    def run(self) -> None:
        period = 1.0 / self.spec.fps
        due = started = time.monotonic()
        frame = 0
        self._turn = 0
        while not self.stop_event.is_set():
            delay = due - time.monotonic()
            if delay > 0 and self.stop_event.wait(delay):
                break
            pts = self._running_time(due)
            if pts is None:  # not PLAYING: nothing to stamp against; draw nothing, wait for it
                if self.stop_event.wait(self.POLL_S):
                    break
                due = time.monotonic()
                continue
            data = self._maker(started).draw(int(time.time() * 1000), frame)
            # From bytes, not the array: PyGObject would convert an array element by element
            # (45 ms per 720p frame) but copies bytes with one memcpy.
            buf = self.gst.Buffer.new_wrapped(data.tobytes())
            buf.pts = pts
            ret = self.appsrc.push_buffer(buf)
            if ret not in (self.gst.FlowReturn.OK, self.gst.FlowReturn.FLUSHING):
                break  # EOS or error: the media is going away
            frame += 1
            due += period
            if time.monotonic() - due > period:
                due = time.monotonic()


class DemoServer:
    """GstRtspServer with one shared media factory per stream; call ``attach()`` then run a GLib loop.

    Shared factory: all clients of a mount get one encoder, so the server's CPU does not grow with
    the number of clients (benchmarks count it; a 720p25 encoder costs ~0.1 core). Media are
    created on demand (first DESCRIBE) and torn down when the last client leaves; each has its own
    pusher.

    Sessions that got no frame at all (DESIGN §9 saw them with simultaneous first clients; they
    kept showing up now and then, shared or not) were not a sharing problem: a fresh media's
    first frame, pushed while the media went to PLAYING, was stamped hours ahead and the stream's
    sink waited for it (see ``_Pusher``). Shared, the stuck pipeline stalled every client of that
    media until the stuck one left. Pushing only while PLAYING ended it: in a loop opening both
    mounts with FFmpeg and ``cam`` with GStreamer (3 fresh media a round), the old stamping failed
    in round 0 or 1 of each of 2 runs, the new one 0 times in 2 x 80 rounds; 4 simultaneous
    first FFmpeg clients all decoded (6 of 6 trials). So sharing stays.
    """

    def __init__(self, host: str, port: int, specs: list[StreamSpec], access: Access | None = None) -> None:
        self.GLib, self.Gst, _, rtsp, self.GstVideo = _gst()
        self.host = host
        self.specs = specs
        self._pushers: set[_Pusher] = set()
        self._lock = threading.Lock()
        self.server = rtsp.RTSPServer()
        self.server.set_address(host)
        self.server.set_service(str(port))
        self.server.connect("client-connected", self._on_client_connected)
        mounts = self.server.get_mount_points()
        factories = []
        for spec in specs:
            factory = rtsp.RTSPMediaFactory()
            factory.set_launch(spec.launch())
            factory.set_shared(True)
            factory.connect("media-configure", self._on_media_configure, spec)
            mounts.add_factory(f"/{spec.name}", factory)
            factories.append(factory)
        self.access = access or Access()
        access_mod.apply(self.access, self.server, factories)
        self.port = 0

    def attach(self) -> int:
        """Bind and listen; returns the bound port (useful with port 0)."""
        if self.server.attach(None) == 0:
            raise OSError(f"cannot listen on {self.host}:{self.server.get_service()}")
        self.port = self.server.get_bound_port()
        return self.port

    def _on_media_configure(self, _factory: Any, media: Any, spec: StreamSpec) -> None:
        appsrc = media.get_element().get_by_name("src")
        pusher = _Pusher(spec, appsrc, self.Gst)
        with self._lock:
            self._pushers.add(pusher)
        media.connect("unprepared", self._on_unprepared, pusher)
        audio = media.get_element().get_by_name("asrc")
        if audio is not None:
            audio.get_static_pad("src").add_probe(self.Gst.PadProbeType.QUERY_UPSTREAM, self._not_seekable)
        pusher.start()

    def _not_seekable(self, _pad: Any, info: Any) -> Any:
        """Fail the audio source's SEEKING query. audiotestsrc says it can seek even when live, so
        the media (GStreamer 1.22 asks its pipeline, not whether it is live) took the client's PLAY
        Range as a seek, which the appsrc refused: every PLAY got 503. Without this answer the
        video branch's (appsrc: not seekable) decides. Dropped rather than answered: PyGObject
        holds a reference, so the query is not writable here."""
        query = info.get_query()
        if query is not None and query.type == self.Gst.QueryType.SEEKING:
            return self.Gst.PadProbeReturn.DROP
        return self.Gst.PadProbeReturn.OK

    def _on_client_connected(self, _server: Any, client: Any) -> None:
        client.connect("play-request", self._on_play_request)

    def _on_play_request(self, _client: Any, ctx: Any) -> None:
        """Ask the encoder for a keyframe, so a client joining a shared media decodes at once
        instead of waiting up to a GOP (2 s) for the next one, as many IP cameras do."""
        pay = ctx.media.get_element().get_by_name("pay0") if ctx.media else None
        if pay is not None:
            pay.send_event(self.GstVideo.video_event_new_upstream_force_key_unit(
                self.Gst.CLOCK_TIME_NONE, True, 0))

    def _on_unprepared(self, _media: Any, pusher: _Pusher) -> None:
        pusher.stop_event.set()
        with self._lock:
            self._pushers.discard(pusher)

    def close(self, timeout: float = 2.0) -> None:
        """Stop feeding frames; safe to call twice."""
        with self._lock:
            pushers, self._pushers = list(self._pushers), set()
        for p in pushers:
            p.stop_event.set()
        deadline = time.monotonic() + timeout
        for p in pushers:
            p.join(max(0.0, deadline - time.monotonic()))


def server_errors() -> type[Exception]:
    """GLib.Error: what a bad certificate or key raises."""
    return _gst()[0].Error


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def main(argv: list[str] | None = None) -> int:
    """CLI entry point: serve until SIGTERM/SIGINT, then exit 0."""
    parser = argparse.ArgumentParser(prog="python3 -m rtsp2jpg.demo", description=__doc__.split("\n")[0])
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8554, help="RTSP port; 0 picks a free one (default 8554)")
    parser.add_argument("--stream", action="append", metavar="SPEC",
                        help=f"a mount to serve, {GRAMMAR}; repeatable (default demo=640x360@25:h264)")
    parser.add_argument("--user", default="", metavar="NAME:PASSWORD",
                        help="require this login for every mount (a test server: visible in ps)")
    parser.add_argument("--auth", choices=access_mod.METHODS, default="digest",
                        help="authentication the server offers with --user (default digest)")
    parser.add_argument("--tls-cert", default="", metavar="PEM", help="serve rtsps:// with this certificate")
    parser.add_argument("--tls-key", default="", metavar="PEM", help="the certificate's private key")
    args = parser.parse_args(argv)
    user, sep, password = args.user.partition(":")
    if args.user and (not user or not sep):
        parser.error("--user needs NAME:PASSWORD")
    if bool(args.tls_cert) != bool(args.tls_key):
        parser.error("--tls-cert and --tls-key go together")
    access = Access(user, password, args.auth, args.tls_cert, args.tls_key)
    try:
        specs = [StreamSpec.parse(s) for s in args.stream or ["demo=640x360@25:h264"]]
    except ValueError as e:
        parser.error(str(e))
    if len({s.name for s in specs}) != len(specs):
        parser.error("stream names must be unique")

    try:
        server = DemoServer(args.host, args.port, specs, access)
        port = server.attach()
    except (OSError, server_errors()) as e:
        print(f"rtsp2jpg.demo: {e}", file=sys.stderr)
        return 1
    loop = server.GLib.MainLoop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        server.GLib.unix_signal_add(server.GLib.PRIORITY_DEFAULT, sig, loop.quit)
    print(f"READY {access.scheme}://{_url_host(args.host)}:{port}", flush=True)
    loop.run()
    server.close()
    return 0

