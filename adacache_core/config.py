"""The settings of AdaCache Patch Model, declared once (:data:`PATCH_SETTINGS`), and the config a patched
model runs with, built from them and checked eagerly (checks.py)."""
from __future__ import annotations

from dataclasses import dataclass, field

from .checks import WHOLE, SettingsError, check_number, shown, text_input
from .codebooks import CUSTOM_PRESET, DEFAULT_PRESET, PRESETS, Codebook, preset_name, resolve_codebook
from .moreg_settings import MoRegConfig


def parse_probe_blocks(text: str, num_blocks: int | None) -> tuple[int, ...]:
    """'' or 'middle' -> the middle block (as the paper: block 13 of 28); else '3, 7' (0-based).

    ``num_blocks`` None (the model is not known yet, as when a prompt is queued): syntax only.
    """
    raw = text_input("probe_blocks", text, "13")
    text = raw.strip().lower()
    if text in ("", "middle"):
        return (0,) if num_blocks is None else (num_blocks // 2 - 1 if num_blocks > 1 else 0,)
    parts = [p.strip() for p in text.split(",") if p.strip()]
    if not parts or not all(WHOLE.fullmatch(p) and len(p) <= 4 for p in parts):
        raise SettingsError(f"probe_blocks: cannot read {shown(raw)}; write 'middle' or block numbers like '13' or '6, 13'")
    blocks = tuple(sorted({int(p) for p in parts}))
    if num_blocks is not None and blocks[-1] >= num_blocks:
        raise SettingsError(f"probe_blocks: {shown(raw)} must be block numbers from 0 to {num_blocks - 1} "
                            f"(this model has {num_blocks} blocks)")
    return blocks


SEQUENCE_PARALLEL_MODES = ("auto", "always", "off")  # see sequence_parallel.py
# What the probe measures: the whole block's output minus its input (the default) or the block's gated
# self-attention residual (the paper's 't-attn', where the architecture table knows the gate).
PROBE_RESIDUALS = ("block", "attention")
DEFAULT_PROBE_RESIDUAL = "block"
# What a reused step adds: the last computed residual as it is (the paper), or a forecast from the
# last two computed ones along the steps (span_memory.py).
REUSE_MODES = ("hold", "forecast")
DEFAULT_REUSE = "forecast"
# The speed knob (step_ranking.py): a newly placed node asks for this speed-up; 0 turns the knob off
# and lets the preset's codebook decide (the paper's adaptive schedule); up to 1 asks for no
# speed-up (every step computed), so the whole widget range means something.
DEFAULT_SPEEDUP = 2.0
MAX_SPEEDUP = 50.0


@dataclass(frozen=True)
class Setting:
    """One input of AdaCache Patch Model: its default and what it allows (the node's widget is built from it).

    ``options``: the allowed texts (a combo); ``bounds``: (low, high) of a number; neither: free text
    checked by its parser, or a switch.
    """

    default: object
    options: tuple[str, ...] | None = None
    bounds: tuple[float, float] | None = None


# AdaCache Patch Model's settings, in the node's order, each declared here once: the node, its
# Raylight variant and AdaCache Calibrate build their inputs from it, and settings_from_inputs
# (which AdaCacheConfig checks) fills in what an input leaves out from it.
PATCH_SETTINGS: dict[str, Setting] = {
    "preset": Setting(DEFAULT_PRESET, options=(*PRESETS, CUSTOM_PRESET)),
    "custom_codebook": Setting(PRESETS[DEFAULT_PRESET].describe()),
    "probe_blocks": Setting("middle"),
    "start_percent": Setting(0.0, bounds=(0.0, 1.0)),
    "end_percent": Setting(1.0, bounds=(0.0, 1.0)),
    "offload_cache": Setting(False),
    "target_speedup": Setting(DEFAULT_SPEEDUP, bounds=(0.0, MAX_SPEEDUP)),
    "sequence_parallel": Setting("auto", options=SEQUENCE_PARALLEL_MODES),
    "probe_residual": Setting(DEFAULT_PROBE_RESIDUAL, options=PROBE_RESIDUALS),
    "reuse": Setting(DEFAULT_REUSE, options=REUSE_MODES),
}


def _default(name: str):
    return PATCH_SETTINGS[name].default


@dataclass(frozen=True)
class AdaCacheConfig:
    """Everything a patched model needs to decide, step by step, what to compute and what to reuse."""

    codebook: Codebook = field(default_factory=lambda: PRESETS[DEFAULT_PRESET])
    preset: str = DEFAULT_PRESET
    probe_blocks: tuple[int, ...] = ()
    start_percent: float = _default("start_percent")
    end_percent: float = _default("end_percent")
    offload_cache: bool = _default("offload_cache")
    moreg: MoRegConfig | None = None
    target_speedup: float | None = None  # the speed knob: compute steps / target steps as planned (at most all); None: the codebook decides
    sequence_parallel: str = _default("sequence_parallel")  # when to measure over a process group
    probe_residual: str = _default("probe_residual")
    reuse: str = _default("reuse")
    searched_plan: object | None = None  # a searched_plan.SearchedPlan (which builds on this module): the knob's
    # drop order, searched on this model by AdaCache Plan Search, in place of the estimate from the step sizes
    exact_steps: frozenset[int] | None = None  # compute exactly these steps and reuse the others, whatever the knob and
    # the codebook say: AdaCache Plan Search's trial runs and the benchmarks sample chosen schedules so

    def __post_init__(self) -> None:
        if self.target_speedup is not None and (isinstance(self.target_speedup, bool)
                                                or not isinstance(self.target_speedup, (int, float))
                                                or not 0.0 < self.target_speedup <= MAX_SPEEDUP):
            raise SettingsError(f"target_speedup: {shown(self.target_speedup)} must be a number from 0 to {MAX_SPEEDUP:g} "
                                "(0: off, the preset decides; up to 1: every step computed; above 1: the speed-up asked)")
        if self.searched_plan is not None and self.target_speedup is None:
            raise SettingsError("plan: a searched plan tells the speed knob which steps to give up first, and "
                                "target_speedup is 0 (off: the preset decides); set target_speedup above 0, or "
                                "disconnect the plan")
        if self.searched_plan is not None and self.searched_plan.reuse != self.reuse:
            raise SettingsError(f"plan: it was searched with reuse '{self.searched_plan.reuse}' and this node reuses "
                                f"with '{self.reuse}'; set reuse to '{self.searched_plan.reuse}', or search again")
        for name in ("start_percent", "end_percent"):
            check_number(name, getattr(self, name), *PATCH_SETTINGS[name].bounds)
        if self.start_percent > self.end_percent:
            raise SettingsError(f"start_percent ({self.start_percent}) must not be after end_percent ({self.end_percent})")
        if not self.probe_blocks:
            raise SettingsError("probe_blocks: at least one probe block is needed")
        for name in ("probe_residual", "sequence_parallel", "reuse"):
            value, allowed = getattr(self, name), PATCH_SETTINGS[name].options
            if not isinstance(value, str) or value not in allowed:
                raise SettingsError(f"{name}: {shown(value)} is not one of {list(allowed)}")

    def codebook_for(self, steps: int) -> Codebook:
        return self.codebook.rescaled(steps)

    def describe(self) -> dict:
        """The run data's settings: every Patch Model setting by name (the codebook as used), MoReg and the plan."""
        settings = {name: getattr(self, name) for name in PATCH_SETTINGS if name != "custom_codebook"}
        return settings | {
            "probe_blocks": list(self.probe_blocks),
            "codebook": self.codebook.describe(),
            "codebook_reference_steps": self.codebook.reference_steps,
            "moreg": None if self.moreg is None else self.moreg.describe(),
            "plan": None if self.searched_plan is None else self.searched_plan.describe(),
        }


def settings_from_inputs(moreg: MoRegConfig | None = None, num_blocks: int | None = None, searched_plan=None,
                         **inputs) -> AdaCacheConfig:
    """AdaCacheConfig from AdaCache Patch Model's inputs by name (also sent as plain data to Raylight's
    workers); an input left out takes its default from :data:`PATCH_SETTINGS`. ``num_blocks`` None
    (the model is not known yet): probe blocks are checked for their form only. ``searched_plan``: a
    parsed searched_plan.SearchedPlan, or None."""
    unknown = [name for name in inputs if name not in PATCH_SETTINGS]
    if unknown:
        raise TypeError(f"settings_from_inputs: unknown input(s) {unknown}")
    values = {name: setting.default for name, setting in PATCH_SETTINGS.items()} | inputs
    as_given = {name: values[name] for name in PATCH_SETTINGS if name not in _CONVERTED}  # checked by the config
    return AdaCacheConfig(
        **as_given,
        target_speedup=values["target_speedup"] or None,  # 0: off
        codebook=resolve_codebook(values["preset"], values["custom_codebook"]),
        preset=preset_name(values["preset"]),
        probe_blocks=parse_probe_blocks(values["probe_blocks"], num_blocks),
        moreg=moreg,
        searched_plan=searched_plan,
    )


# Settings that settings_from_inputs turns into other values (a codebook, block numbers, None for 0); the others
# go to the config as given.
_CONVERTED = ("target_speedup", "preset", "custom_codebook", "probe_blocks")
