"""`AdaCache Plan Search`: find by sampling which steps this model can give up first, for the speed knob."""
from __future__ import annotations

import dataclasses
import logging
import math
import time

import comfy.sample
import comfy.samplers
import comfy.utils
import torch
from comfy_api.latest import io

from ..adacache_core import SettingsError
from ..adacache_core.comfy_bridge import patch_model
from ..adacache_core.checks import is_whole, shown
from ..adacache_core.config import PATCH_SETTINGS, settings_from_inputs
from ..adacache_core.measures import psnr
from ..adacache_core.schedule import forced_steps
from ..adacache_core.searched_plan import SearchedPlan, search_drop_order, search_runs
from .patch_model import setting_input
from .types import check_sampling_choices, node_label

LOG = logging.getLogger("adacache")
MIN_SEARCH_STEPS = 4  # the first and the last two steps are always computed: fewer leave nothing to give up
MAX_SEARCH_STEPS = 100  # the last levels ask the knob for steps / 3, within config.MAX_SPEEDUP (50)
MAX_CANDIDATES = 50


class AdaCachePlanSearch(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="AdaCachePlanSearch",
            display_name="AdaCache Plan Search",
            category="AdaCache",
            description=(
                "Finds which steps your model can skip with the least harm, by sampling: it starts with every step "
                "computed and gives up one step at a time, each time the one whose loss changes the result least. "
                "Connect 'plan' to AdaCache Patch Model: its speed knob then skips the steps found here instead of "
                "its own estimate: closer to the uncached video at the same speed, and steadier as you turn the "
                "knob.\n\n"
                "It samples about candidates x steps runs per prompt, each from the step it tries giving up (the "
                "steps before it are taken from the run it differs from): run it once on a small latent (few frames, "
                "low resolution) with the steps, sampler and scheduler you will use, and keep the plan. The plan only "
                "applies to runs with the same steps and scheduler on this model."),
            inputs=[
                io.Model.Input("model", tooltip="The model you will patch with AdaCache (unpatched here)."),
                io.Conditioning.Input("positive", tooltip="A typical prompt of yours, or the one you will render: the knob "
                                      "is steadiest on the prompts searched, on other seeds too."),
                io.Conditioning.Input("second_positive", optional=True,
                                      tooltip="Optional: another typical prompt, say a still scene if the first moves. "
                                              "The plan then suits both; the search takes twice as long."),
                io.Conditioning.Input("negative", tooltip="The negative prompt you use (for CFG)."),
                io.Latent.Input("latent_image", tooltip="A small latent of your model (few frames, low resolution): "
                                                        "the search samples it many times. The plan works at any size."),
                io.Int.Input("seed", default=0, min=0, max=0xffffffffffffffff, control_after_generate=False,  # one search
                             tooltip="The noise the search samples. ComfyUI reuses the plan until an input changes."),
                io.Int.Input("steps", default=30, min=MIN_SEARCH_STEPS, max=MAX_SEARCH_STEPS,
                             tooltip="As in your sampler: the plan applies to runs with this many steps."),
                io.Float.Input("cfg", default=5.0, min=0.0, max=100.0, step=0.1, round=0.01, tooltip="As in your sampler."),
                io.Combo.Input("sampler_name", options=comfy.samplers.KSampler.SAMPLERS, tooltip="As in your sampler."),
                io.Combo.Input("scheduler", options=comfy.samplers.KSampler.SCHEDULERS,
                               tooltip="As in your sampler: the plan applies to runs with this scheduler."),
                setting_input("reuse"),
                io.Int.Input("candidates", default=6, min=1, max=MAX_CANDIDATES,
                             tooltip="Steps tried before each step is given up (the most promising first): about "
                                     "this many runs per step. Up: a longer search, sharper on average but less "
                                     "steady along the knob."),
            ],
            outputs=[io.String.Output("plan", tooltip="Connect to the 'plan' input of AdaCache Patch Model.")],
            hidden=[io.Hidden.unique_id],
        )

    @classmethod
    def validate_inputs(cls, steps: int | None = None, candidates: int | None = None, sampler_name: str | None = None,
                        scheduler: str | None = None, reuse: str | None = None, cfg: float | None = None) -> bool | str:
        """At queue time, where these are typed in (linked ones arrive as None here, and are checked in execute)."""
        try:
            check_counts(MIN_SEARCH_STEPS if steps is None else steps, 1 if candidates is None else candidates)
            check_cfg(0.0 if cfg is None else cfg)
            check_sampling_choices(sampler_name, scheduler, reuse)
        except SettingsError as e:
            return str(e)
        return True

    @classmethod
    def execute(cls, model, positive, negative, latent_image, seed: int, steps: int, cfg: float, sampler_name: str,
                scheduler: str, candidates: int, reuse: str = PATCH_SETTINGS["reuse"].default,
                second_positive=None) -> io.NodeOutput:
        check_counts(steps, candidates)
        check_cfg(cfg)
        check_sampling_choices(sampler_name, scheduler, reuse)
        check_unpatched(model)
        check_latent(model, latent_image)
        prompts = [positive] if second_positive is None else [positive, second_positive]
        plan = search_plan(model, prompts, negative, latent_image, seed, steps, cfg, sampler_name, scheduler, candidates,
                           reuse, node_label(cls, "plan search"))
        return io.NodeOutput(plan.to_text())


