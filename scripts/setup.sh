#!/usr/bin/env bash
# Set up everything edgeopt needs on a fresh Debian machine: Debian packages, a venv in .venv,
# the package and its test tools. Idempotent; a second run with nothing changed takes a second.
set -euo pipefail
cd "$(dirname "$0")/.."

# Debian packages the tests and the demo use (GStreamer, video codecs, PyGObject build deps).
APT_PACKAGES=(
  gstreamer1.0-tools gstreamer1.0-plugins-base gstreamer1.0-plugins-good
  gstreamer1.0-plugins-ugly gstreamer1.0-libav gstreamer1.0-python3-plugin-loader
  python3-gst-1.0 gir1.2-gstreamer-1.0 gir1.2-gst-plugins-base-1.0
  libgirepository1.0-dev libcairo2-dev pkg-config
  espeak-ng  # the built-in speech set for audio models (edgeopt.data.load_audio)
  chromium  # renders report.html headless in its test (a screenshot, looked at)
)
missing=()
for pkg in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if ((${#missing[@]})); then
  echo "setup: installing Debian packages: ${missing[*]}"
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  echo "setup: creating .venv"
  "$PYTHON" -m venv .venv
fi

# Reinstall only when the dependency list changed.
stamp=.venv/.edgeopt-setup
want=$(cat pyproject.toml scripts/setup.sh | sha256sum | cut -d' ' -f1)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  echo "setup: installing Python packages into .venv"
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q -e ".[dev,torch,openvino,tvm]"
  echo "$want" > "$stamp"
fi
# PyGObject from pip lacks GStreamer's overrides: link Debian's into the venv (idempotent).
bash scripts/link_gst_overrides.sh
echo "setup: ready (.venv)"
