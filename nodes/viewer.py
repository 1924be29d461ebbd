"""`Cache Schedule Viewer`: what the last run of a patched model computed, reused, and why."""
from __future__ import annotations

import json
import os
from dataclasses import dataclass

import numpy as np
import torch
from comfy_api.latest import io, ui

import folder_paths

from ..adacache_core import SettingsError
from ..adacache_core import raylight_workers as workers
from ..adacache_core.chart import DETAILS, message_chart, schedule_chart
from ..adacache_core.comfy_bridge import session_of
from ..adacache_core.session import RUNS_KEPT
from ..adacache_core.trace import producer_of
from ..adacache_core.checks import shown
from ..adacache_core.trace import RunTrace, latent_fingerprint
from .types import RayActors


def _fmt(x, unit="", digits=2):
    return "n/a" if x is None else f"{x:.{digits}f}{unit}"


def _moreg_state(trace: RunTrace) -> str:
    """What MoReg did in this run, not only whether it was set: a clip too short for its strides measures
    no motion, and under the speed knob it only measures."""
    moreg = trace.settings.get("moreg")
    if not moreg:
        return "off"
    if all(d.motion is None for d in trace.decisions):
        return "off in this run (set, but no motion was measured)"
    calibration = moreg.get("calibration")
    scale = (f"scale calibrated on {calibration['runs']} run(s) of {calibration['model']}" if calibration
             else f"scale {moreg.get('scale')}")
    if trace.budget is not None:
        return f"measuring only, {scale} (the speed knob chose the steps)"
    return f"on, {scale}"


def _reuse_state(cfg: dict) -> str:
    return "forecast (along the steps)" if cfg.get("reuse") == "forecast" else "hold (the paper)"


def summary_text(label: str, trace: RunTrace, detail: str = DETAILS[0]) -> str:
    """Three plain lines (steps computed, speed-up, what chose the steps) and any warnings; 'engineering' adds the
    settings, codebook, probe and timings behind them."""
    if detail == DETAILS[0]:
        s = trace.summary()
        measured = s["estimated_speedup"]
        lines = [f"{label}: {s['computed_steps']} of {s['total_steps']} steps computed",
                 f"  speed-up: up to {_fmt(s['ideal_speedup'], 'x')}"
                 + (f", {measured:.2f}x measured from this run's timings" if measured else ""),
                 f"  steps chosen by {trace.steps_chosen_by()}"]
        return "\n".join(lines + [f"  note: {n}" for n in trace.warnings()])
    s = trace.summary()
    branches = ", ".join(f"{b} {v['computed']}/{v['total']}" for b, v in s["per_branch"].items())
    cfg = trace.settings
    lines = [
        f"{label}: {trace.architecture}, {trace.steps} steps",
        f"  computed {s['computed_steps']}/{s['total_steps']} steps ({branches}) -> ideal speedup {_fmt(s['ideal_speedup'], 'x')}",
        f"  time per computed call {_fmt(s['seconds_per_computed_call'], ' s', 3)}, per reused call "
        f"{_fmt(s['seconds_per_reused_call'], ' s', 3)} -> estimated speedup {_fmt(s['estimated_speedup'], 'x')}; "
        f"cache {_fmt(s.get('cache_mb'), ' MB', 1)}",
        f"  preset {cfg.get('preset')}, codebook used [{', '.join(f'{t:.3g}:{n}' for t, n in trace.codebook)}], "
        f"probe blocks {cfg.get('probe_blocks')} ({trace.probe_residual or 'block'} residual), "
        f"MoReg {_moreg_state(trace)}, reuse {_reuse_state(cfg)}",
    ]
    if trace.budget is not None:
        lines.append(f"  speed knob {cfg.get('target_speedup')}x -> {trace.budget} computed steps planned, "
                     f"{s['computed_steps']} computed")
    lines += [f"  computed whatever the schedule said: step{'s' if len(steps) > 1 else ''} "
              f"{', '.join(str(step + 1) for step in steps)} ({why})" for why, steps in trace.forced_by_reason().items()]
    lines += [f"  note: {n}" for n in trace.notes]
    return "\n".join(lines)


@dataclass
class RecordedRuns:
    """Runs recorded in another process (a Raylight worker), standing in for a session's ``runs``."""

    runs: list[RunTrace]

    @property
    def last_run(self) -> RunTrace | None:
        return self.runs[-1] if self.runs else None


