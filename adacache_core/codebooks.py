"""Codebooks: the paper's rule for how many steps to reuse at a measured distance, its three presets, and
the parser of a custom one."""
from __future__ import annotations

import math
import re
from dataclasses import dataclass

from .checks import WHOLE, SettingsError, shown, text_input

MAX_CODEBOOK_PAIRS = 32
_NUMBER = re.compile(r"(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][-+]?[0-9]+)?")  # unambiguous: linear time


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

def parse_codebook(text: str) -> Codebook:
    """Parse ``"0.08:6, 0.16:5, 1.0:1"`` into a Codebook used as written (no rescaling)."""
    example = "0.08:6, 0.16:5, 1.0:1"
    pairs = [p.strip() for p in text_input("custom_codebook", text, example).split(",") if p.strip()]
    if not pairs:
        raise SettingsError(f"custom_codebook: empty; write pairs like {example!r}")
    if len(pairs) > MAX_CODEBOOK_PAIRS:
        raise SettingsError(f"custom_codebook: at most {MAX_CODEBOOK_PAIRS} 'threshold:length' pairs, got {len(pairs)}")
    entries = []
    for pair in pairs:
        threshold, _, length = (part.strip() for part in pair.partition(":"))
        if not (_NUMBER.fullmatch(threshold) and WHOLE.fullmatch(length) and len(length) <= 6):
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
