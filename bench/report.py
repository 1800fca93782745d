"""Turn bench/results/*.json into the README's Performance section (between the perf markers).

Only what is inside the markers is rewritten; a benchmark without a JSON file is left out, and a
failed one shows its error, so a partial run still yields an honest section.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from bench import report_more

START, END = "<!-- perf:start -->", "<!-- perf:end -->"
ORDER = ("cpu_per_camera", "freshness", "adaptive_cpu", "first_snapshot", "reconnect", "snapshot_http", "scale",
         "memory")


def summary(doc: dict[str, Any]) -> str:
    """One or a few lines for the terminal while the bench runs."""
    if "error" in doc:
        return f"{doc['benchmark']}: FAILED {doc['error']}"
    render = RENDERERS.get(doc["benchmark"])
    body = "\n".join(render(doc["results"])) if render else json.dumps(doc.get("results"))
    return f"{doc['benchmark']} ({doc.get('duration_s')} s)\n{body}\n"


def _x(v: float | None) -> str:
    return "n/a" if v is None else f"{v:.2f}x"


def _n(v: float | None, fmt: str = "{:.0f}") -> str:
    return "n/a" if v is None else fmt.format(v)


def _cpu(r: dict[str, Any]) -> list[str]:
    lines = ["CPU per camera: CPU seconds per second of one process, as a ratio to the decode floor "
             "`ffmpeg -rtsp_transport tcp -i URL -f null -` on the same stream (target: <= 1.10x at 1 snapshot/s). "
             "Decoded fps in brackets: on a busy machine the source can fall below its nominal rate.", "",
             "The service's decode pipeline alone in gst-launch (no Python) is a second floor: the part of "
             "the gap that is GStreamer's.", "",
             "| stream | floor (CPU s/s) | rtsp2jpg, 1 snapshot/s | rtsp2jpg, 10 snapshots/s | its pipeline alone "
             "(gst-launch) | naive read+encode every frame | OpenCV grab() loop |", "|---|---|---|---|---|---|---|"]
    for res, row in r.items():
        ratio, fps, cpu = row["ratio_to_floor"], row.get("decoded_fps", {}), row["cpu_s_per_s"]

        def cell(k: str, ratio: dict = ratio, fps: dict = fps) -> str:
            return f"{_x(ratio.get(k))} ({_n(fps.get(k))} fps)"
        lines.append(f"| {res} H.264 | {cpu['ffmpeg_floor']:.3f} ({_n(fps.get('ffmpeg_floor'))} fps) | "
                     f"{cell('service_1fps')} | {cell('service_10fps')} | {_x(ratio.get('gstreamer_alone'))} | "
                     f"{cell('naive_read_encode')} | "
                     f"{cell('opencv_grab')} |")
    pf = [f"{res}: " + ", ".join(f"{k} {_x(v)}" for k, v in row.get("per_frame_ratio_to_floor", {}).items()
                                 if k != "ffmpeg_floor" and v is not None)
          for res, row in r.items()]
    lines += ["", "CPU per decoded frame, as a ratio to the floor's: " + "; ".join(pf) + "."]
    errors = [f"{res}: {e}" for res, row in r.items() for e in row.get("errors", [])]
    if errors:
        lines += ["", "Retried or missing contenders: " + "; ".join(errors) + "."]
    return lines


def _freshness(r: dict[str, Any]) -> list[str]:
    lines = [f"Freshness: age of served frames (arrival time minus the draw time stamped into the picture by "
             f"the source), {r['stream']} ({r.get('backend')}), frame interval {r['frame_interval_ms']:.0f} ms "
             f"(target: p99 <= {r['target_p99_ms']:.0f} ms at any polling rate).", "",
             "| pattern | samples | p50 ms | p99 ms | max ms | p99 / frame interval | source to grab, p50 ms |",
             "|---|---|---|---|---|---|---|"]
    for name, s in r["patterns"].items():
        lines.append(f"| {name} | {s['n']} | {_n(s['p50_ms'])} | {_n(s['p99_ms'])} | {_n(s['max_ms'])} | "
                     f"{_x(s['p99_in_frame_intervals'])} | {_n(s.get('source_to_grab_p50_ms'))} |")
    return lines


def _http(r: dict[str, Any]) -> list[str]:
    lines = [f"Snapshot HTTP: `GET /snapshot/<id>` with {r['tool']}, keep-alive, {r['seconds_per_point']:.0f} s per "
             f"point, {r.get('rounds', 1)} interleaved rounds (medians; the ratio is the median of per-round "
             f"ratios), {r['jpeg_bytes'] // 1000} KB JPEG of {r['stream']}, {r.get('threads', 8)} Waitress threads "
             "each; beside a minimal Waitress handler returning the same bytes from memory (target: service >= "
             "0.90x of it, p99 < 20 ms at 16 connections) and nginx (one worker) serving them as a file.", "",
             "| connections | rtsp2jpg req/s (p99 ms) | minimal Waitress req/s (p99 ms) | nginx req/s (p99 ms) | "
             "rtsp2jpg / Waitress | rtsp2jpg / nginx |", "|---|---|---|---|---|---|"]

    def cell(d: dict[str, Any] | None) -> str:
        return "n/a" if not d else f"{d['rps']:.0f} ({d['p99_ms']:.1f})"
    for c, row in r["connections"].items():
        lines.append(f"| {c} | {cell(row.get('service'))} | {cell(row.get('minimal_waitress'))} | "
                     f"{cell(row.get('nginx'))} | {_x(row.get('service_vs_minimal'))} | "
                     f"{_x(row.get('service_vs_nginx'))} |")
    return lines


def _scale(r: dict[str, Any]) -> list[str]:
    floor = r.get("floor_cpu_s_per_s")
    lines = [f"Scale: N cameras of {r['stream']} in one service, each polled once a second (target: 16 cameras all "
             f"active and fresh on 2 cores; fresh = active, >= 90% of the source fps, every snapshot <= "
             f"{r['fresh_ms']:.0f} ms old). Per camera CPU as a ratio to one ffmpeg decoding the same stream "
             f"({_n(floor, '{:.3f}')} CPU s/s).", "",
             "| cameras | CPU s/s | per camera vs floor | RSS MB | fresh | max age ms | min fps |",
             "|---|---|---|---|---|---|---|"]
    for n, s in r["steps"].items():
        if "not_reached" in s:
            lines.append(f"| {n} | not reached: {s['not_reached']} | | | | | |")
            continue
        ratio = s["cpu_per_camera"] / floor if floor else None
        lines.append(f"| {n} | {s['cpu_s_per_s']:.2f} | {_x(ratio)} | {s['rss_mb']:.0f} | "
                     f"{s['fresh']}/{s['cameras']} | {_n(s['max_age_ms'])} | {s['min_fps']:.1f} |")
    return lines


def _memory(r: dict[str, Any]) -> list[str]:
    lines = [f"Memory: RSS beyond the idle service (OpenCV loaded, no camera), cameras polled once a second "
             f"(target: <= {r['target_720p_mb']:.0f} MB per 720p camera with 8 cameras). With libavcodec "
             "driven directly (capture/lavc.py) the first camera no longer loads gst-libav's plugin and what it "
             "links (~20 MB: libavfilter, flite's voices, libplacebo, vulkan).", "",
             "The last column is the GStreamer floor without Python: each next copy of the software decode "
             "pipeline (rtspsrc to avdec_h264 to appsink) in one gst-launch process.", "",
             "| stream | decoder | cameras | idle MB | per camera MB | first camera MB | each next camera MB | "
             "each next GStreamer pipeline alone MB |", "|---|---|---|---|---|---|---|---|"]
    for res, m in r["by_resolution"].items():
        lines.append(f"| {res} | {m.get('backend') or '?'} | {m.get('cameras', 3)} | {m['idle_rss_mb']:.0f} | "
                     f"{m['per_camera_mb']:.1f} | "
                     f"{m['first_camera_mb']:.1f} | {m['next_cameras_mb']:.1f} | "
                     f"{_n(m.get('pipeline_next_mb'), '{:.1f}')} |")
    return lines


RENDERERS = {"cpu_per_camera": _cpu, "freshness": _freshness, "snapshot_http": _http, "scale": _scale,
             "memory": _memory, **report_more.RENDERERS}


def load(results: Path) -> list[dict[str, Any]]:
    docs = []
    for name in ORDER:
        path = results / f"{name}.json"
        if path.exists():
            docs.append(json.loads(path.read_text()))
    return docs


def render(docs: list[dict[str, Any]]) -> str:
    """The Markdown between the markers."""
    if not docs:
        return "No benchmark results yet: run `bench/run.sh`."
    m = docs[0]["machine"]
    dates = sorted(d["date"] for d in docs)
    backends = sorted({str(b) for d in docs for b in _backends(d.get("results", {}))})
    head = (f"Measured {dates[0][:10]} by `bench/run.sh` on {m['cpu']}, {m['cores']} cores, OpenCV {m['opencv']}, "
            f"{m['ffmpeg']}, Python {m['python']}; load average at start {m['load_at_start'][0]}; capture backend "
            f"{', '.join(backends) or 'n/a'}. Each figure is compared with a floor measured in the same run; "
            "the raw numbers are in `bench/results/*.json`.")
    if any(d.get("smoke") for d in docs):
        head += " **Smoke run: these figures mean nothing.**"
    parts = [head, report_more.done_when({d["benchmark"]: d for d in docs})]
    for d in docs:
        if "error" in d:
            parts.append(f"{d['benchmark']}: failed ({d['error']}).")
        else:
            parts.append("\n".join(RENDERERS[d["benchmark"]](d["results"])))
    return "\n\n".join(parts)


def _backends(obj: Any) -> list[str]:
    """Every `backend`/`backends` value anywhere in a result (what /status reported per camera)."""
    found: list[str] = []
    if isinstance(obj, dict):
        for k, v in obj.items():
            if k == "backend" and v:
                found.append(str(v))
            elif k == "backends" and isinstance(v, list):
                found += [str(x) for x in v]
            else:
                found += _backends(v)
    return found


def update_readme(readme: Path, results: Path) -> None:
    """Replace the text between the perf markers; add a Performance section if the markers are missing."""
    text = readme.read_text() if readme.exists() else ""
    block = f"{START}\n{render(load(results))}\n{END}"
    if START in text and END in text:
        before, rest = text.split(START, 1)
        after = rest.split(END, 1)[1]
        text = before + block + after
    else:
        text = text.rstrip("\n") + "\n\n## Performance\n\n" + block + "\n"
    readme.write_text(text)
