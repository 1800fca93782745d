#!/usr/bin/env bash
# One command for the benchmarks (DESIGN 8): sets up .venv, installs the load generator and the
# nginx floor if missing (Debian), then runs `python -m bench "$@"`: JSON to bench/results/, figures
# into the README's Performance section. About 12 minutes on 2 cores; Ctrl-C stops everything it started.
# Examples: bench/run.sh            bench/run.sh --only freshness,snapshot_http      bench/run.sh --repeat 3
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh --test
missing=()
command -v wrk >/dev/null || missing+=(wrk)
command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || missing+=(nginx-light)
if [ "${#missing[@]}" -gt 0 ] && command -v apt-get >/dev/null; then
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
  echo "installing: ${missing[*]} (the bench runs its own nginx on a loopback port)" >&2
  $SUDO apt-get update -qq || true
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2 \
    || echo "could not install ${missing[*]}: the bench falls back to its Python load generator / skips nginx" >&2
fi
exec .venv/bin/python -m bench "$@"
