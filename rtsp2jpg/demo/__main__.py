"""`python -m rtsp2jpg.demo`: the demo RTSP server."""

import sys

from rtsp2jpg.demo.server import main

sys.exit(main())
