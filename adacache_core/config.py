"""Settings of a run: codebooks and their presets, MoReg settings, validation.

Everything here is plain data, checked eagerly: a bad value raises :class:`SettingsError` naming
the input and the allowed values, so the node can refuse it before sampling starts.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass, field


class SettingsError(ValueError):
    """A user-facing setting is invalid; the message names the input and what is allowed."""


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

    @property
    def lengths(self) -> tuple[int, ...]:
        return tuple(n for _, n in self.entries)

    def lookup(self, distance: float) -> int:
        for threshold, length in self.entries:
            if distance < threshold:
                return length
        return self.entries[-1][1]

    def rescaled(self, steps: int) -> "Codebook":
        """The codebook for a run of ``steps`` steps (see README, "Any step count").

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


PRESETS: dict[str, Codebook] = {
    "fast (paper, 30 steps)": Codebook(((0.08, 6), (0.16, 5), (0.24, 4), (0.32, 3), (0.40, 2), (1.00, 1)), 30),
    "slow (paper, 30 steps)": Codebook(((0.08, 3), (0.16, 2), (0.24, 1), (0.32, 1), (0.40, 1), (1.00, 1)), 30),
    "paper (100 steps)": Codebook(((0.03, 12), (0.05, 10), (0.07, 8), (0.09, 6), (0.11, 4), (1.00, 3)), 100),
}
CUSTOM_PRESET = "custom"
DEFAULT_PRESET = "fast (paper, 30 steps)"

_PAIR = re.compile(r"^\s*([0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)\s*:\s*([0-9]+)\s*$")


def parse_codebook(text: str) -> Codebook:
    """Parse ``"0.08:6, 0.16:5, 1.0:1"`` into a Codebook used as written (no rescaling)."""
    pairs = [p for p in (text or "").split(",") if p.strip()]
    if not pairs:
        raise SettingsError("custom_codebook: empty; write pairs like '0.08:6, 0.16:5, 1.0:1'")
    entries = []
    for pair in pairs:
        m = _PAIR.match(pair)
        if not m:
            raise SettingsError(
                f"custom_codebook: cannot read {pair.strip()!r}; each entry is 'threshold:length' "
                "with a threshold >= 0 and a whole length >= 1, e.g. '0.08:6, 0.16:5, 1.0:1'")
        entries.append((float(m.group(1)), int(m.group(2))))
    try:
        return Codebook(tuple(entries))
    except SettingsError as e:
        raise SettingsError(f"custom_{e}") from None


def resolve_codebook(preset: str, custom: str = "") -> Codebook:
    if preset == CUSTOM_PRESET:
        return parse_codebook(custom)
    if preset not in PRESETS:
        raise SettingsError(f"preset: {preset!r} is not one of {[*PRESETS, CUSTOM_PRESET]}")
    return PRESETS[preset]


