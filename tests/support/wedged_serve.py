"""Test-only entry: `python tests/support/wedged_serve.py WEDGE_FILE serve --config ...` runs the real service with a
supervisor that blocks in its tick while WEDGE_FILE exists (a real wedge, on demand, so a test can prove
the systemd watchdog stops). Production code reads no test switch: the hook is injected here."""

from __future__ import annotations

import sys
import threading
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # this checkout's rtsp2jpg, not an installed one

from rtsp2jpg.cli.main import main  # noqa: E402


def wedge_while(path: Path):
    def hook(stopping: threading.Event) -> None:
        while path.exists() and not stopping.wait(0.1):
            pass

    return hook


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[2:], supervisor_tick_hook=wedge_while(Path(sys.argv[1]))))
