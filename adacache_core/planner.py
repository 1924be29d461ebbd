"""The per-run decision engine: which steps compute, which reuse (framework-free).

One ``RunPlanner`` lives for one sampling run of one patched model. The ComfyUI bridge tells it
which step each model call belongs to and hands it the probe measurements of computed steps. With
the speed knob on, the steps are planned before the run (speed_plan.kept_steps, in the order of a
Plan Search plan where one fits); with the knob at 0, the measurements choose them as the paper's
schedule does (the preset's codebook, MoReg). Measurements of a computed step are summed over all
calls of that step (cond and uncond, batched or not) and only turned into a decision when the next
step starts, so the order in which branches run does not matter.
"""
from __future__ import annotations

import bisect
import math
from dataclasses import dataclass, field

import torch

from . import measures, sequence_parallel, speed_plan
from .config import AdaCacheConfig
from .trace import DecisionRecord, RunTrace

NON_FINITE_PROBE = "NaN or infinite values in the probe block's output"
PLAN_NOT_USED = "the plan from AdaCache Plan Search is not used"


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
    """Schedule of one sampling run: forced steps, codebook lookups, MoReg, and the run's trace."""

    def __init__(self, config: AdaCacheConfig, sigmas: list[float], cacheable: list[bool], trace: RunTrace):
        self.config = config
        self.sigmas = sigmas
        self.steps = max(len(sigmas) - 1, 1)
        self.codebook = config.codebook_for(self.steps)
        self.forced = measures.forced_steps(self.steps) | {i for i, ok in enumerate(cacheable[: self.steps]) if not ok}
        self.trace = trace
        self._ascending = sorted(sigmas[: self.steps])
        self._next_computed = 0
        self._last_computed: int | None = None
        self.budget = None if config.target_speedup is None else min(self.steps, max(
            len(self.forced), round(self.steps / config.target_speedup)))  # a speed-up up to 1 computes every step
        # speed-knob mode: the steps to compute, planned before the run (speed_plan.py, searched_plan.py)
        self.plan = None
        trace.chosen_by = "paper schedule"
        if config.exact_steps is not None:  # this set and no other (Plan Search's trial runs, the benchmarks)
            self.plan = frozenset(config.exact_steps)
            self.budget = len(self.plan)
            trace.chosen_by = "exact steps"
        elif self.budget is not None:
            order, planned_from = self._drop_order()
            self.plan = speed_plan.kept_steps(order, self.steps, self.forced, self.budget)
            unused = "the preset's codebook" + (" and MoReg do" if config.moreg is not None else " does")
            trace.notes.append(f"speed knob {config.target_speedup:g}x: {len(self.plan)} of {self.steps} steps planned "
                               f"{planned_from}; {unused} not choose steps (target_speedup 0 lets them)")
            if self.steps / config.target_speedup < len(self.forced) - 0.5:  # rounds below what must be computed
                trace.notes.append(f"speed knob: {config.target_speedup:g}x is more than this run can do: at most "
                                   f"{self.steps / len(self.forced):.3g}x ({len(self.forced)} of its {self.steps} steps "
                                   "are always computed)")
        trace.budget = self.budget
        self._prev_factor = 1.0  # MoReg's previous factor; the official code starts it at 1.0
        self._step: int | None = None
        self._computes = True
        self._measure = _StepMeasurement()
        self._group: sequence_parallel.Group | None = None

    def _drop_order(self) -> tuple[list[int], str]:
        """The order in which the knob gives up steps, and where it comes from: the searched plan where it fits
        this run, else the knob's own estimate (speed_plan.py)."""
        self.trace.chosen_by = "speed knob"
        estimate = speed_plan.drop_order(self.sigmas, self.steps, self.forced, self.config.reuse == "forecast")
        searched = self.config.searched_plan
        if searched is None:
            return estimate, "by the knob's estimate (the first steps, which set the layout, kept longest)"
        why = searched.mismatch(self.sigmas, self.config.reuse)
        if why is not None:
            self.trace.notes.append(f"{PLAN_NOT_USED}: {why}; search again with this "
                                    "sampler's steps and scheduler")
            return estimate, "by the knob's estimate (the first steps, which set the layout, kept longest)"
        self.trace.chosen_by = "plan"
        return searched.order_for(estimate), f"from the plan AdaCache Plan Search found ({searched.searched_on})"

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
            if self.plan is not None:
                self._computes = step in self.plan
            else:
                self._computes = step in self.forced or step >= self._next_computed
            self._measure = _StepMeasurement()
        return self._computes

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
            if self.budget is None:
                record.reuse_length, record.next_step = measures.next_computed_step(step, distance, self.codebook)
        if self.plan is not None:
            record.next_step = min((s for s in self.plan if s > step), default=self.steps)
            record.reuse_length = record.next_step - step
        self._next_computed = record.next_step
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
