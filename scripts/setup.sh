#!/usr/bin/env bash
# Install what rtsp2jpg needs on Debian / Raspberry Pi OS / Ubuntu and create ./.venv.
# The venv uses --system-site-packages so the distribution's GStreamer-enabled OpenCV is the cv2 in use
# (a pip OpenCV has no GStreamer and would shadow it). Usage: scripts/setup.sh [--test]
set -euo pipefail
cd "$(dirname "$0")/.."
SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi

packages=(python3 python3-venv python3-pip python3-opencv python3-numpy python3-gi
  gir1.2-gstreamer-1.0 gir1.2-gst-plugins-base-1.0 gir1.2-gst-rtsp-server-1.0
  gstreamer1.0-tools gstreamer1.0-plugins-base gstreamer1.0-plugins-good
  gstreamer1.0-plugins-bad gstreamer1.0-plugins-ugly gstreamer1.0-libav libturbojpeg0 curl)
if [ "${1:-}" = "--test" ]; then
  packages+=(ffmpeg mosquitto mosquitto-clients openssl)
  [ -f scripts/test-packages.txt ] && mapfile -t -O "${#packages[@]}" packages < <(grep -v '^#' scripts/test-packages.txt)
fi

missing=()
for p in "${packages[@]}"; do
  [ -n "$p" ] || continue
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  echo "installing: ${missing[*]}" >&2
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
fi

# Test tools from npm (a clustered MQTT broker): pinned in scripts/test-npm.txt, installed under .test-tools/.
if [ "${1:-}" = "--test" ] && [ -f scripts/test-npm.txt ]; then
  command -v npm >/dev/null || DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends npm >&2
  if [ ! -f .test-tools/.installed ] || [ scripts/test-npm.txt -nt .test-tools/.installed ]; then
    mapfile -t npm_packages < <(grep -v '^#' scripts/test-npm.txt)
    npm install --prefix .test-tools --no-audit --no-fund --silent "${npm_packages[@]}" >&2
    touch .test-tools/.installed
  fi
fi

# The distribution's python3 (not a pyenv/conda one): that is where python3-opencv and gi live.
PY=/usr/bin/python3
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv --system-site-packages .venv
fi
extra=""
stamp=.venv/.installed
if [ "${1:-}" = "--test" ]; then extra="[test]"; stamp=.venv/.installed-test; fi
# pip is slow on a Pi: skip it when nothing it installs from has changed since the last run.
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ] || { [ -f scripts/test-requirements.txt ] && [ scripts/test-requirements.txt -nt "$stamp" ]; }; then
  .venv/bin/pip install -q --disable-pip-version-check -e ".${extra}" >&2
  if [ -f scripts/test-requirements.txt ] && [ "${1:-}" = "--test" ]; then
    .venv/bin/pip install -q --disable-pip-version-check -r scripts/test-requirements.txt >&2
  fi
  touch "$stamp"
fi
