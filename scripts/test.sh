#!/usr/bin/env bash
# One command to install what the tests need (system packages too) and run them.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh --test
exec .venv/bin/python -m pytest "$@"
