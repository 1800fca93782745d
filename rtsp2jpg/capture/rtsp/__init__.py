"""The one RTSP client: client.py (one request path, Digest/Basic, DESCRIBE with its authenticated retry)
over wire.py (one bounded, stoppable exchange); probe.py asks a stream's codec, diagnose.py why an open failed."""

from rtsp2jpg.capture.rtsp.diagnose import Diagnosis, diagnose
from rtsp2jpg.capture.rtsp.probe import ProbeResult, probe

__all__ = ["Diagnosis", "ProbeResult", "diagnose", "probe"]
