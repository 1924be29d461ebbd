"""Boot one real, headless ComfyUI for the whole test session (see tools/comfy_runtime.py)."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
sys.path.append(str(REPO))  # appended, never first: ComfyUI's `nodes` must win over the pack's `nodes/`
sys.path.append(str(REPO / "tests"))


def pytest_collection_modifyitems(config, items):
    """tools/test.sh's run on a second ComfyUI skips what is the same on every ComfyUI (marked ``once``)."""
    import os

    if os.environ.get("ADACACHE_SECOND_COMFYUI"):
        skip = pytest.mark.skip(reason="the same on every ComfyUI: run once, on the pinned ComfyUI 0.3.75")
        for item in items:
            if item.get_closest_marker("once"):
                item.add_marker(skip)


@pytest.fixture(scope="session")
def runtime(tmp_path_factory):
    import torch

    from tools import comfy_runtime

    torch.set_num_threads(2)
    return comfy_runtime.boot(output_dir=tmp_path_factory.mktemp("comfy-output"))
