"""The demo camera end to end: a real GStreamer RTSP server read by real FFmpeg and OpenCV clients.

Everything else's integration tests and the benchmarks stand on this server, and snapshot age is
measured with the time code it draws, so both must hold: the streams decode at the advertised
size and codec, and the code reads back as a fresh, increasing capture time.
"""

from __future__ import annotations

import json
import subprocess
import time

import cv2
import numpy as np
import pytest

from rtsp2jpg.demo.server import StreamSpec
from rtsp2jpg.demo.timecode import BLOCK, CODE_X, CODE_Y, FrameMaker, decode_stamp, read_code
from tests.support.rtsp_server import RtspServer, gst_rtsp_missing

_missing = gst_rtsp_missing()
if _missing:
    pytest.skip(_missing, allow_module_level=True)

WIDTH, HEIGHT = 640, 360
STREAMS = {"cam": f"{WIDTH}x{HEIGHT}@25:h264", "hevc": f"{WIDTH}x{HEIGHT}@25:h265"}


@pytest.fixture
def server(rtsp: RtspServer) -> RtspServer:
    """The session server (same STREAMS), checked to be sending before each test (see conftest.py)."""
    assert rtsp.streams == STREAMS
    return rtsp


@pytest.fixture(autouse=True)
def _rtsp_over_tcp(monkeypatch: pytest.MonkeyPatch) -> None:
    # OpenCV's FFmpeg backend reads this at open(); TCP avoids UDP loss on a loaded machine.
    monkeypatch.setenv("OPENCV_FFMPEG_CAPTURE_OPTIONS", "rtsp_transport;tcp")


def read_frames(url: str, count: int, timeout: float = 30.0) -> list[tuple[float, np.ndarray]]:
    """Open ``url`` with OpenCV's FFmpeg backend and read ``count`` frames as (time read, BGR frame).

    A failed read reopens (on a loaded CI machine the first read can time out); the deadline bounds it.
    """
    params = [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, 10_000, cv2.CAP_PROP_READ_TIMEOUT_MSEC, 5_000]
    frames: list[tuple[float, np.ndarray]] = []
    deadline = time.monotonic() + timeout
    failures = []
    while len(frames) < count and time.monotonic() < deadline:
        cap = cv2.VideoCapture(url, cv2.CAP_FFMPEG, params)
        try:
            if not cap.isOpened():
                failures.append("open")
                continue
            while len(frames) < count and time.monotonic() < deadline:
                ok, frame = cap.read()
                if not ok:
                    failures.append(f"read after {len(frames)} frames")
                    frames.clear()  # frames must be consecutive
                    break
                frames.append((time.time(), frame))
        finally:
            cap.release()
    assert len(frames) == count, f"only {len(frames)} of {count} frames from {url} in {timeout:g} s: {failures}"
    return frames


@pytest.fixture
def captured(server: RtspServer) -> dict[str, list[tuple[float, np.ndarray]]]:
    """30 frames of each stream, read once for the tests below (each open costs ~1 s of probing)."""
    return {name: read_frames(server.url(name), 30) for name in STREAMS}


def i420_to_bgr(data: np.ndarray, width: int, height: int) -> np.ndarray:
    return cv2.cvtColor(data.reshape(height * 3 // 2, width), cv2.COLOR_YUV2BGR_I420)


def jpeg_roundtrip(image: np.ndarray, quality: int = 50) -> np.ndarray:
    ok, jpeg = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])
    assert ok
    return cv2.imdecode(jpeg, cv2.IMREAD_COLOR)


# --- The time code, without a server -------------------------------------------------------------
@pytest.mark.parametrize("size", [(640, 360), (1280, 720), (1920, 1080)])
def test_code_survives_jpeg_quality_50(size: tuple[int, int]) -> None:
    maker = FrameMaker(*size)
    ms = int(time.time() * 1000)
    frame = i420_to_bgr(maker.draw(ms, 123_456), *size)
    for image in (frame, jpeg_roundtrip(frame), cv2.cvtColor(jpeg_roundtrip(frame), cv2.COLOR_BGR2GRAY)):
        assert read_code(image) == (ms / 1000, 123_456)


def test_frames_move() -> None:
    """Real video, not a still: consecutive frames differ outside the code too."""
    maker = FrameMaker(WIDTH, HEIGHT)
    first = maker.draw(0, 0).copy()
    second = maker.draw(0, 1)
    below_code = slice(WIDTH * (CODE_Y + 8 * BLOCK), WIDTH * HEIGHT)
    assert np.count_nonzero(first[below_code] != second[below_code]) > 0.5 * (below_code.stop - below_code.start)


