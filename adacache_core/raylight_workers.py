"""AdaCache inside Raylight's Ray workers, where the models of a multi-GPU ComfyUI run live.

Raylight keeps every rank's ModelPatcher inside a Ray actor; ComfyUI's graph only holds the actors
(``RAY_ACTORS``). An actor's ``model_function_runner(fn, *args)`` replaces its model with
``fn(model, *args)``, and ``model_function_runner_get_values`` returns what ``fn`` returns. Two
things stand between a ComfyUI pack and that door:

* ComfyUI imports the pack under its folder's path, a module name no worker can import, so any
  function of the pack pickled by reference fails there (ModuleNotFoundError). The function sent
  is therefore a copy whose only globals are builtins (:func:`by_value`, pickled by value), and it
  imports the core from a zip of ``adacache_core`` sent along with it (:func:`core_archive`). A
  worker on another machine thus needs nothing installed (Ray's ``py_modules`` is not needed: the
  zip is the pack's py_module, sent per call), and every worker runs the main process's code.
* Only plain data crosses: the node's inputs and MoReg's settings as dicts in (:func:`moreg_to_plain`),
  run data as dicts (:meth:`RunTrace.to_dict`) out.

The functions a worker can be asked to run are the module-level ``install``, ``describe`` and
``run_data`` below; :func:`run_on_workers` asks every worker of a ``RAY_ACTORS`` value.
"""
from __future__ import annotations

import builtins
import functools
import hashlib
import io
import types
import zipfile
from pathlib import Path

from .checks import SettingsError, shown

CORE = Path(__file__).resolve().parent


