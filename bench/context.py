"""What a benchmark is handed: the run's processes, the RTSP server and the sizes to use."""

from __future__ import annotations

from dataclasses import dataclass, field

from bench.harness import Procs, RtspServer

FULL_STREAMS = {"720p25": "1280x720@25:h264", "1080p25": "1920x1080@25:h264", "360p15": "640x360@15:h264"}
# Smoke: the smallest frame the demo's time code fits in, everywhere, so CI spends seconds.
SMOKE_STREAMS = {"180p10": "320x180@10:h264"}


@dataclass
class Context:
    procs: Procs
    rtsp: RtspServer
    decoder: str = "auto"
    smoke: bool = False
    repeat: int = 1
    notes: list[str] = field(default_factory=list)

    def stream(self, name: str) -> str:
        """The mount to use for `name` (in a smoke run every name maps to the one tiny stream)."""
        return "180p10" if self.smoke else name

    def seconds(self, full: float, smoke: float = 1.0) -> float:
        return smoke if self.smoke else full

    @staticmethod
    def fps(spec: str) -> int:
        return int(spec.split("@")[1].split(":")[0])
