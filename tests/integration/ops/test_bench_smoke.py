"""The benchmark harness still runs end to end (a seconds-long smoke; figures are not checked) and
its pure parts (wrk parsing, percentiles, README rewriting) do what the report relies on."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from bench import loadgen, report
from bench.harness import percentile

REPO = Path(__file__).resolve().parents[3]

WRK_OUTPUT = """Running 4s test @ http://127.0.0.1:8080/snapshot/cam
  2 threads and 16 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     4.80ms    2.10ms  40.00ms   90.00%
    Req/Sec     1.70k   100.00     1.90k    70.00%
  Latency Distribution
     50%  850.00us
     75%    5.00ms
     90%    7.00ms
     99%    1.20s
  13600 requests in 4.00s, 2.20GB read
  Non-2xx or 3xx responses: 3
Requests/sec:   3400.12
Transfer/sec:    563.00MB
"""


def test_wrk_output_is_parsed_with_units() -> None:
    assert loadgen.parse_wrk(WRK_OUTPUT) == {"rps": 3400.1, "p50_ms": 0.85, "p99_ms": 1200.0,
                                             "requests": 13600, "errors": 3}


def test_percentile_is_nearest_rank() -> None:
    values = list(range(1, 101))
    assert percentile(values, 50) == 50
    assert percentile(values, 99) == 99
    assert percentile([7.0], 99) == 7.0
    assert percentile([], 50) is None


def test_readme_section_is_replaced_between_markers_only(tmp_path: Path) -> None:
    results = tmp_path / "results"
    results.mkdir()
    doc = {"benchmark": "memory", "date": "2026-01-02T03:04:05Z", "smoke": False,
           "machine": {"cpu": "Test CPU", "cores": 2, "opencv": "4.6.0", "ffmpeg": "ffmpeg version 5.1",
                       "python": "3.11", "load_at_start": [0.1, 0.1, 0.1]},
           "results": {"target_720p_mb": 15.0, "by_resolution": {"720p25": {
               "backend": "ffmpeg", "idle_rss_mb": 150.0, "per_camera_mb": 12.5, "first_camera_mb": 20.0,
               "next_cameras_mb": 8.75, "pipeline_next_mb": 6.25}}}}
    (results / "memory.json").write_text(json.dumps(doc))
    readme = tmp_path / "README.md"
    readme.write_text(f"# x\n\nbefore\n\n{report.START}\nold figures\n{report.END}\n\nafter\n")
    report.update_readme(readme, results)
    text = readme.read_text()
    assert "old figures" not in text
    assert text.startswith("# x\n\nbefore\n\n") and text.endswith("\n\nafter\n")
    assert "Test CPU, 2 cores, OpenCV 4.6.0" in text and "| 720p25 | ffmpeg | 3 | 150 | 12.5 |" in text
    # issue 13's summary: each figure with its target and whether it is met
    assert "| RSS per 720p camera, 3 cameras polled 1/s | <= 15 MB | 12.5 MB |" in text and "| yes |" in text
    # beside it, the floor without Python: the decode pipeline alone
    assert "each next decode pipeline alone (gst-launch) 6.2 MB" in text and "| 8.8 | 6.2 |" in text

    bare = tmp_path / "BARE.md"
    bare.write_text("# y\n")
    report.update_readme(bare, results)
    assert "## Performance" in bare.read_text() and report.END in bare.read_text()


@pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="the floor needs ffmpeg")
def test_smoke_run_writes_every_result_and_the_readme(tmp_path: Path) -> None:
    readme = tmp_path / "README.md"
    readme.write_text(f"# t\n\n{report.START}\n{report.END}\n")
    proc = subprocess.run([sys.executable, "-m", "bench", "--smoke", "--results", str(tmp_path / "results"),
                           "--readme", str(readme)], cwd=REPO, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr[-3000:]
    for name in report.ORDER:
        doc = json.loads((tmp_path / "results" / f"{name}.json").read_text())
        assert "error" not in doc, doc["error"]
        assert doc["results"] and doc["smoke"] is True
    text = readme.read_text()
    assert "Smoke run" in text and "failed" not in text


def test_first_snapshot_bench_runs_and_prints_its_table() -> None:
    """bench/first_snapshot.py is a script of its own (not in `python -m bench`): one small round."""
    proc = subprocess.run([sys.executable, "bench/first_snapshot.py", "--rounds", "1", "--size", "320x180"],
                          cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = [line for line in proc.stdout.splitlines() if line.startswith("| rtsp2jpg |")
            or line.startswith("| original reader |")]
    assert len(rows) == 2, proc.stdout


def test_mqtt_scale_bench_runs_through_bridged_sites() -> None:
    """bench/mqtt_scale.py end to end with tiny numbers: real Publishers, two bridged site brokers."""
    proc = subprocess.run([sys.executable, "bench/mqtt_scale.py", "--devices", "6", "--cameras", "2", "--sites", "2",
                           "--duration", "2", "--outage", "1", "--flap", "0.5", "--flap-period", "1"],
                          cwd=REPO, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "6 devices x 2 cameras (6 connected" in proc.stdout, proc.stdout
    assert "back on central" in proc.stdout and "6 devices reconnected" not in proc.stdout  # 3 per site
    assert "3 devices reconnected" in proc.stdout, proc.stdout
