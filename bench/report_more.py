"""The README's summary of issue 13's figures ("Done when"), and the sections of the benchmarks added
for it (adaptive_cpu, first_snapshot, reconnect). Split from report.py, which renders the rest."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

Doc = dict[str, Any]


def _x(v: float | None) -> str:
    return "n/a" if v is None else f"{v:.2f}x"


def _s(v: float | None) -> str:
    return "n/a" if v is None else f"{v:.2f} s"


def _ok(good: bool | None) -> str:
    return "n/a" if good is None else ("yes" if good else "**no**")


def _get(docs: dict[str, Doc], name: str) -> dict[str, Any] | None:
    doc = docs.get(name)
    return None if doc is None or "error" in doc else doc.get("results")


def _rows(docs: dict[str, Doc]) -> list[tuple[str, str, str, str, bool | None]]:
    """(figure, target, measured, compared with, met) for each figure whose benchmark ran."""
    rows: list[tuple[str, str, str, str, bool | None]] = []
    cpu = (_get(docs, "cpu_per_camera") or {}).get("720p25")
    if cpu:
        ratio, alone = cpu["ratio_to_floor"].get("service_1fps"), cpu["ratio_to_floor"].get("gstreamer_alone")
        against = f"ffmpeg -f null ({cpu['cpu_s_per_s']['ffmpeg_floor']:.3f} CPU s/s)"
        if alone:
            against += f"; its GStreamer pipeline alone (gst-launch) {_x(alone)}"
        rows.append(("CPU, 720p25 camera, 1 snapshot/s", "<= 1.10x", _x(ratio), against,
                     None if ratio is None else ratio <= 1.10))
    fresh = _get(docs, "freshness")
    if fresh:
        for name, p in fresh["patterns"].items():
            if name in ("poll_1/s", "poll_10/s", "after_longpoll") and p.get("p99_ms") is not None:
                rows.append((f"age p99 of served frames, {name}", "<= 120 ms", f"{p['p99_ms']:.0f} ms",
                             f"frame interval {fresh['frame_interval_ms']:.0f} ms ({_x(p['p99_in_frame_intervals'])})",
                             p["p99_ms"] <= 120))
    adaptive = _get(docs, "adaptive_cpu")
    if adaptive:
        for key, label in (("nobody_reads", "CPU, adaptive, nobody reads"),
                           ("read_every_10s", "CPU, adaptive, 1 read / 10 s")):
            a = adaptive["readers"].get(key)
            if a:
                ratio, against = a["ratio_to_floor"], "ffmpeg -f null alongside"
                alone = adaptive["readers"].get("receive_half_alone")
                before = adaptive["readers"].get("nobody_reads_rtspsrc")
                if key == "nobody_reads" and before:
                    against += f"; rtspsrc receiving instead of our client {_x(before['ratio_to_floor'])}"
                if key == "nobody_reads" and alone:
                    against += f"; rtspsrc ! depay ! parse alone (gst-launch) {_x(alone['ratio_to_floor'])}"
                rows.append((label, f"<= {a['target']:.2f}x", _x(ratio), against,
                             None if ratio is None else ratio <= a["target"]))
        a = adaptive["readers"].get("read_every_10s")
        if a and a.get("wait_max_s") is not None:
            good = a["wait_max_s"] <= adaptive["target_wait_s"] and (a["age_max_s"] or 0) <= adaptive["target_age_s"]
            rows.append(("1 read / 10 s: answer within, picture age (max)", "<= 0.30 s, <= 0.20 s",
                         f"{a['wait_max_s']:.3f} s, {a['age_max_s'] or 0:.3f} s", f"{a['reads']} reads", good))
    first = _get(docs, "first_snapshot")
    if first:
        ours, theirs = first["rtsp2jpg"]["seconds_median"], first["original_reader"]["seconds_median"]
        rows.append(("first snapshot after POST /register", "<= 1.0 s, <= the original's", _s(ours),
                     f"original rtsp2jpg's reader {_s(theirs)} ({_x(first.get('ratio_to_original'))})",
                     ours <= 1.0 and ours <= theirs))
    rec = _get(docs, "reconnect")
    if rec:
        total = rec["total_s_median"]
        rows.append(("first snapshot after the camera comes back", "<= 1.0 s", _s(total),
                     f"backoff {_s(rec['backoff_s_median'])} + open {_s(rec['open_s_median'])}", total <= 1.0))
    mem = ((_get(docs, "memory") or {}).get("by_resolution") or {}).get("720p25")
    if mem:
        against = f"idle service {mem['idle_rss_mb']:.0f} MB; each next camera {mem['next_cameras_mb']:.1f} MB"
        if mem.get("pipeline_next_mb") is not None:
            against += f"; each next decode pipeline alone (gst-launch) {mem['pipeline_next_mb']:.1f} MB"
        rows.append((f"RSS per 720p camera, {mem.get('cameras', 3)} cameras polled 1/s", "<= 15 MB",
                     f"{mem['per_camera_mb']:.1f} MB", against, mem["per_camera_mb"] <= 15.0))
    http = ((_get(docs, "snapshot_http") or {}).get("connections") or {}).get("16")
    if http:
        ratio, p99 = http.get("service_vs_minimal"), http["service"]["p99_ms"]
        rows.append(("GET /snapshot at 16 connections", ">= 0.90x, p99 < 20 ms", f"{_x(ratio)}, p99 {p99:.1f} ms",
                     f"minimal Waitress handler {http['minimal_waitress']['rps']:.0f} req/s",
                     None if ratio is None else ratio >= 0.90 and p99 < 20))
    return rows


def done_when(docs: dict[str, Doc]) -> str:
    """Issue 13's figures in one table: target, measured, the floor it is compared with, met or not."""
    lines = ["Issue 13's figures (each against a floor measured in the same run):", "",
             "| figure | target | measured | compared with | met |", "|---|---|---|---|---|"]
    lines += [f"| {a} | {b} | {c} | {d} | {_ok(e)} |" for a, b, c, d, e in _rows(docs)]
    loads = [f"{name} {d['load'][0]:.1f} -> {d['load'][1]:.1f}" for name, d in docs.items() if d.get("load")]
    if loads:
        lines += ["", "How busy the machine was (1-minute load average before -> after each benchmark; 2 cores): "
                  + ", ".join(loads) + "."]
    return "\n".join(lines)