@functools.cache
def core_archive() -> tuple[str, bytes]:
    """(digest, zip bytes) of this ``adacache_core``: what a worker imports (zipimport, pure Python)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(CORE.glob("*.py")):
            archive.writestr(zipfile.ZipInfo(f"adacache_core/{path.name}", (1980, 1, 1, 0, 0, 0)), path.read_bytes())
    data = buffer.getvalue()
    return hashlib.sha256(data).hexdigest()[:16], data


def on_worker(model, archive: tuple[str, bytes], call: str, *args):
    """Runs inside a worker (sent by value): import the core from ``archive``, then ``call`` of this module.

    The zip is written once per version to the worker's temp folder; a worker that ran another
    version before forgets its modules first (a later install takes the earlier one's hooks off).
    The process-wide settings namespace (``...sequence_parallel:registry``) is kept.
    """
    import importlib
    import os
    import sys
    import tempfile

    digest, data = archive
    path = os.path.join(tempfile.gettempdir(), f"adacache_core-{digest}.zip")
    if not os.path.exists(path):
        partial = f"{path}.{os.getpid()}"
        with open(partial, "wb") as f:
            f.write(data)
        os.replace(partial, path)
    if path not in sys.path:
        for name in [n for n in sys.modules if (n == "adacache_core" or n.startswith("adacache_core.")) and ":" not in n]:
            del sys.modules[name]
        sys.path[:] = [p for p in sys.path if not os.path.basename(p).startswith("adacache_core-")]
        sys.path.insert(0, path)
    return getattr(importlib.import_module("adacache_core.raylight_workers"), call)(model, *args)


def by_value(function):
    """A copy of ``function`` that pickles by value: its globals are the builtins only."""
    return types.FunctionType(function.__code__, {"__builtins__": builtins, "__name__": "adacache_on_worker"},
                              function.__name__, function.__defaults__)


def run_on_workers(ray_actors: dict, call: str, *args, replace_model: bool = False) -> list:
    """Run ``call(model, *args)`` of this module in every worker of ``ray_actors``; their results, in rank order.

    ``replace_model``: the result becomes the worker's model (``install``); otherwise it is returned.
    """
    actors = checked_workers(ray_actors)
    import ray

    method = "model_function_runner" if replace_model else "model_function_runner_get_values"
    entry = by_value(on_worker)
    archive = ray.put(core_archive())
    return ray.get([getattr(actor, method).remote(entry, archive, call, *args) for actor in actors])


def checked_workers(ray_actors) -> list:
    """The Ray actors of a ``RAY_ACTORS`` value, checked before any Ray call: the first Ray call on
    anything else would start a whole local Ray cluster in ComfyUI's process, then fail."""
    actors = ray_actors.get("workers") if isinstance(ray_actors, dict) else None
    if not (isinstance(actors, list) and actors and all(_is_actor(actor) for actor in actors)):
        got = "no workers" if actors == [] else f"{type(ray_actors).__name__} {shown(ray_actors)}"
        raise SettingsError(f"ray_actors: needs Raylight's workers, got {got}; connect the RAY_ACTORS output of "
                            "Ray Load Diffusion Model (or of a Raylight LoRA or patch node)")
    return actors


def _is_actor(value) -> bool:
    try:
        from ray.actor import ActorHandle  # imports Ray's client code only: starts nothing
    except ImportError:
        return False
    return isinstance(value, ActorHandle)


def moreg_to_plain(moreg) -> dict | None:
    """MoReg's settings (a :class:`MoRegConfig` or None) as plain data, for the workers."""
    if moreg is None:
        return None
    return {"scale": moreg.scale, "power": moreg.power, "divisor": moreg.divisor, "grad_mul": moreg.grad_mul,
            "strides": list(moreg.strides), "window": list(moreg.window),
            "calibration": None if moreg.calibration is None else moreg.calibration.to_text()}


def moreg_from_plain(data: dict | None):
    """The :class:`MoRegConfig` that :func:`moreg_to_plain` wrote (None for None)."""
    if data is None:
        return None
    from .calibration import MotionCalibration
    from .moreg_settings import MoRegConfig

    calibration = data["calibration"]
    return MoRegConfig(scale=data["scale"], power=data["power"], divisor=data["divisor"], grad_mul=data["grad_mul"],
                       strides=tuple(data["strides"]), window=tuple(data["window"]),
                       calibration=None if calibration is None else MotionCalibration.from_text(calibration))


# -- run inside a worker (through on_worker) --------------------------------------------------------
def install(model, inputs: dict, moreg: dict | None, label: str, plan: str | None = None):
    """The worker's model with AdaCache: AdaCache Patch Model's ``execute`` on plain data (``plan``: its text).

    An AdaCache already on the model (an earlier run of the node, with other settings) is taken
    off first, so the node re-patches instead of stacking two AdaCaches.
    """
    from .comfy_bridge import patch_model, without_adacache
    from .config import settings_from_inputs
    from .searched_plan import SearchedPlan

    moreg_config = moreg_from_plain(moreg)
    searched_plan = None if plan is None else SearchedPlan.from_text(plan)
    patched, _ = patch_model(without_adacache(model), lambda blocks: settings_from_inputs(
        **inputs, moreg=moreg_config, searched_plan=searched_plan, num_blocks=blocks), label=label)
    return patched


def plan_refusal(model, plan: str) -> str | None:
    """Why the worker's model cannot follow ``plan`` (searched on another model), or None. Asked before
    installing, so the node refuses with the plan's own message instead of a worker's traceback."""
    from .architectures import find_architecture
    from .comfy_bridge import blocks_of
    from .searched_plan import SearchedPlan

    diffusion_model = model.get_model_object("diffusion_model")
    arch = find_architecture(diffusion_model)
    if arch is None:
        return None  # unsupported: install leaves it unpatched, with its warning
    try:
        SearchedPlan.from_text(plan).check_model(arch.name, len(blocks_of(arch, diffusion_model)))
    except SettingsError as e:
        return str(e)
    return None


def describe(model) -> dict:
    """What the worker's model is and whether AdaCache is on it (the reason where it is not)."""
    from .architectures import unsupported_reason
    from .comfy_bridge import session_of

    session = session_of(model)
    if session is not None:
        return {"patched": True, "architecture": session.arch.name}
    return {"patched": False, "reason": unsupported_reason(model.get_model_object("diffusion_model"))}


def run_data(model) -> list[dict]:
    """The worker's recorded runs (oldest first), as plain dicts."""
    from .comfy_bridge import session_of

    session = session_of(model)
    return [] if session is None else [trace.to_dict() for trace in session.runs]
