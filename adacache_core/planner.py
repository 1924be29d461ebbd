"""One sampling run's measurements and decisions (framework-free).

One ``RunPlanner`` lives for one sampling run of one patched model. The ComfyUI bridge tells it
which step each model call belongs to and hands it the probe measurements of computed steps; the
run's schedule (schedule.py) says which steps compute, and, for the paper's schedule, turns each
computed step's distance (with MoReg's multiplier, here) into the next computed step. Measurements of
a computed step are summed over all calls of that step (cond and uncond, batched or not) and only
turned into a decision when the next step starts, so the order in which branches run does not matter.
"""
from __future__ import annotations

import bisect
import math
from dataclasses import dataclass, field

import torch

from . import measures, schedule, sequence_parallel
from .config import AdaCacheConfig
from .trace import DecisionRecord, RunTrace

NON_FINITE_PROBE = "NaN or infinite values in the probe block's output"


@dataclass
class _StepMeasurement:
    """Norm terms of one computed step, summed over its calls, per probe block (and stride)."""

    change: dict[int, list[torch.Tensor]] = field(default_factory=dict)
    motion: dict[tuple[int, int], list[torch.Tensor]] = field(default_factory=dict)

    @staticmethod
    def _add(store: dict, key, num: torch.Tensor, den: torch.Tensor) -> None:
        acc = store.get(key)
        if acc is None:
            store[key] = [num, den]
        else:
            acc[0] = acc[0] + num
            acc[1] = acc[1] + den

    def add_change(self, probe: int, num: torch.Tensor, den: torch.Tensor) -> None:
        self._add(self.change, probe, num, den)

    def add_motion(self, probe: int, stride: int, num: torch.Tensor, den: torch.Tensor) -> None:
        self._add(self.motion, (probe, stride), num, den)

    def resolve(self, group: "sequence_parallel.Group | None" = None) -> tuple[float | None, float | None, bool]:
        """(relative change averaged over the probes, motion score, whether all terms were finite) as
        Python floats: one sync. Where a term is NaN or infinite both are None: nothing was measurable.

        The motion score is the last probe block's, averaged over the strides: in the official
        code every probe averages the change in turn and the last one's MoReg factor decides.

        With a sequence-parallel ``group`` the terms are first summed over its ranks, in one
        all_reduce. Every rank holds the same keys in the same order (the same calls reach the
        same probes on every rank, empty shards included), so the tensors line up.
        """
        flat = [t for acc in (*self.change.values(), *self.motion.values()) for t in acc]
        if not flat:
            return None, None, True
        if group is not None:
            values = group.reduce_sum(flat)
        else:
            values = torch.stack([t.float().cpu() for t in flat]).tolist()
        if not all(map(math.isfinite, values)):
            return None, None, False
        it = iter(values)
        changes = [measures.ratio(next(it), next(it)) for _ in self.change]
        motions: dict[int, list[float]] = {}
        for probe, _ in self.motion:
            motions.setdefault(probe, []).append(measures.ratio(next(it), next(it)))
        change = sum(changes) / len(changes) if changes else None
        last_probe = motions[max(motions)] if motions else None
        motion = sum(last_probe) / len(last_probe) if last_probe else None
        return change, motion, True


