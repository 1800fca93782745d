"""HTTP load: `wrk` when installed, else a small Python generator with the same outputs.

Both return {"rps", "p50_ms", "p99_ms", "requests", "errors", "tool"}. The Python generator runs in
two processes (one per core here) so the GIL is not the limit; it is still slower than wrk, so
figures from it are comparable only with each other (the tool is recorded with every figure).
"""

from __future__ import annotations

import http.client
import json
import re
import shutil
import subprocess
import sys
import threading
import time
from typing import Any

from bench.harness import PYTHON, REPO, percentile

_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3}


def have_wrk() -> bool:
    return shutil.which("wrk") is not None


def _ms(text: str) -> float:
    m = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text.strip())
    if not m:
        raise ValueError(f"unparsable wrk latency {text!r}")
    return float(m.group(1)) * _UNITS[m.group(2)]


def parse_wrk(out: str) -> dict[str, Any]:
    """Requests/sec and the 50%/99% latency lines of `wrk --latency` output."""
    rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
    p50 = re.search(r"^\s+50%\s+(\S+)", out, re.M)
    p99 = re.search(r"^\s+99%\s+(\S+)", out, re.M)
    total = re.search(r"(\d+) requests in", out)
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    sock = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    if not (rps and p50 and p99 and total):
        raise ValueError(f"unparsable wrk output: {out[-500:]!r}")
    n_err = int(errors.group(1)) if errors else 0
    if sock:
        n_err += sum(int(x) for x in sock.groups())
    return {"rps": round(float(rps.group(1)), 1), "p50_ms": round(_ms(p50.group(1)), 2),
            "p99_ms": round(_ms(p99.group(1)), 2), "requests": int(total.group(1)), "errors": n_err}


def load(url: str, connections: int, seconds: float) -> dict[str, Any]:
    """Keep `connections` keep-alive connections busy against `url` for `seconds`."""
    if have_wrk():
        threads = max(1, min(2, connections))
        out = subprocess.run(["wrk", f"-t{threads}", f"-c{connections}", f"-d{max(1, round(seconds))}s",
                              "--latency", "--timeout", "10s", url],
                             capture_output=True, text=True, timeout=seconds + 60, check=True).stdout
        return {**parse_wrk(out), "tool": "wrk"}
    procs = [subprocess.Popen([PYTHON, "-m", "bench.loadgen", url, str(n), str(seconds)], cwd=REPO,
                              stdout=subprocess.PIPE, text=True)
             for n in _split(connections, 2) if n]
    parts = [json.loads(p.communicate(timeout=seconds + 60)[0]) for p in procs]
    lat = [x for part in parts for x in part["latencies"]]
    took = max(part["seconds"] for part in parts)
    return {"rps": round(len(lat) / took, 1), "p50_ms": round(percentile(lat, 50) or 0, 2),
            "p99_ms": round(percentile(lat, 99) or 0, 2), "requests": len(lat),
            "errors": sum(part["errors"] for part in parts), "tool": "python"}


def _split(n: int, parts: int) -> list[int]:
    return [n // parts + (1 if i < n % parts else 0) for i in range(parts)]


def _worker(host: str, port: int, path: str, deadline: float, lat: list[float], errors: list[int]) -> None:
    conn = http.client.HTTPConnection(host, port, timeout=10)
    while time.monotonic() < deadline:
        t0 = time.perf_counter()
        try:
            conn.request("GET", path)
            resp = conn.getresponse()
            resp.read()
            if resp.status != 200:
                errors.append(resp.status)
        except (OSError, http.client.HTTPException):
            errors.append(0)
            conn.close()
            conn = http.client.HTTPConnection(host, port, timeout=10)
            continue
        lat.append((time.perf_counter() - t0) * 1000)
    conn.close()


def main(argv: list[str]) -> int:
    """Subprocess entry: `python -m bench.loadgen URL CONNECTIONS SECONDS` prints JSON latencies."""
    from urllib.parse import urlsplit

    url, connections, seconds = argv[0], int(argv[1]), float(argv[2])
    parts = urlsplit(url)
    lat: list[float] = []
    errors: list[int] = []
    start = time.monotonic()
    deadline = start + seconds
    workers = [threading.Thread(target=_worker, args=(parts.hostname, parts.port or 80, parts.path or "/", deadline,
                                                      lat, errors)) for _ in range(connections)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    print(json.dumps({"latencies": lat, "errors": len(errors), "seconds": time.monotonic() - start}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
