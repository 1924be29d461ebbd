#!/usr/bin/env bash
# The main job: set up (idempotent), then run the demo workflow patched and unpatched.
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/setup_env.sh
exec .venv/bin/python tools/run_demo.py "$@"
