"""The exit codes of every `rtsp2jpg` command, in one place (fleet's live in mqtt/fleet.py's callers too).

0 ok, 1 runtime failure (no frame, request refused; `fleet`: a camera in error or a device offline or stale),
2 bad configuration or usage, 3 OpenCV (cv2) missing, 4 a running service (`cameras`) or the MQTT
broker (`fleet`) could not be reached, 5 (`fleet`) all else well but malformed messages were skipped.
"""

OK, FAILED, USAGE, NO_CV2, UNREACHABLE, MALFORMED = 0, 1, 2, 3, 4, 5

CV2_MISSING = ("rtsp2jpg needs OpenCV's Python module (cv2). On Debian/Raspberry Pi OS: "
               "apt install python3-opencv (and create the venv with --system-site-packages); "
               "on Jetson keep JetPack's OpenCV; elsewhere: pip install 'rtsp2jpg[opencv]'.")
