"""Capture: a Camera thread per stream, its FrameSlot, the sources it tries (sources.py, chains.py, board.py),
OpenCV (opencv.py, the only cv2 import) and the one RTSP client (rtsp/)."""
