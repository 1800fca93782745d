"""The ceiling for the service's HTTP path: Waitress returning fixed JPEG bytes from memory.

Same server and thread count as the service, no framework, no camera: what "serve bytes with
Waitress" costs on this machine. Usage: python -m bench.minimal_server PORT JPEG_FILE THREADS
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any


def make_app(body: bytes) -> Callable[..., Iterable[bytes]]:
    headers = [("Content-Type", "image/jpeg"), ("Content-Length", str(len(body))), ("Cache-Control", "no-store")]

    def app(_environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        start_response("200 OK", headers)
        return [body]

    return app


def main(argv: list[str]) -> int:
    import logging

    import waitress

    port, path, threads = int(argv[0]), Path(argv[1]), int(argv[2])
    logging.getLogger("waitress.queue").setLevel(logging.ERROR)  # as the service does (DESIGN 9)
    waitress.serve(make_app(path.read_bytes()), host="127.0.0.1", port=port, threads=threads, ident="minimal")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