def search_plan(model, prompts: list, negative, latent_image: dict, seed: int, steps: int, cfg: float, sampler_name: str,
                scheduler: str, candidates: int, reuse: str, label: str, replay: bool = True) -> SearchedPlan:
    """The search itself, on inputs checked before. ``replay``: each run takes back the model outputs of the run it
    differs from for the steps before the one it gives up (replay.py); False samples every run from scratch (the same
    plan, bit for bit, with more model work: benchmarks/bench_plan_search.py compares the two)."""
    patched, session = patch_model(model, lambda num_blocks: settings_from_inputs(
        reuse=reuse, target_speedup=1.0, num_blocks=num_blocks), label=label)
    if session is None:
        raise SettingsError("model: AdaCache Plan Search samples through AdaCache's hooks and this model is not "
                            "supported (see the warning above); connect a model AdaCache Patch Model supports")
    session.quiet = True  # one console line per level instead of one per run
    session.record = replay  # each run recorded: the next level's runs replay its steps up to where they differ
    forced = set(forced_steps(steps))
    progress = SearchProgress(len(prompts) * (1 + search_runs(steps - len(forced), candidates)), steps)

    def sample(prompt):
        """As ComfyUI's KSampler samples (nodes.common_ksampler), the progress counted over the whole search."""
        latent = comfy.sample.fix_empty_latent_channels(patched, latent_image["samples"])
        noise = comfy.sample.prepare_noise(latent, seed, latent_image.get("batch_index"))
        samples = comfy.sample.sample(patched, noise, steps, cfg, sampler_name, scheduler, prompt, negative, latent,
                                      noise_mask=latent_image.get("noise_mask"), callback=progress.at_step,
                                      disable_pbar=True, seed=seed)
        progress.run_done()
        return samples

    references = []
    recordings = []  # per prompt: the run of the schedule the next candidates give one step up from
    for prompt in prompts:
        references.append(sample(prompt))  # target_speedup 1: every step computed, as unpatched
        recordings.append(session.last_recording)
    if not all(bool(torch.isfinite(reference).all()) for reference in references):
        raise SettingsError("model: its uncached run of these inputs gives NaN or infinite values, so no step can be "
                            "scored; check the model, the prompts and cfg with a KSampler first")
    sigmas = session.last_run.sigmas
    shape = "x".join(map(str, latent_image["samples"].shape[2:]))
    plan = SearchedPlan(session.arch.name, session.num_blocks, reuse, tuple(sigmas), drop_order=(),
                        searched_on=f"{steps} steps {sampler_name}/{scheduler}, cfg {cfg:g}, seed {seed}, "
                                    f"latent {shape}, {len(prompts)} prompt(s), {candidates} candidates")

    level = {"kept": frozenset(range(steps)), "runs": recordings, "best": None}

    def score(computed: frozenset[int]) -> float:
        """Mean PSNR over the prompts of runs that compute exactly ``computed``. Each run replays the run of
        the level's schedule up to the step it gives up (the same latents, so the same outputs: replay.py)."""
        dropped = min(level["kept"] - computed)
        total, runs = 0.0, []
        for prompt, reference, earlier in zip(prompts, references, level["runs"]):
            session.compute_exactly(computed, earlier if replay else None, dropped)
            value = psnr(sample(prompt), reference)
            total += -math.inf if math.isnan(value) else value  # NaN in the samples: the worst score
            got = set(session.last_run.computed_steps())
            if got != computed:
                raise RuntimeError(f"AdaCache Plan Search: asked to compute steps {sorted(computed)}, the run "
                                   f"computed {sorted(got)}")
            runs.append(session.last_recording)
        value = total / len(prompts)
        best = level["best"]  # the level's best so far, as search_drop_order picks it (a tie: the earlier step)
        if best is None or value > best[0] or (value == best[0] and dropped < best[1]):
            level["best"] = (value, dropped, computed, runs)
        return value

    def report(computed: int, dropped: int, value: float, runs: int) -> None:
        _, chosen, kept, recorded = level["best"]
        if chosen != dropped:  # cannot happen while score() picks as search_drop_order does; then replay nothing
            recorded = [None] * len(prompts)
        level.update(kept=kept, runs=recorded, best=None)  # the chosen schedule's runs: the next reference
        LOG.info("AdaCache Plan Search: %d of %d steps computed, %.2f dB (step %d given up); %s", computed, steps,
                 value, dropped, progress.describe())

    found = search_drop_order(sigmas, forced, reuse == "forecast", candidates, score, on_level=report)
    LOG.info("AdaCache Plan Search: done, %d runs in %s; %d model calls taken back from earlier runs instead of "
             "computed", progress.done, _duration(time.monotonic() - progress.started), session.model_calls_replayed)
    return dataclasses.replace(plan, drop_order=tuple(s for s, _ in found), psnr=tuple(v for _, v in found))


