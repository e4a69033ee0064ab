#!/usr/bin/env bash
# Link Debian's GStreamer Python overrides (python3-gst-1.0) into the venv's PyGObject.
#
# PyGObject from pip ships no GStreamer overrides; without them Gst.Buffer.map() hands Python
# a read-only copy and in-place video filters cannot write. Debian's python3-gst-1.0 installs
# them for the system Python (same 3.11 ABI), so we symlink gi/overrides/Gst*.py and
# _gi_gst*.so into the venv. Idempotent: existing correct links are left alone; a missing
# Debian package or venv PyGObject is reported and skipped (exit 0), so setup still finishes.
set -euo pipefail
cd "$(dirname "$0")/.."

VENV_PY=${VENV_PY:-.venv/bin/python}
SYSTEM_OVERRIDES=${SYSTEM_OVERRIDES:-/usr/lib/python3/dist-packages/gi/overrides}

if [ ! -x "$VENV_PY" ]; then
  echo "link_gst_overrides: no venv at $VENV_PY; run scripts/setup.sh first" >&2
  exit 0
fi
target=$("$VENV_PY" -c 'import gi.overrides, os; print(os.path.dirname(gi.overrides.__file__))' 2>/dev/null) || {
  echo "link_gst_overrides: PyGObject is not installed in the venv; skipping" >&2
  exit 0
}
shopt -s nullglob
sources=("$SYSTEM_OVERRIDES"/Gst*.py "$SYSTEM_OVERRIDES"/_gi_gst*.so)
if ((${#sources[@]} == 0)); then
  echo "link_gst_overrides: no GStreamer overrides in $SYSTEM_OVERRIDES (apt-get install python3-gst-1.0); skipping" >&2
  exit 0
fi
linked=0
for src in "${sources[@]}"; do
  dst="$target/$(basename "$src")"
  if [ "$(readlink "$dst" 2>/dev/null || true)" != "$src" ]; then
    ln -sfn "$src" "$dst"
    linked=$((linked + 1))
  fi
done
if ((linked)); then
  echo "link_gst_overrides: linked $linked GStreamer override file(s) into $target"
fi
