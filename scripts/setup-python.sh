#!/usr/bin/env bash
# Creates the project virtualenv (.venv) with the Python packages that the
# examples and the test jobs import: numpy, vtk and SimpleITK, as shipped with
# 3D Slicer's PythonSlicer, pytest, and the burst package (python/, editable).
# Safe to run again: it only installs what changed.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
venv="$root/.venv"
py="${PYTHON:-python3}"
if [ ! -x "$venv/bin/python" ]; then
  echo "creating $venv"
  "$py" -m venv "$venv"
fi
stamp="$venv/.requirements.sha256"
want="$(cat "$root/requirements.txt" "$root/python/pyproject.toml" | sha256sum | cut -d' ' -f1)"
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$root/requirements.txt"
  # The burst package, editable: changes to python/burst take effect at once.
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check \
    --no-deps -e "$root/python"
  echo "$want" >"$stamp"
fi
"$venv/bin/python" -c 'import numpy, vtk, SimpleITK, pytest, burst' 