class SearchProgress:
    """One progress bar for the whole search (sampling steps of every run), and the time left."""

    def __init__(self, runs: int, steps: int):
        self.runs, self.steps, self.done = runs, steps, 0
        self.bar = comfy.utils.ProgressBar(runs * steps)
        self.started = time.monotonic()

    def at_step(self, step: int, *_) -> None:
        """The sampler's callback: ``step`` of the current run done."""
        self.bar.update_absolute(self.done * self.steps + step + 1)

    def run_done(self) -> None:
        self.done += 1
        self.bar.update_absolute(self.done * self.steps)

    def describe(self) -> str:
        left = (time.monotonic() - self.started) / max(self.done, 1) * (self.runs - self.done)
        return f"{self.done} of {self.runs} runs, about {_duration(left)} left"


def _duration(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 90 else f"{seconds / 60:.0f} min"


def check_cfg(cfg) -> None:
    """Refuse a cfg the search cannot score with: ComfyUI's range check lets NaN through."""
    if isinstance(cfg, bool) or not isinstance(cfg, (int, float)) or not 0.0 <= cfg <= 100.0:
        raise SettingsError(f"cfg: must be a number from 0 to 100, got {shown(cfg)}")


def check_unpatched(model) -> None:
    """Refuse a model AdaCache already patched: its knob would act inside every run of the search."""
    if model.model_options.get("transformer_options", {}).get("adacache") is not None:
        raise SettingsError("model: it already went through AdaCache Patch Model; connect Plan Search to the model "
                            "before that node (the loader's output, after LoRAs)")


def check_latent(model, latent_image) -> None:
    """Refuse a latent this model cannot sample (the wrong channel count) or one holding NaN or infinite values."""
    import comfy.sample

    samples = latent_image.get("samples") if isinstance(latent_image, dict) else None
    if not isinstance(samples, torch.Tensor):
        raise SettingsError("latent_image: connect a LATENT (an empty latent node of this model)")
    channels = model.get_model_object("latent_format").latent_channels
    fitted = comfy.sample.fix_empty_latent_channels(model, samples)  # as KSampler: an empty latent takes any count
    if fitted.ndim < 2 or fitted.shape[1] != channels:
        raise SettingsError(f"latent_image: has {samples.shape[1] if samples.ndim > 1 else 0} channels, this model's "
                            f"latents have {channels}; use this model's empty latent node or its VAE Encode")
    if not bool(torch.isfinite(samples).all()):
        raise SettingsError("latent_image: holds NaN or infinite values; the search could score nothing")


def check_counts(steps: int, candidates: int) -> None:
    """Refuse a step count or candidate count the search cannot use, before anything samples."""
    for name, value, low, high, why in (
            ("steps", steps, MIN_SEARCH_STEPS, MAX_SEARCH_STEPS, "the first and last two steps are always computed, and each step "
                                                   "costs about 'candidates' sampling runs"),
            ("candidates", candidates, 1, MAX_CANDIDATES, "how many steps are tried before each one is given up")):
        if not is_whole(value, low, high):
            raise SettingsError(f"{name}: must be a whole number from {low} to {high} ({why}), got {shown(value)}")