def _adaptive(r: dict[str, Any]) -> list[str]:
    lines = [f"Adaptive decoding: CPU of the service's capture loop (bench/decoder_reader.py, the default "
             f"`capture.decode: adaptive`) beside `ffmpeg -f null` on the same {r['stream']} mount, {r['rounds']} "
             f"alternating rounds of {r['seconds']:.0f} s, median of per-pair ratios.", "",
             "| reader | ratio to floor | rounds | CPU s/s | floor CPU s/s | reads | wait max | age max |",
             "|---|---|---|---|---|---|---|---|"]
    for key, a in r["readers"].items():
        lines.append(f"| {key.replace('_', ' ')} | {_x(a['ratio_to_floor'])} | "
                     f"{', '.join(f'{x:.2f}' for x in a['ratios'])} | {a['cpu_s_per_s']:.4f} | "
                     f"{a['floor_cpu_s_per_s']:.4f} | {a['reads']} | {_s(a['wait_max_s'])} | {_s(a['age_max_s'])} |")
    return lines


def _first(r: dict[str, Any]) -> list[str]:
    lines = [f"First snapshot: `POST /register` to the first JPEG, {r['stream']} (starts with a keyframe), "
             f"{r['rounds']} interleaved rounds, beside the original rtsp2jpg's reader (OpenCV FFmpeg, "
             "`VideoCapture()` to its first JPEG) on the same mount.", "",
             "| reader | first JPEG, median | rounds | its age, median |", "|---|---|---|---|"]
    for key in ("rtsp2jpg", "original_reader"):
        v = r[key]
        lines.append(f"| {key.replace('_', ' ')} | {_s(v['seconds_median'])} | "
                     f"{', '.join(f'{x:.2f}' for x in v['seconds'])} | {_s(v['age_median_s'])} |")
    return lines


def _reconnect(r: dict[str, Any]) -> list[str]:
    lines = [f"Reconnect: the RTSP server killed after {r['healthy_s']:.0f} s of stream, back {r['down_s']:.0f} s "
             f"later on the same port; from its READY to the first JPEG of the new session ({r['stream']}). Backoff = "
             "until the attempt that succeeded began; open = the rest.", "",
             "| round | total | backoff | open |", "|---|---|---|---|"]
    for n, row in enumerate(r["rounds"], 1):
        lines.append(f"| {n} | {_s(row['total_s'])} | {_s(row['backoff_s'])} | {_s(row['open_s'])} |")
    lines.append(f"| median | {_s(r['total_s_median'])} | {_s(r['backoff_s_median'])} | {_s(r['open_s_median'])} |")
    return lines


RENDERERS: dict[str, Callable[[dict[str, Any]], list[str]]] = {
    "adaptive_cpu": _adaptive, "first_snapshot": _first, "reconnect": _reconnect}