def _noise() -> np.ndarray:
    return np.random.default_rng(1).integers(0, 256, (HEIGHT, WIDTH, 3), dtype=np.uint8)


def _one_bit_flipped() -> np.ndarray:
    image = i420_to_bgr(FrameMaker(WIDTH, HEIGHT).draw(1_700_000_000_000, 7), WIDTH, HEIGHT)
    y, x = CODE_Y + 3 * BLOCK, CODE_X + 5 * BLOCK  # a data block: the CRC must catch it
    image[y : y + BLOCK, x : x + BLOCK] = 255 - image[y : y + BLOCK, x : x + BLOCK]
    return image


@pytest.mark.parametrize("image", [
    pytest.param(np.zeros((HEIGHT, WIDTH, 3), np.uint8), id="black"),
    pytest.param(np.full((HEIGHT, WIDTH, 3), 255, np.uint8), id="white"),
    pytest.param(np.full((HEIGHT, WIDTH), 128, np.uint8), id="grey"),
    pytest.param(_noise(), id="noise"),
    pytest.param(np.zeros((64, 64, 3), np.uint8), id="too-small"),
    pytest.param(_one_bit_flipped(), id="one-bit-flipped"),
])
def test_no_code_gives_none(image: np.ndarray) -> None:
    assert decode_stamp(image) is None


def test_stream_spec_parse() -> None:
    assert StreamSpec.parse("cam=1280x720@25") == StreamSpec("cam", 1280, 720, 25, "h264")
    assert StreamSpec.parse("b.2=640x360@15:h265").codec == "h265"
    for bad in ("cam", "cam=640x360", "cam=640x360@25:vp8", "cam=641x360@25", "cam=160x120@25", "c=640x360@0"):
        with pytest.raises(ValueError):
            StreamSpec.parse(bad)


# --- The server -----------------------------------------------------------------------------------
@pytest.mark.parametrize(("name", "codec"), [("cam", "h264"), ("hevc", "hevc")])
def test_ffprobe_sees_codec_and_size(server: RtspServer, name: str, codec: str) -> None:
    cmd = ["ffprobe", "-v", "error", "-rtsp_transport", "tcp", "-select_streams", "v:0",
           "-show_entries", "stream=codec_name,width,height", "-of", "json", server.url(name)]
    for _attempt in range(3):  # a loaded CI machine can make one probe miss its window; the answer must not
        res = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
        if res.returncode == 0 and json.loads(res.stdout).get("streams"):
            break
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout)["streams"] == [{"codec_name": codec, "width": WIDTH, "height": HEIGHT}]


@pytest.mark.parametrize("name", list(STREAMS))
def test_opencv_reads_frames_of_the_right_size(captured: dict, name: str) -> None:
    assert {frame.shape for _, frame in captured[name]} == {(HEIGHT, WIDTH, 3)}


@pytest.mark.parametrize("name", list(STREAMS))
def test_decoded_frames_carry_fresh_increasing_stamps(captured: dict, name: str) -> None:
    stamps = [(read_at, read_code(frame)) for read_at, frame in captured[name]]
    assert all(s is not None for _, s in stamps), "every decoded frame carries a valid code"
    times = [s.time for _, s in stamps]
    counters = [s.frame for _, s in stamps]
    assert times == sorted(set(times)), "capture times strictly increase"
    assert counters == sorted(set(counters)), "frame counters strictly increase"
    assert all(s.time <= read_at + 0.05 for read_at, s in stamps), "no frame from the future"
    last_read, last = stamps[-1]
    assert last_read - last.time < 2.0, "once the probe backlog is drained, frames are fresh"