class RunPlanner:
    """One sampling run: which step each call belongs to, the probe measurements of computed steps, MoReg,
    and the run's trace. Which steps compute is the schedule's to say (schedule.py)."""

    def __init__(self, config: AdaCacheConfig, sigmas: list[float], cacheable: list[bool], trace: RunTrace):
        self.config = config
        self.sigmas = sigmas
        self.steps = max(len(sigmas) - 1, 1)
        self.codebook = config.codebook_for(self.steps)
        self.schedule = schedule.choose(config, sigmas, self.steps, schedule.forced_steps(self.steps, cacheable), trace)
        trace.chosen_by = self.schedule.chosen_by
        trace.forced = dict(self.schedule.forced)
        trace.budget = len(self.schedule.computed) if isinstance(self.schedule, schedule.FixedSteps) else None
        self.trace = trace
        self._ascending = sorted(sigmas[: self.steps])
        self._last_computed: int | None = None
        self._prev_factor = 1.0  # MoReg's previous factor; the official code starts it at 1.0
        self._step: int | None = None
        self._computes = True
        self._measure = _StepMeasurement()
        self._group: sequence_parallel.Group | None = None

    def step_of(self, sigma: float) -> int:
        """The step a model call at ``sigma`` belongs to: the last step whose sigma is >= it.

        Calls between two schedule sigmas (multi-stage samplers) belong to the earlier step.
        """
        tol = 1e-5 * max(abs(sigma), 1e-3)
        n_at_or_above = self.steps - bisect.bisect_left(self._ascending, sigma - tol)
        return min(max(n_at_or_above - 1, 0), self.steps - 1)

    def enter(self, step: int) -> bool:
        """Called at every model call; returns whether this step runs the blocks."""
        if step != self._step:
            if self._step is not None and self._computes:
                self._decide(self._step)
            self._step = step
            self._computes = self.schedule.computes(step)
            self._measure = _StepMeasurement()
        return self._computes

    def force(self, step: int, reason: str) -> bool:
        """The bridge computes ``step`` though the schedule reuses it; the trace keeps why. Returns True."""
        self.trace.forced.setdefault(step, reason)
        return True

    @property
    def measuring(self) -> bool:
        return self._computes

    @property
    def wants_motion(self) -> bool:
        return self.config.moreg is not None

    def use_group(self, group: "sequence_parallel.Group | None") -> None:
        """Sum the measurements over this process group (chosen once per run, at its first measurement), or None."""
        self._group = group
        if group is not None:
            self.trace.notes.append(group.describe())

    def add_change(self, probe: int, num: torch.Tensor, den: torch.Tensor) -> None:
        self._measure.add_change(probe, num, den)

    def add_motion(self, probe: int, stride: int, num: torch.Tensor, den: torch.Tensor) -> None:
        self._measure.add_motion(probe, stride, num, den)

    def finish(self, completed: bool = True) -> RunTrace:
        """Close the run: the last computed step's decision; ``completed`` False for an interrupted run."""
        if self._step is not None and self._computes:
            self._decide(self._step)
        self._step = None
        self.trace.finished = completed
        return self.trace

    def _decide(self, step: int) -> None:
        change, motion, finite = self._measure.resolve(self._group)
        if not finite and not any(note.startswith(NON_FINITE_PROBE) for note in self.trace.notes):
            self.trace.notes.append(f"{NON_FINITE_PROBE}, first at step {step}: change and motion cannot be measured "
                                    "at such steps (left empty in the run data)")
        gap = None if self._last_computed is None else step - self._last_computed
        record = DecisionRecord(step=step, sigma=float(self.sigmas[step]), change=change, gap=gap,
                                distance=None, reuse_length=1, next_step=step + 1, motion=motion)
        if change is not None and gap:
            distance = change / gap
            if self.config.moreg is not None:
                distance *= self._moreg_multiplier(record, step, motion, gap)
            record.distance = distance
        record.reuse_length, record.next_step = self.schedule.after_computed(step, record.distance)
        self._last_computed = step
        self.trace.decisions.append(record)

    def _moreg_multiplier(self, record: DecisionRecord, step: int, motion: float | None, gap: int) -> float:
        """MoReg's multiplier of the distance, exactly as ``compute_next_step`` of the official code.

        Inside the window the factor maps the motion score; outside it (or where the motion could
        not be measured) it is 1.0. At every decision the gradient compares the factor with the
        previous one per step between them and the distance is multiplied by factor + |gradient|:
        so the first decision after the window closes still reacts to the factor dropping to 1.
        ``gap`` stands for the official ``prev_rate`` (the reuse length chosen last time): the two
        are equal at every decision that can change the schedule, and the gap stays right when a
        step was computed early (the last two steps, outside start/end_percent).
        """
        moreg = self.config.moreg
        record.moreg_active = motion is not None and moreg.active_at(step, self.steps)
        if record.moreg_active:
            record.moreg_scale = moreg.scale_at(record.sigma)
            factor = measures.moreg_factor(motion, moreg, record.moreg_scale)
        else:
            factor = 1.0
        gradient = moreg.grad_mul * (factor - self._prev_factor) / gap
        self._prev_factor = factor
        record.moreg_factor, record.moreg_gradient = factor, gradient
        return factor + abs(gradient)
