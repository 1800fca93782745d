"""DirectCapture's grab/retrieve contract with a stand-in pipeline (the pure part: which sample is
held when). The real pipelines are exercised by the integration tests; what is checked here cannot
be seen from outside: how many decoder buffers the capture keeps while it waits."""

from __future__ import annotations

import weakref

from rtsp2jpg.capture.direct_gst import DirectCapture
from rtsp2jpg.capture.sources import SourceSpec


class Sample:
    def __init__(self, n: int) -> None:
        self.n = n


class Pipe:
    """Hands out numbered samples; remembers whether the previous one was still alive at each pull."""

    fps = 25.0

    def __init__(self) -> None:
        self.count = 0
        self.previous: weakref.ref[Sample] | None = None
        self.held_during_pull: list[bool] = []

    def pull(self, timeout: float) -> Sample:
        self.held_during_pull.append(self.previous is not None and self.previous() is not None)
        self.count += 1
        sample = Sample(self.count)
        self.previous = weakref.ref(sample)
        return sample

    def picture(self, sample: Sample) -> None:
        return None

    def close(self) -> None:
        pass


def test_a_grab_lets_go_of_the_unretrieved_sample_before_waiting_for_the_next() -> None:
    """Each sample pins a buffer of the decoder's pool, which grows to the most ever outstanding:
    holding the old one across the wait cost one more 1.4 MB buffer per 720p camera, for good."""
    pipe = Pipe()
    first = Sample(0)
    pipe.previous = weakref.ref(first)
    cap = DirectCapture(SourceSpec("gstreamer/test", "gstreamer", "test"), pipe, first, lambda data, fmt: data)  # type: ignore[arg-type]
    del first
    assert cap.grab()  # the primed first sample: no pull
    for _ in range(5):  # grabs without a retrieve: the camera skipping frames nobody asked for
        assert cap.grab()
    assert pipe.count == 5 and pipe.held_during_pull == [False] * 5
