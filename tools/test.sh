#!/usr/bin/env bash
# Set up (idempotent) and run the test suite on the real ComfyUI runtime.
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/setup_env.sh
exec .venv/bin/python -m pytest tests "$@"
