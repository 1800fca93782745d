"""`python -m bench [--only NAME,...] [--smoke] [--repeat N]`: run the benchmarks, write JSON, update README.

Each benchmark writes `<results>/<name>.json`; then the README's Performance section is rebuilt from
every JSON there (`python -m bench --report-only` rebuilds it without measuring).
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import sys
import time
import traceback
from datetime import datetime, timezone
from pathlib import Path

from bench import report
from bench.context import FULL_STREAMS, SMOKE_STREAMS, Context
from bench.harness import REPO, RtspServer, machine, session

BENCHMARKS = {"cpu_per_camera": "bench.cpu", "freshness": "bench.freshness", "adaptive_cpu": "bench.adaptive",
              "first_snapshot": "bench.first_snapshot", "reconnect": "bench.reconnect",
              "snapshot_http": "bench.snapshot_http", "scale": "bench.scale", "memory": "bench.memory"}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n")[0])
    parser.add_argument("--only", help=f"comma-separated subset of: {', '.join(BENCHMARKS)}")
    parser.add_argument("--smoke", action="store_true", help="seconds-long harness run (CI); figures mean nothing")
    parser.add_argument("--repeat", type=int, default=1,
                        help="more rounds (cpu_per_camera windows; at least 2-3 rounds elsewhere), medians over all")
    parser.add_argument("--decoder", default="auto", help="capture.decoder for the service (default auto)")
    parser.add_argument("--results", type=Path, default=REPO / "bench" / "results", help="where JSON goes")
    parser.add_argument("--readme", type=Path, default=REPO / "README.md", help="README to update ('-' = none)")
    parser.add_argument("--report-only", action="store_true", help="rebuild the README section from the JSON only")
    parser.add_argument("--keep", action="store_true", help="keep the work directory (logs, configs)")
    args = parser.parse_args(argv)

    names = list(BENCHMARKS) if not args.only else [n.strip() for n in args.only.split(",") if n.strip()]
    unknown = [n for n in names if n not in BENCHMARKS]
    if unknown:
        parser.error(f"unknown benchmark(s): {', '.join(unknown)}")
    args.results.mkdir(parents=True, exist_ok=True)
    failed = 0
    if not args.report_only:
        try:
            failed = _measure(args, names)
        except KeyboardInterrupt:
            print("interrupted: every process the bench started is stopped", file=sys.stderr)
            return 130
    if str(args.readme) != "-":
        report.update_readme(args.readme, args.results)
        print(f"updated {args.readme}", file=sys.stderr)
    return 1 if failed else 0


def _measure(args: argparse.Namespace, names: list[str]) -> int:
    info = machine()
    failed = 0
    started = time.monotonic()
    with session(keep=args.keep) as procs:
        print(f"work directory {procs.workdir}", file=sys.stderr)
        rtsp = RtspServer(procs, SMOKE_STREAMS if args.smoke else FULL_STREAMS).start()
        ctx = Context(procs, rtsp, decoder=args.decoder, smoke=args.smoke, repeat=max(1, args.repeat))
        for name in names:
            t0, load0 = time.monotonic(), round(os.getloadavg()[0], 2)
            print(f"== {name}", file=sys.stderr, flush=True)
            doc = {"benchmark": name, "date": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
                   "machine": info, "smoke": args.smoke, "decoder": args.decoder}
            try:
                doc.update(importlib.import_module(BENCHMARKS[name]).run(ctx))
            except Exception as e:  # one broken benchmark must not cost the others their figures
                failed += 1
                doc["error"] = f"{type(e).__name__}: {e}"
                traceback.print_exc()
            doc["duration_s"] = round(time.monotonic() - t0, 1)
            doc["load"] = [load0, round(os.getloadavg()[0], 2)]  # 1-min load average before and after: the noise
            path = args.results / f"{name}.json"
            tmp = path.with_suffix(".json.tmp")
            tmp.write_text(json.dumps(doc, indent=1) + "\n")
            tmp.replace(path)
            print(report.summary(doc), file=sys.stderr, flush=True)
    print(f"total {time.monotonic() - started:.0f}s", file=sys.stderr)
    return failed


if __name__ == "__main__":
    sys.exit(main())
