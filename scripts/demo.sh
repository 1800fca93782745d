#!/usr/bin/env bash
# One command to see rtsp2jpg work: installs what it needs, starts a local demo RTSP camera (a test
# pattern with a clock) and the service on port 8080. Then: curl -o demo.jpg localhost:8080/snapshot/demo
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
export DEMO_RTSP_PORT="${DEMO_RTSP_PORT:-8554}"
ready="$(mktemp)"
.venv/bin/python -m rtsp2jpg.demo --host 127.0.0.1 --port "$DEMO_RTSP_PORT" --stream demo=640x360@25:h264 >"$ready" &
demo_pid=$!
trap 'kill "$demo_pid" 2>/dev/null || true; rm -f "$ready"' EXIT
for _ in $(seq 100); do grep -q READY "$ready" && break; sleep 0.1; done
echo "open http://localhost:${RTSP2JPG_HTTP_PORT:-8080}/snapshot/demo (Ctrl-C stops)" >&2
.venv/bin/rtsp2jpg serve --config config/demo.yaml "$@"