def test_simultaneous_first_clients_all_get_frames() -> None:
    """DESIGN §9: several clients connecting to a fresh mount at the same instant once wedged the
    server. Four at once must all decode."""
    with RtspServer({"cam": STREAMS["cam"]}) as srv:
        clients = [subprocess.Popen(["ffmpeg", "-v", "error", "-rtsp_transport", "tcp", "-i", srv.url("cam"),
                                     "-frames:v", "10", "-f", "null", "-"],
                                    stdin=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
                   for _ in range(4)]
        try:
            results = [(c.wait(30), c.stderr.read()) for c in clients]
        finally:
            for c in clients:
                c.kill()
        assert [rc for rc, _ in results] == [0] * 4, results
        assert srv.running


def test_same_url_works_after_kill_and_restart() -> None:
    with RtspServer({"cam": STREAMS["cam"]}) as srv:
        url = srv.url("cam")
        assert srv.port != 0
        read_frames(url, 3)
        srv.kill()
        assert not cv2.VideoCapture(url, cv2.CAP_FFMPEG).isOpened()
        srv.restart()
        assert srv.url("cam") == url
        read_at, frame = read_frames(url, 3)[-1]
        stamp = decode_stamp(frame)
        assert stamp is not None and read_at - stamp < 2.0


def test_sigterm_exits_cleanly() -> None:
    srv = RtspServer({"cam": STREAMS["cam"]}).start()
    read_frames(srv.url("cam"), 1)  # with a media running, not just an idle listener
    srv.stop()
    assert srv.proc is not None and srv.proc.returncode == 0, srv.stderr()


def test_every_fresh_media_sends_frames() -> None:
    """Each connect to an idle shared mount makes a new media. Its first frame used to race the
    media's start (appsrc had the clock but not yet its base time, so the frame's running time was
    the clock's absolute value, hours ahead) and the stream's sink waited for it: a session with no
    frame, seen in about one fresh media in 20 to 60. Twelve fresh media in a row, one open each."""
    params = [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, 8_000, cv2.CAP_PROP_READ_TIMEOUT_MSEC, 5_000]
    with RtspServer({"cam": STREAMS["cam"]}) as srv:
        for attempt in range(12):
            cap = cv2.VideoCapture(srv.url("cam"), cv2.CAP_FFMPEG, params)
            try:
                assert cap.isOpened() and cap.grab(), f"fresh media {attempt} sent no frame"
            finally:
                cap.release()


# --- The readable caption beside the code --------------------------------------------------------
def read_caption(image: np.ndarray, width: int = WIDTH, height: int = HEIGHT) -> tuple[str, str]:
    """The caption's two lines, read back dot by dot with the demo's own font (a template match)."""
    from rtsp2jpg.demo.caption import _COLS, _FONT, _ROWS, Caption

    cap = Caption(CODE_X + 17 * BLOCK + BLOCK // 2, CODE_Y, width, height)
    grey = image.mean(axis=2) if image.ndim == 3 else image
    patterns = {p.ljust(_COLS * _ROWS, "."): c for c, p in _FONT.items()}
    lines = []
    for row in range(2):
        text = ""
        top = cap.y + cap.scale + row * cap.line
        for i in range(Caption.CHARS):
            left = cap.x + cap.scale + i * cap.step
            half = cap.scale // 2
            dots = "".join("#" if grey[top + r * cap.scale + half, left + c * cap.scale + half] > 128 else "."
                           for r in range(_ROWS) for c in range(_COLS))
            text += patterns.get(dots, "?")
        lines.append(text.rstrip())
    return lines[0], lines[1]


def test_caption_says_what_the_code_says_in_figures() -> None:
    ms = 1_700_000_000_123
    image = i420_to_bgr(FrameMaker(WIDTH, HEIGHT).draw(ms, 4711), WIDTH, HEIGHT)
    clock = time.strftime("%H:%M:%S", time.localtime(ms // 1000)) + ".123"
    assert read_caption(image) == (clock, "frame 4711")
    assert read_caption(jpeg_roundtrip(image)) == (clock, "frame 4711")
    assert read_code(jpeg_roundtrip(image)) == (ms / 1000, 4711)


def test_caption_keeps_the_frame_cheap() -> None:
    maker = FrameMaker(1280, 720)
    start = time.perf_counter()
    for i in range(100):
        maker.draw(1_700_000_000_000 + 40 * i, i)
    per = (time.perf_counter() - start) / 100
    print(f"MEASURE demo frame 1280x720 with caption: {per * 1000:.2f} ms")
    assert per < 0.02


@pytest.mark.parametrize("name", list(STREAMS))
def test_streamed_frames_carry_a_readable_caption(captured: dict, name: str) -> None:
    _, frame = captured[name][-1]
    stamp = read_code(frame)
    assert stamp is not None
    clock, number = read_caption(frame)
    ms = round(stamp.time * 1000)
    assert clock == time.strftime("%H:%M:%S", time.localtime(ms // 1000)) + f".{ms % 1000:03d}"
    assert number == f"frame {stamp.frame}"
