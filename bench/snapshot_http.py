"""snapshot_http: GET /snapshot/<id> under load, beside the same bytes from a minimal Waitress handler and nginx.

At 1, 16 and 64 keep-alive connections (wrk, or the Python generator without it). The service is
the real path: every request asks for the newest frame, so the camera converts every frame and
each new frame is JPEG-encoded once for all readers. The minimal Waitress handler (same thread
count) returns the service's own JPEG from memory: the ceiling the design holds the service to
(<= 10% slower). nginx serving the same file with one worker is the machine's limit.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

from bench import loadgen
from bench.context import Context
from bench.harness import (
    PYTHON,
    BenchError,
    Procs,
    cpu_seconds,
    free_port,
    get,
    median,
    single_camera_service,
    wait_until,
)

CONNECTIONS = (1, 16, 64)
THREADS = 8  # both servers get the same (the service's default is 64: see the README's HTTP notes)

NGINX_CONF = """\
{user}worker_processes 1;
daemon off;
pid {dir}/nginx.pid;
error_log {dir}/error.log;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    sendfile on;
    tcp_nopush on;
    keepalive_requests 1000000;
    client_body_temp_path {dir}/tmp;
    proxy_temp_path {dir}/tmp;
    fastcgi_temp_path {dir}/tmp;
    uwsgi_temp_path {dir}/tmp;
    scgi_temp_path {dir}/tmp;
    types {{ image/jpeg jpg; }}
    server {{
        listen 127.0.0.1:{port};
        root {dir}/www;
        add_header Cache-Control no-store;
    }}
}}
"""


def _answers(url: str) -> bool:
    try:
        return get(url, timeout=1)[0] == 200
    except OSError:
        return False


def start_minimal(procs: Procs, jpeg: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    proc = procs.start([PYTHON, "-m", "bench.minimal_server", str(port), str(jpeg), str(THREADS)], "minimal-waitress")
    url = f"http://127.0.0.1:{port}/snapshot.jpg"
    wait_until(lambda: proc.poll() is not None or _answers(url), 20, what="the minimal Waitress server")
    if proc.poll() is not None:
        raise BenchError("minimal Waitress server exited; see minimal-waitress.log")
    return proc, url


def start_nginx(procs: Procs, jpeg: Path) -> tuple[subprocess.Popen[bytes], str] | None:
    nginx = shutil.which("nginx") or ("/usr/sbin/nginx" if os.path.exists("/usr/sbin/nginx") else None)
    if nginx is None:
        return None
    d = procs.workdir / "nginx"
    (d / "www").mkdir(parents=True, exist_ok=True)
    (d / "tmp").mkdir(exist_ok=True)
    shutil.copy(jpeg, d / "www" / "snapshot.jpg")
    port = free_port()
    # As root nginx's workers would drop to `nobody`, who cannot enter the private work directory.
    user = "user root;\n" if os.geteuid() == 0 else ""
    (d / "nginx.conf").write_text(NGINX_CONF.format(user=user, dir=d, port=port))
    proc = procs.start([nginx, "-p", str(d), "-c", str(d / "nginx.conf"), "-e", str(d / "error.log")], "nginx")
    url = f"http://127.0.0.1:{port}/snapshot.jpg"
    wait_until(lambda: proc.poll() is not None or _answers(url), 20, what="nginx")
    if proc.poll() is not None:
        raise BenchError(f"nginx exited; see {d / 'error.log'}")
    return proc, url


def _measure(url: str, pid: int, connections: int, seconds: float) -> dict[str, Any]:
    c0, t0 = cpu_seconds(pid), time.monotonic()
    result = loadgen.load(url, connections, seconds)
    result["server_cpu_s_per_s"] = round((cpu_seconds(pid) - c0) / (time.monotonic() - t0), 3)
    return result


def _medians(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """One server's points at one connection count: medians over the rounds, the rounds kept."""
    keys = ("rps", "p50_ms", "p99_ms", "server_cpu_s_per_s")
    out: dict[str, Any] = {k: median([r[k] for r in rows if r.get(k) is not None]) for k in keys}
    out.update(errors=sum(r.get("errors", 0) for r in rows), rounds=[r["rps"] for r in rows])
    return out


def run(ctx: Context) -> dict[str, Any]:
    stream = ctx.stream("720p25")
    seconds = ctx.seconds(3.0, 1.0)
    rounds = 1 if ctx.smoke else max(3, ctx.repeat)
    connections = (16,) if ctx.smoke else CONNECTIONS
    svc, status = single_camera_service(ctx.procs, "http", ctx.rtsp.url(stream), ctx.decoder, threads=THREADS)
    servers: dict[str, tuple[int, str]] = {"service": (svc.pid, f"{svc.base}/snapshot/cam")}
    try:
        code, _, body = get(f"{svc.base}/snapshot/cam")
        if code != 200:
            raise BenchError(f"first snapshot failed with {code}")
        jpeg = ctx.procs.workdir / "snapshot.jpg"
        jpeg.write_bytes(body)
        proc, url = start_minimal(ctx.procs, jpeg)
        servers["minimal_waitress"] = (proc.pid, url)
        ngx = start_nginx(ctx.procs, jpeg)
        if ngx is not None:
            servers["nginx"] = (ngx[0].pid, ngx[1])
        else:
            ctx.notes.append("nginx not installed: no nginx column (bench/run.sh installs it)")
        # Interleaved: every round measures each server at each connection count, in alternating
        # order, so a burst of load on the shared machine hits both sides of a ratio alike.
        points: dict[int, dict[str, list[dict[str, Any]]]] = {c: {n: [] for n in servers} for c in connections}
        ratios: dict[int, list[float]] = {c: [] for c in connections}
        for r in range(rounds):
            for c in connections:
                order = list(servers) if r % 2 == 0 else list(reversed(servers))
                got = {name: _measure(servers[name][1], servers[name][0], c, seconds) for name in order}
                for name, res in got.items():
                    points[c][name].append(res)
                if got["minimal_waitress"]["rps"]:
                    ratios[c].append(got["service"]["rps"] / got["minimal_waitress"]["rps"])
        by_conn: dict[str, Any] = {}
        for c in connections:
            row: dict[str, Any] = {name: _medians(points[c][name]) for name in servers}
            # Under load the camera thread competes for the GIL with the HTTP threads: does it keep up?
            row["service"]["camera_fps_after"] = svc.status("cam").get("fps")
            row["service_vs_minimal"] = round(median(ratios[c]), 3) if ratios[c] else None
            row["service_vs_minimal_rounds"] = [round(x, 3) for x in ratios[c]]
            if "nginx" in row and row["nginx"]["rps"]:
                row["service_vs_nginx"] = round(row["service"]["rps"] / row["nginx"]["rps"], 3)
            by_conn[str(c)] = row
    finally:
        svc.stop()
    return {"results": {"stream": ctx.rtsp.streams[stream], "jpeg_bytes": len(body), "backend": status.get("backend"),
                        "tool": "wrk" if loadgen.have_wrk() else "python", "seconds_per_point": seconds,
                        "rounds": rounds, "threads": THREADS, "connections": by_conn},
            "method": "keep-alive GETs for a fixed time per point, servers interleaved per round; ratio = median "
                      "over rounds of service req/s / minimal Waitress req/s in the same round"}
