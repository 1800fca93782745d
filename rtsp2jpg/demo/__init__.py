"""The demo RTSP server (`python -m rtsp2jpg.demo`): server.py (GstRtspServer), timecode.py (the frame time code)."""
