"""Reference: the official AdaCache schedule, restated from its code for replay in the tests.

Source read: github.com/AdaCache-DiT/AdaCache at commit 2c6d3ca0 (the code released with the paper,
arXiv 2411.02397). Decision rule: ``opensora_base/opensora/models/stdit/stdit3.py``,
``STDiT3Block.compute_next_step`` (lines 126-182) and the step bookkeeping of ``STDiT3Block.forward``
(lines 207-221, 254-269, 326-338) with ``STDiT3.forward``'s ``ada_dict`` (lines 655-666). Settings:
``configs/sample_adacache.py`` and ``configs/sample_adacache_moreg.py``. This is a transcription of
that logic into plain Python over given measurements (no tensors, no copied code), and every number
below is written from those files (file and line beside it), never taken from the pack, so that a
changed preset or constant in the pack shows up as a disagreement.

The rule: 1-based ``fwd_id``; steps 1, N-1 and N always computed; the next computed step is the
previous one plus the rate chosen last time (``attn_cache_rate``, starting at 1); no decision at the
first computed step (no cache yet); the distance is the change divided by ``prev_rate``, averaged over
the probe blocks in order; MoReg: factor inside ``moreg_steps`` (inclusive, 1-based), 1.0 outside,
gradient ``mograd_mul * (factor - prev_moreg) / prev_rate`` at every decision (``prev_moreg`` starts
at 1.0 and is then the factor), distance times ``factor + |gradient|``; the rate of the last probe
block decides; lookup: strict ``<`` against the first five thresholds in order, else the last rate.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

# The codebooks (threshold: rate), named as the official config's comments name them, with the step count
# each was set for: configs/sample_adacache.py line 14 ("30-step, fast codebook"), line 15 ("30-step,
# slow codebook"), line 16 ("100-step"; also the default of STDiT3Block, stdit3.py line 54).
OFFICIAL_CODEBOOKS = {
    "30-step, fast": (30, {0.08: 6, 0.16: 5, 0.24: 4, 0.32: 3, 0.40: 2, 1.00: 1}),
    "30-step, slow": (30, {0.08: 3, 0.16: 2, 0.24: 1, 0.32: 1, 0.40: 1, 1.00: 1}),
    "100-step": (100, {0.03: 12, 0.05: 10, 0.07: 8, 0.09: 6, 0.11: 4, 1.00: 3}),
}
# moreg_steps, configs/sample_adacache_moreg.py line 21 "(10, 90) # 100-step" and line 20 "# 30-step (4,26)"
OFFICIAL_MOREG_STEPS = {100: (10, 90), 30: (4, 26)}
# moreg_hyp = (0.385, 8, 1, 2), line 22, read at stdit3.py line 156 as (scale, power, divisor): its
# fourth value is never read. mograd_mul = 10, line 23. moreg_strides = [1], line 19.
OFFICIAL_MOREG_HYP = (0.385, 8.0, 1.0)
OFFICIAL_MOGRAD_MUL = 10.0
OFFICIAL_MOREG_STRIDES = (1,)
# The probe: cache_res = 't-attn' (the temporal block's gated self-attention residual) at
# cache_loc = [13] of 28 blocks (depth=28, stdit3.py line 721), configs/sample_adacache.py lines 12-13; the change is an L1 norm
# (norm_ord 1, passed at stdit3.py line 262; norms at line 136).
OFFICIAL_PROBE_BLOCK = 13


def official_forced_steps(num_steps: int) -> tuple[int, ...]:
    """``skip_cache_steps = [1, N - 1, N]`` (1-based), stdit3.py line 209: always computed."""
    return (1, num_steps - 1, num_steps)


@dataclass
class OfficialMoReg:
    scale: float = OFFICIAL_MOREG_HYP[0]
    power: float = OFFICIAL_MOREG_HYP[1]
    divisor: float = OFFICIAL_MOREG_HYP[2]
    grad_mul: float = OFFICIAL_MOGRAD_MUL
    fractions: tuple[float, float] = (0.1, 0.9)  # for step counts the paper gives no window for

    def steps_for(self, num_steps: int) -> tuple[float, float]:
        if num_steps in OFFICIAL_MOREG_STEPS and self.fractions == (0.1, 0.9):
            return OFFICIAL_MOREG_STEPS[num_steps]
        return self.fractions[0] * num_steps, self.fractions[1] * num_steps


@dataclass
class OfficialDecision:
    step: int  # 0-based
    prev_rate: int
    distance: float
    moreg: float
    mograd: float
    rate: int


@dataclass
class OfficialRun:
    computed: list[int] = field(default_factory=list)  # 0-based
    decisions: list[OfficialDecision] = field(default_factory=list)


def compute_next_step(changes: list[float], motions: list[float | None], codebook: dict[float, int], prev_rate: int,
                      fwd_id: int, num_steps: int, moreg: OfficialMoReg | None, prev_moreg: list[float]) -> tuple[int, OfficialDecision]:
    """One decision; ``changes``/``motions`` per probe block in block order (prev_moreg: per block, updated)."""
    avg, count = 0.0, 0
    rate = prev_rate
    record = None
    for probe, change in enumerate(changes):
        cache_diff = change / prev_rate
        cache_diff = (cache_diff + count * avg) / (count + 1)
        avg, count = cache_diff, count + 1
        if moreg is not None:
            first, last = moreg.steps_for(num_steps)
            if first <= fwd_id <= last:
                factor = ((motions[probe] / moreg.scale) ** moreg.power) / moreg.divisor
            else:
                factor = 1.0
            mograd = moreg.grad_mul * (factor - prev_moreg[probe]) / prev_rate
            prev_moreg[probe] = factor
            multiplier = factor + abs(mograd)
        else:
            factor, mograd, multiplier = 1.0, 0.0, 1.0
        cache_diff = cache_diff * multiplier
        thresholds, rates = list(codebook), list(codebook.values())
        # stdit3.py lines 171-177: if/elif over the first five thresholds, else the last rate
        rate = next((r for t, r in zip(thresholds[:5], rates) if cache_diff < t), rates[-1])
        record = OfficialDecision(step=fwd_id - 1, prev_rate=prev_rate, distance=cache_diff, moreg=factor, mograd=mograd, rate=rate)
    return rate, record


def official_schedule(num_steps: int, codebook: dict[float, int], measure: Callable[[int, int], tuple[list[float], list]],
                      moreg: OfficialMoReg | None = None, probes: int = 1) -> OfficialRun:
    """Run the official bookkeeping for ``num_steps`` steps.

    ``measure(step, previous_computed_step)`` (0-based) returns the probe blocks' relative changes
    and motion scores at a computed step that has a cached residual to compare with.
    """
    run = OfficialRun()
    rate, prev_compute_step, has_cache = 1, 0, False
    prev_moreg = [1.0] * probes
    skip_cache_steps = official_forced_steps(num_steps)
    for fwd_id in range(1, num_steps + 1):
        if fwd_id == prev_compute_step + rate or fwd_id in skip_cache_steps:
            if has_cache:
                changes, motions = measure(fwd_id - 1, prev_compute_step - 1)
                rate, record = compute_next_step(changes, motions, codebook, rate, fwd_id, num_steps, moreg, prev_moreg)
                run.decisions.append(record)
            has_cache = True
            prev_compute_step = fwd_id
            run.computed.append(fwd_id - 1)
    return run