def worker_runs(ray_actors) -> list[RecordedRuns]:
    """Every Raylight worker's recorded runs, in rank order (they come back as plain dicts)."""
    return [RecordedRuns([RunTrace.from_dict(d) for d in runs]) for runs in workers.run_on_workers(ray_actors, "run_data")]


def agreement(ranks: list[RecordedRuns], trace: RunTrace) -> str:
    """One line: whether every worker computed the steps rank 0 did for the run that made ``trace``'s output."""
    differing = []
    for rank, recorded in enumerate(ranks[1:], start=1):
        same_output = [t for t in recorded.runs if t.output_latent == trace.output_latent]
        theirs = same_output[-1] if same_output else recorded.last_run
        if theirs is None or theirs.computed_steps() != trace.computed_steps():
            differing.append(f"worker {rank} computed {None if theirs is None else theirs.computed_steps()}")
    if differing:
        return (f"WARNING: the workers disagree: worker 0 computed {trace.computed_steps()}, " + "; ".join(differing)
                + " (is sequence_parallel 'off' on the Raylight patch node? it must be 'auto' or 'always' there)")
    return f"Raylight: all {len(ranks)} workers computed the same steps"


def collect_runs(models: list, samples) -> tuple[list[tuple[str, RunTrace]], list[str]]:
    """For each connected model, the recorded run that produced ``samples``, or a message why there is none.

    A model is a ModelPatcher, or the :class:`RecordedRuns` of a Raylight worker.

    A run is matched by the fingerprint of its output (the sampler's samples), or, for a model whose
    output went on into another model's run (Wan 2.2's high-noise expert), by that run's input. So
    two samplers on one model, a re-queue served from ComfyUI's cache, or an interrupted run never
    show another run's schedule.
    """
    target = latent_fingerprint(samples.get("samples") if isinstance(samples, dict) else None)
    names = {i: f"model {i}" if len(models) > 1 else "model" for i in range(1, len(models) + 1)}
    sessions = {i: m if isinstance(m, RecordedRuns) else session_of(m) for i, m in enumerate(models, start=1) if m is not None}
    found: dict[int, RunTrace] = {}
    for wanted in ("output", "chained"):
        inputs = {trace.input_latent for trace in found.values()}
        for i, session in sessions.items():
            if session is None or i in found:
                continue
            for trace in reversed(session.runs):
                if trace.output_latent is not None and (trace.output_latent == target if wanted == "output"
                                                        else trace.output_latent in inputs):
                    found[i] = trace
                    break
    messages = []
    producer = producer_of(target)
    for i, session in sessions.items():
        if session is None:
            messages.append(f"{names[i]}: not patched by AdaCache Patch Model (or its model type is unsupported), nothing was cached")
        elif i not in found and producer is not None and producer == getattr(session, "label", None):
            messages.append(f"{names[i]}: these samples are ComfyUI's cached output of an earlier run of this model, whose run "
                            f"data are no longer kept (a patched model keeps its last {RUNS_KEPT} runs); queue the sampler "
                            "again with any input changed (e.g. its seed) to see its schedule")
        elif not session.runs:
            messages.append(f"{names[i]}: not sampled yet; connect the sampler's output to 'samples' so the viewer runs after it")
        elif i not in found:
            interrupted = "" if session.last_run.finished else " (its last run was interrupted)"
            messages.append(f"{names[i]}: none of its last {len(session.runs)} runs produced these samples{interrupted}; "
                            "connect the output of the sampler that used this model to 'samples'")
    return [(names[i], found[i]) for i in sorted(found)], messages


MAX_PREFIX_BYTES = 200  # with ComfyUI's counter and '.json' a name stays under the 255 bytes file systems allow


def check_prefix(prefix) -> None:
    """Refuse a ``filename_prefix`` the run data could not be saved under, as ComfyUI's
    ``get_save_image_path`` reads it (a name that normalises to '.' would write a hidden '._00001_.json')."""
    example = "like 'adacache/schedule' (saved as adacache/schedule_00001_.json in ComfyUI's output folder)"
    if not isinstance(prefix, str):
        raise SettingsError(f"filename_prefix: must be text {example}, got {type(prefix).__name__} {shown(prefix)}")
    if "\x00" in prefix:
        raise SettingsError(f"filename_prefix: holds a NUL character, which no file name may hold; write a name {example}")
    if len(prefix.encode("utf-8", "surrogatepass")) > MAX_PREFIX_BYTES:
        raise SettingsError(f"filename_prefix: {len(prefix)} characters is too long; at most {MAX_PREFIX_BYTES} "
                            f"(bytes in UTF-8: fewer for non-Latin letters), {example}")
    normalised = os.path.normpath(prefix)
    if os.path.basename(normalised).strip() in ("", ".", ".."):
        raise SettingsError(f"filename_prefix: needs a file name at its end, got {shown(prefix)}; write one {example}")
    output = folder_paths.get_output_directory()
    if os.path.commonpath((output, os.path.abspath(os.path.join(output, os.path.dirname(normalised))))) != output:
        raise SettingsError(f"filename_prefix: {shown(prefix)} leads outside ComfyUI's output folder; write a name {example}")


