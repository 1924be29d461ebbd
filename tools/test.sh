#!/usr/bin/env bash
# Set up (idempotent) and run the test suite on the real ComfyUI runtime: first on the pinned ComfyUI
# 0.3.75, then on the 2026 ComfyUI 0.20.1 of ../shared/third_party. Arguments go to pytest (both runs).
#
#   COMFYUI_PATH=/path/to/ComfyUI bash tools/test.sh   one run, on that ComfyUI
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -n "${COMFYUI_PATH:-}" ]; then
  bash tools/setup_env.sh
  exec .venv/bin/python -m pytest tests "$@"
fi

newer=../shared/third_party/comfyui-0.20.1
status=0
bash tools/setup_env.sh
echo "== the tests on the pinned ComfyUI 0.3.75"
.venv/bin/python -m pytest tests "$@" || status=$?
if [ -f "$newer/comfy/model_patcher.py" ]; then
  newer=$(cd "$newer" && pwd)
  echo "== the tests on ComfyUI 0.20.1 ($newer)"
  COMFYUI_PATH="$newer" bash tools/setup_env.sh
  # what is the same on every ComfyUI (tests marked `once`) ran above
  ADACACHE_SECOND_COMFYUI=1 COMFYUI_PATH="$newer" .venv/bin/python -m pytest tests "$@" || status=$?
elif [ "${CI:-}" = true ]; then
  echo "== ComfyUI 0.20.1 is not at $newer (../shared/third_party): CI needs it" >&2
  status=1
else
  echo "== ComfyUI 0.20.1 is not at $newer (../shared/third_party): its run is left out"
fi
exit "$status"
