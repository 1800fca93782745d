"""The RTSP client: `probe()` (DESCRIBE: the stream's codec, auth failures) and `diagnose()` (why an open
failed), both over wire.py's one bounded, stoppable exchange. client.py and check.py still carry their own
request and Digest/Basic code (issue 12: to be merged into one)."""

from rtsp2jpg.capture.rtsp.check import Diagnosis, diagnose
from rtsp2jpg.capture.rtsp.client import ProbeResult, probe

__all__ = ["Diagnosis", "ProbeResult", "diagnose", "probe"]