def to_image(rgb: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(rgb.astype(np.float32) / 255.0).unsqueeze(0)


class CacheScheduleViewer(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="AdaCacheScheduleViewer",
            display_name="Cache Schedule Viewer",
            category="AdaCache",
            description="Shows the sampling run of an AdaCache-patched model that produced 'samples': a headline (steps "
                        "computed of total, speed-up, reuse mode, MoReg on or off) over one strip per model, a cell per "
                        "step, blue where the model ran and grey where it was reused; cond and uncond get a row each only "
                        "where they differ. 'detail: engineering' adds the distance measured after each computed step "
                        "over the codebook's bands, and MoReg's multiplier. The summary text has the numbers; the run data "
                        "are saved as JSON for bug reports and comparisons.",
            inputs=[
                io.Model.Input("model", optional=True,
                               tooltip="The model from AdaCache Patch Model that the sampler used (Raylight: connect ray_actors instead)."),
                io.Latent.Input("samples", tooltip="The sampler's output: the viewer shows the run that produced exactly these "
                                                    "samples (and runs after sampling)."),
                io.Model.Input("model_2", optional=True, tooltip="Optional second patched model (e.g. Wan 2.2's low-noise expert)."),
                io.String.Input("filename_prefix", default="adacache/schedule",
                                tooltip="Where the run data JSON goes, inside ComfyUI's output folder."),
                io.Combo.Input("detail", options=list(DETAILS), default=DETAILS[0], optional=True,
                               tooltip="'overview': which steps were computed and which reused, under a headline. "
                                       "'engineering': also the change measured after each step and MoReg's factor."),
                RayActors.Input("ray_actors", optional=True,
                                tooltip="Raylight: the workers from AdaCache Patch Model (Raylight). The viewer fetches every "
                                        "worker's run data, shows worker 0's schedule and checks that all decided the same."),
            ],
            outputs=[io.Image.Output(display_name="chart", tooltip="The picture shown on the node."),
                     io.String.Output(display_name="summary", tooltip="Computed/total steps, speedups, settings.")],
            is_output_node=True,
        )

    @classmethod
    def validate_inputs(cls, filename_prefix: str | None = None, ray_actors=None) -> bool | str:
        """At queue time: a file name the run data could not be saved under, and a typed-in ``ray_actors``
        (only through the API; never workers), refused before any Ray call."""
        try:
            if filename_prefix is not None:
                check_prefix(filename_prefix)
            if ray_actors is not None:
                workers.checked_workers(ray_actors)
        except SettingsError as e:
            return str(e)
        return True

    @classmethod
    def execute(cls, samples, filename_prefix: str, model=None, model_2=None, ray_actors=None,
                detail: str = DETAILS[0]) -> io.NodeOutput:
        check_prefix(filename_prefix)
        ranks = worker_runs(ray_actors) if ray_actors is not None else []
        models = [m for m in (model, model_2, ranks[0] if ranks else None) if m is not None]
        runs, messages = collect_runs(models, samples)
        if not models:
            messages = ["connect the patched model (or, under Raylight, ray_actors) to show its schedule"]
        elif ranks and runs and runs[-1][1] in ranks[0].runs:
            messages.append(agreement(ranks, runs[-1][1]))
        text = "\n".join([summary_text(name, trace, detail) for name, trace in runs] + messages)
        chart = schedule_chart(runs, detail) if runs else message_chart("\n".join(messages))
        if runs:
            folder, filename, counter, _, _ = folder_paths.get_save_image_path(filename_prefix, folder_paths.get_output_directory())
            path = os.path.join(folder, f"{filename}_{counter:05}_.json")
            with open(path, "w") as f:
                json.dump({name: trace.to_dict() for name, trace in runs}, f, indent=1)
            text += f"\nrun data: {os.path.relpath(path, folder_paths.get_output_directory())}"
        image = to_image(chart)
        return io.NodeOutput(image, text, ui={**ui.PreviewImage(image, cls=cls).as_dict(), "text": (text,)})
