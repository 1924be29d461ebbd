"""Settings of a run: codebooks and their presets, MoReg settings, validation.

Everything here is plain data, checked eagerly: a bad value raises :class:`SettingsError` naming
the input and the allowed values, so the node can refuse it before sampling starts.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass, field


class SettingsError(ValueError):
    """A user-facing setting is invalid; the message names the input and what is allowed.

    The message is made safe to print first (:func:`printable`): it may quote what the user typed, and
    ComfyUI logs it; a character the log cannot encode would fail inside ComfyUI's own error handler.
    """

    def __init__(self, message: str):
        super().__init__(printable(message))


def printable(text: str) -> str:
    """``text`` with every character that is not printable (control characters, lone surrogates) escaped."""
    return "".join(c if c.isprintable() or c == "\n" else ascii(c)[1:-1] for c in text)


@dataclass(frozen=True)
class Codebook:
    """Ascending distance thresholds -> reuse lengths (how many steps until the next computed one).

    ``reference_steps`` is the step count the codebook was tuned for (None: use as written).
    Lookup is strict: the first threshold with ``distance < threshold`` wins; a distance at or above
    every threshold gets the last length (as ``compute_next_step`` in the paper's code).
    """

    entries: tuple[tuple[float, int], ...]
    reference_steps: int | None = None

    def __post_init__(self) -> None:
        if not self.entries:
            raise SettingsError("codebook: needs at least one 'threshold:length' pair")
        last = -math.inf
        for threshold, length in self.entries:
            if not math.isfinite(threshold) or threshold < 0:
                raise SettingsError(f"codebook: threshold {threshold} must be a finite number >= 0")
            if threshold <= last:
                raise SettingsError(f"codebook: thresholds must be strictly ascending, got {self.thresholds}")
            if int(length) != length or length < 1:
                raise SettingsError(f"codebook: reuse length {length} must be a whole number >= 1")
            last = threshold

    @property
    def thresholds(self) -> tuple[float, ...]:
        return tuple(t for t, _ in self.entries)

    def lookup(self, distance: float) -> int:
        for threshold, length in self.entries:
            if distance < threshold:
                return length
        return self.entries[-1][1]

    def rescaled(self, steps: int) -> "Codebook":
        """The codebook for a run of ``steps`` steps (see docs/how_it_works.md, "Any step count").

        Reuse lengths scale with the step count (a length of 6 in 30 steps skips a fifth of the
        schedule; in 60 steps the same fifth is 12 steps). The distance is a per-step rate, so
        when steps get denser it shrinks in proportion: thresholds scale by reference/steps. The
        paper's own 30- and 100-step codebooks follow this rule closely (thresholds about 3x apart).
        """
        if self.reference_steps is None or steps == self.reference_steps:
            return self
        ratio = steps / self.reference_steps
        return Codebook(
            tuple((t / ratio, max(1, round(n * ratio))) for t, n in self.entries),
            reference_steps=steps,
        )

    def describe(self) -> str:
        return ", ".join(f"{t:g}:{n}" for t, n in self.entries)


# The paper's three codebooks, as a ladder from the fastest to the most faithful (at 30 steps the
# 100-step codebook rescaled lies between the two 30-step ones; the share of steps each computes on
# the tiny models: benchmarks/RESULTS.md).
PRESETS: dict[str, Codebook] = {
    "paper: fastest (fast, 30 steps)": Codebook(((0.08, 6), (0.16, 5), (0.24, 4), (0.32, 3), (0.40, 2), (1.00, 1)), 30),
    "paper: middle (100 steps)": Codebook(((0.03, 12), (0.05, 10), (0.07, 8), (0.09, 6), (0.11, 4), (1.00, 3)), 100),
    "paper: slowest (slow, 30 steps)": Codebook(((0.08, 3), (0.16, 2), (0.24, 1), (0.32, 1), (0.40, 1), (1.00, 1)), 30),
}
# The names before the ladder (workflows saved with them load with the same codebook).
RENAMED_PRESETS = {
    "fast (paper, 30 steps)": "paper: fastest (fast, 30 steps)",
    "paper (100 steps)": "paper: middle (100 steps)",
    "slow (paper, 30 steps)": "paper: slowest (slow, 30 steps)",
}
CUSTOM_PRESET = "custom"
DEFAULT_PRESET = "paper: fastest (fast, 30 steps)"

MAX_TEXT = 1000  # characters of a list input (codebook, probe blocks, frame strides)
MAX_CODEBOOK_PAIRS = 32
MAX_FRAME_STRIDES = 8
_NUMBER = re.compile(r"(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][-+]?[0-9]+)?")  # unambiguous: linear time
_WHOLE = re.compile(r"[0-9]+")


def shown(value, limit: int = 40) -> str:
    """A value for an error message: its repr, cut to a short prefix (inputs can be megabytes)."""
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + f"... ({len(text)} characters)"


def _text(name: str, value, example: str) -> str:
    """A list input as text, refused when it is not text or longer than :data:`MAX_TEXT`."""
    if value is None:
        return ""
    if not isinstance(value, str):
        raise SettingsError(f"{name}: must be text like {example!r}, got {type(value).__name__} {shown(value)}")
    if len(value) > MAX_TEXT:
        raise SettingsError(f"{name}: at most {MAX_TEXT} characters, like {example!r}; got {len(value)}")
    return value


def parse_codebook(text: str) -> Codebook:
    """Parse ``"0.08:6, 0.16:5, 1.0:1"`` into a Codebook used as written (no rescaling)."""
    example = "0.08:6, 0.16:5, 1.0:1"
    pairs = [p.strip() for p in _text("custom_codebook", text, example).split(",") if p.strip()]
    if not pairs:
        raise SettingsError(f"custom_codebook: empty; write pairs like {example!r}")
    if len(pairs) > MAX_CODEBOOK_PAIRS:
        raise SettingsError(f"custom_codebook: at most {MAX_CODEBOOK_PAIRS} 'threshold:length' pairs, got {len(pairs)}")
    entries = []
    for pair in pairs:
        threshold, _, length = (part.strip() for part in pair.partition(":"))
        if not (_NUMBER.fullmatch(threshold) and _WHOLE.fullmatch(length) and len(length) <= 6):
            raise SettingsError(
                f"custom_codebook: cannot read {shown(pair)}; each entry is 'threshold:length' "
                f"with a threshold >= 0 and a whole length from 1 to 999999, e.g. {example!r}")
        entries.append((float(threshold), int(length)))
    try:
        return Codebook(tuple(entries))
    except SettingsError as e:
        raise SettingsError(f"custom_{e}") from None


def preset_name(preset: str) -> str:
    """The preset's current name: a name from before the renaming gives its new one."""
    return RENAMED_PRESETS.get(preset, preset) if isinstance(preset, str) else preset


def resolve_codebook(preset: str, custom: str = "") -> Codebook:
    if preset == CUSTOM_PRESET:
        return parse_codebook(custom)
    preset = preset_name(preset)
    if not isinstance(preset, str) or preset not in PRESETS:
        raise SettingsError(f"preset: {shown(preset)} is not one of {[*PRESETS, CUSTOM_PRESET]}")
    return PRESETS[preset]


def is_whole(value, low: int, high: int) -> bool:
    """A whole number (an int, not a bool) from ``low`` to ``high``: the one test every count the pack reads passes."""
    return isinstance(value, int) and not isinstance(value, bool) and low <= value <= high


def check_number(name: str, value, low: float, high: float) -> float:
    """``value`` as a finite float within [low, high], or a SettingsError naming the input and the range."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise SettingsError(f"{name}: must be a number from {low:g} to {high:g}, got {type(value).__name__} {shown(value)}")
    if not (low <= value <= high):  # NaN fails this too
        raise SettingsError(f"{name}: {shown(value)} must be a number from {low:g} to {high:g}")
    return float(value)


def _check_fraction(name: str, value: float) -> None:
    check_number(name, value, 0.0, 1.0)


# Allowed ranges of MoReg's numeric inputs (the node declares the same): within them the factor
# ((m / scale) ** power) / divisor stays finite, m being a motion score in [0, 1].
MOREG_RANGES = {"motion_scale": (0.001, 10.0), "motion_power": (0.1, 32.0), "motion_divisor": (0.01, 100.0),
                "gradient_weight": (0.0, 100.0)}
MOREG_INPUTS = {"motion_scale": "scale", "motion_power": "power", "motion_divisor": "divisor", "gradient_weight": "grad_mul"}
MAX_STRIDE = 999

# The paper's own MoReg windows, as 1-based step numbers (``moreg_steps`` in the official configs):
# (10, 90) of 100 steps, (4, 26) of 30. The default window fractions give exactly these there.
PAPER_MOREG_WINDOWS = {100: (10, 90), 30: (4, 26)}
DEFAULT_MOREG_WINDOW = (0.1, 0.9)


@dataclass(frozen=True)
class MoRegConfig:
    """Motion regularisation (paper section 3.2): high motion -> larger distance -> more compute.

    As ``compute_next_step`` of the official code: at every decision the distance is multiplied by
    ``factor + |grad_mul * (factor - previous factor) / steps between|``, where ``factor`` is
    ``((m / scale) ** power) / divisor`` inside the window (m: the probe residual's frame-to-frame
    motion score, averaged over the strides) and exactly 1.0 outside it; the previous factor starts
    at 1.0. See :meth:`active_at` for the window. With a ``calibration`` (calibration.py) the scale
    is not a constant: at each step it is the motion measured on this model at that noise level.
    """

    scale: float = 0.385
    power: float = 8.0
    divisor: float = 1.0
    grad_mul: float = 10.0
    strides: tuple[int, ...] = (1,)
    window: tuple[float, float] = DEFAULT_MOREG_WINDOW
    calibration: object | None = None  # a calibration.MotionCalibration (which builds on this module, not it on that)

    def __post_init__(self) -> None:
        for name, attribute in MOREG_INPUTS.items():
            check_number(name, getattr(self, attribute), *MOREG_RANGES[name])
        if not self.strides or len(self.strides) > MAX_FRAME_STRIDES or any(
                not is_whole(s, 1, MAX_STRIDE) for s in self.strides):
            raise SettingsError(f"frame_strides: {shown(self.strides)} must be 1 to {MAX_FRAME_STRIDES} whole numbers "
                                f"from 1 to {MAX_STRIDE}, e.g. '1' or '1, 2'")
        _check_fraction("window_start", self.window[0])
        _check_fraction("window_end", self.window[1])
        if self.window[0] > self.window[1]:
            raise SettingsError(f"window_start ({self.window[0]}) must not be after window_end ({self.window[1]})")
        if self.calibration is not None and self.calibration.strides != self.strides:
            raise SettingsError(f"frame_strides: the calibration was measured with frame_strides "
                                f"{list(self.calibration.strides)}, these settings use {list(self.strides)}; use the same")

    def scale_at(self, sigma: float) -> float:
        """The motion score that counts as normal (factor 1) at this noise level."""
        return self.scale if self.calibration is None else self.calibration.scale_at(sigma)

    def describe(self) -> dict:
        return {"scale": "calibrated" if self.calibration is not None else self.scale, "power": self.power,
                "divisor": self.divisor, "grad_mul": self.grad_mul, "strides": list(self.strides),
                "window": list(self.window),
                "calibration": None if self.calibration is None else self.calibration.describe()}

    def window_steps(self, steps: int) -> tuple[float, float]:
        """The window as 1-based step numbers (first, last), both included, as the official code counts.

        The default window at 30 and 100 steps is the paper's own (:data:`PAPER_MOREG_WINDOWS`);
        otherwise the fractions of the step count (0.1 and 0.9 of 100 are the paper's 10 and 90).
        """
        if tuple(self.window) == DEFAULT_MOREG_WINDOW and steps in PAPER_MOREG_WINDOWS:
            return PAPER_MOREG_WINDOWS[steps]
        eps = 1e-9  # 0.1 * 30 is 3.0000000000000004 in floating point
        return self.window[0] * steps - eps, self.window[1] * steps + eps

    def active_at(self, step: int, steps: int) -> bool:
        """Whether 0-based ``step`` of a ``steps``-step run is inside the window (step + 1 = ``fwd_id``)."""
        first, last = self.window_steps(steps)
        return first <= step + 1 <= last


def parse_strides(text: str) -> tuple[int, ...]:
    """'1, 2' -> (1, 2): ascending, duplicates dropped, at most :data:`MAX_FRAME_STRIDES` of them."""
    example = "1, 2"
    parts = [p.strip() for p in _text("frame_strides", text, example).split(",") if p.strip()]
    if not parts or not all(_WHOLE.fullmatch(p) and len(p) <= 3 for p in parts):
        raise SettingsError(f"frame_strides: cannot read {shown(text)}; write whole numbers from 1 to {MAX_STRIDE} "
                            f"like '1' or {example!r}")
    strides = tuple(sorted({int(p) for p in parts}))
    if strides[0] < 1 or len(strides) > MAX_FRAME_STRIDES:
        raise SettingsError(f"frame_strides: {shown(text)} must list 1 to {MAX_FRAME_STRIDES} different whole numbers "
                            f"from 1 to {MAX_STRIDE}, like '1' or {example!r}")
    return strides


def parse_probe_blocks(text: str, num_blocks: int | None) -> tuple[int, ...]:
    """'' or 'middle' -> the middle block (as the paper: block 13 of 28); else '3, 7' (0-based).

    ``num_blocks`` None (the model is not known yet, as when a prompt is queued): syntax only.
    """
    raw = _text("probe_blocks", text, "13")
    text = raw.strip().lower()
    if text in ("", "middle"):
        return (0,) if num_blocks is None else (num_blocks // 2 - 1 if num_blocks > 1 else 0,)
    parts = [p.strip() for p in text.split(",") if p.strip()]
    if not parts or not all(_WHOLE.fullmatch(p) and len(p) <= 4 for p in parts):
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
# last two computed ones (span_memory.py), extrapolated along FORECAST_VARIABLES.
REUSE_MODES = ("hold", "forecast")
DEFAULT_REUSE = "forecast"
# The speed knob (speed_plan.py): a newly placed node asks for this speed-up; 0 turns the knob off
# and lets the preset's codebook decide (the paper's adaptive schedule); up to 1 asks for no
# speed-up (every step computed), so the whole widget range means something.
DEFAULT_SPEEDUP = 2.0
MAX_SPEEDUP = 50.0
FORECAST_VARIABLES = ("sigma", "step")


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
    forecast_variable: str = "step"  # one of FORECAST_VARIABLES: what the forecast extrapolates along (the node
    # always uses the step index; benchmarks compare it with sigma)

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
        for name, allowed in (*((n, PATCH_SETTINGS[n].options) for n in ("probe_residual", "sequence_parallel", "reuse")),
                              ("forecast_variable", FORECAST_VARIABLES)):
            value = getattr(self, name)
            if not isinstance(value, str) or value not in allowed:
                raise SettingsError(f"{name}: {shown(value)} is not one of {list(allowed)}")

    def codebook_for(self, steps: int) -> Codebook:
        return self.codebook.rescaled(steps)

    def describe(self) -> dict:
        return {
            "preset": self.preset,
            "codebook": self.codebook.describe(),
            "codebook_reference_steps": self.codebook.reference_steps,
            "probe_blocks": list(self.probe_blocks),
            "probe_residual": self.probe_residual,
            "start_percent": self.start_percent,
            "end_percent": self.end_percent,
            "offload_cache": self.offload_cache,
            "target_speedup": self.target_speedup,
            "sequence_parallel": self.sequence_parallel,
            "reuse": self.reuse,
            "forecast_variable": self.forecast_variable if self.reuse == "forecast" else None,
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
    return AdaCacheConfig(
        target_speedup=values["target_speedup"] or None,
        codebook=resolve_codebook(values["preset"], values["custom_codebook"]),
        preset=preset_name(values["preset"]),
        probe_blocks=parse_probe_blocks(values["probe_blocks"], num_blocks),
        start_percent=values["start_percent"],
        end_percent=values["end_percent"],
        offload_cache=values["offload_cache"],
        moreg=moreg,
        searched_plan=searched_plan,
        sequence_parallel=values["sequence_parallel"],
        probe_residual=values["probe_residual"],
        reuse=values["reuse"],
    )