def _check_fraction(name: str, value: float) -> None:
    if not (0.0 <= value <= 1.0):
        raise SettingsError(f"{name}: {value} must be between 0.0 and 1.0")


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
    at 1.0. See :meth:`active_at` for the window.
    """

    scale: float = 0.385
    power: float = 8.0
    divisor: float = 1.0
    grad_mul: float = 10.0
    strides: tuple[int, ...] = (1,)
    window: tuple[float, float] = DEFAULT_MOREG_WINDOW

    def __post_init__(self) -> None:
        if not self.scale > 0:
            raise SettingsError(f"motion_scale: {self.scale} must be > 0")
        if not self.power > 0:
            raise SettingsError(f"motion_power: {self.power} must be > 0")
        if not self.divisor > 0:
            raise SettingsError(f"motion_divisor: {self.divisor} must be > 0")
        if self.grad_mul < 0:
            raise SettingsError(f"gradient_weight: {self.grad_mul} must be >= 0")
        if not self.strides or any(int(s) != s or s < 1 for s in self.strides):
            raise SettingsError(f"frame_strides: {self.strides} must be whole numbers >= 1, e.g. '1' or '1, 2'")
        _check_fraction("window_start", self.window[0])
        _check_fraction("window_end", self.window[1])
        if self.window[0] > self.window[1]:
            raise SettingsError(f"window_start ({self.window[0]}) must not be after window_end ({self.window[1]})")

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
    try:
        strides = tuple(int(s) for s in (text or "").replace(" ", "").split(",") if s)
    except ValueError:
        raise SettingsError(f"frame_strides: cannot read {text!r}; write whole numbers >= 1 like '1' or '1, 2'") from None
    if not strides or min(strides) < 1:
        raise SettingsError(f"frame_strides: {text!r} must list whole numbers >= 1, like '1' or '1, 2'")
    return strides


def parse_probe_blocks(text: str, num_blocks: int) -> tuple[int, ...]:
    """'' or 'middle' -> the middle block (as the paper: block 13 of 28); else '3, 7' (0-based)."""
    text = (text or "").strip().lower()
    if text in ("", "middle"):
        return (num_blocks // 2 - 1 if num_blocks > 1 else 0,)
    try:
        blocks = tuple(sorted({int(b) for b in text.replace(" ", "").split(",") if b}))
    except ValueError:
        raise SettingsError(f"probe_blocks: cannot read {text!r}; write 'middle' or block numbers like '13' or '6, 13'") from None
    bad = [b for b in blocks if not 0 <= b < num_blocks]
    if not blocks or bad:
        raise SettingsError(f"probe_blocks: {text!r} must be block numbers from 0 to {num_blocks - 1} (this model has {num_blocks} blocks)")
    return blocks


SEQUENCE_PARALLEL_MODES = ("auto", "always", "off")  # see sequence_parallel.py
# What the probe measures: the block's gated self-attention residual (the paper's 't-attn', where the
# architecture table knows the gate) or the whole block's output minus its input.
PROBE_RESIDUALS = ("attention", "block")


@dataclass(frozen=True)
class AdaCacheConfig:
    """Everything a patched model needs to decide, step by step, what to compute and what to reuse."""

    codebook: Codebook = field(default_factory=lambda: PRESETS[DEFAULT_PRESET])
    preset: str = DEFAULT_PRESET
    probe_blocks: tuple[int, ...] = ()
    start_percent: float = 0.0
    end_percent: float = 1.0
    offload_cache: bool = False
    moreg: MoRegConfig | None = None
    target_speedup: float | None = None  # speed-budget mode: compute steps / target steps, codebook unused
    sequence_parallel: str = "auto"  # one of SEQUENCE_PARALLEL_MODES: when to measure over a process group
    probe_residual: str = "attention"  # one of PROBE_RESIDUALS

    def __post_init__(self) -> None:
        if self.target_speedup is not None and not (1.0 <= self.target_speedup <= 50.0):
            raise SettingsError(f"target_speedup: {self.target_speedup} must be 0 (off) or between 1.0 and 50.0")
        _check_fraction("start_percent", self.start_percent)
        _check_fraction("end_percent", self.end_percent)
        if self.start_percent > self.end_percent:
            raise SettingsError(f"start_percent ({self.start_percent}) must not be after end_percent ({self.end_percent})")
        if not self.probe_blocks:
            raise SettingsError("probe_blocks: at least one probe block is needed")
        if self.probe_residual not in PROBE_RESIDUALS:
            raise SettingsError(f"probe_residual: {self.probe_residual!r} is not one of {list(PROBE_RESIDUALS)}")
        if self.sequence_parallel not in SEQUENCE_PARALLEL_MODES:
            raise SettingsError(f"sequence_parallel: {self.sequence_parallel!r} is not one of {list(SEQUENCE_PARALLEL_MODES)}")

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
            "moreg": None if self.moreg is None else {
                "scale": self.moreg.scale, "power": self.moreg.power, "divisor": self.moreg.divisor,
                "grad_mul": self.moreg.grad_mul, "strides": list(self.moreg.strides), "window": list(self.moreg.window)},
        }
