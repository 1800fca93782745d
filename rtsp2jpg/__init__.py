"""rtsp2jpg: RTSP cameras in, always-fresh JPEG snapshots out."""

__version__ = "0.2.0"
