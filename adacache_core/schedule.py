"""Which steps of a run are computed: the one place that answers "why did step k run?" (framework-free).

One schedule decides for a whole sampling run, chosen from the settings by :func:`choose`:

* :class:`PaperSchedule` (speed knob at 0): the paper's adaptive rule. After each computed step the
  measured distance (probe change per step, times MoReg's multiplier) picks from the codebook how many
  steps to reuse before the next computed one.
* :class:`FixedSteps`: the steps are fixed before the run starts: by the speed knob (its drop order,
  step_ranking.py), by a plan from AdaCache Plan Search (searched_plan.py), or given exactly (Plan Search's
  trial runs and the benchmarks sample any schedule so).

Whatever the schedule, some steps are always computed, each with its reason (:func:`forced_steps`): the
first and the last two, and those outside start/end_percent (an exact set, given for a trial, excepted). The ComfyUI bridge may force more while the
run goes (a ControlNet, a branch layout with nothing cached yet); it reports them to the run's trace with
their reason too, so the viewer can say why a step ran.
"""
from __future__ import annotations

from . import measures, step_ranking
from .config import AdaCacheConfig
from .trace import RunTrace

FIRST_AND_LAST = "the first and the last two steps are always computed"
OUTSIDE_WINDOW = "outside start_percent..end_percent"
PLAN_NOT_USED = "the plan from AdaCache Plan Search is not used"
KNOB_ESTIMATE = "by the knob's estimate (the first steps, which set the layout, kept longest)"


def forced_steps(steps: int, cacheable: list[bool] | None = None) -> dict[int, str]:
    """Steps computed whatever the schedule says, with the reason: the first and the last two (as the paper's
    code), and every step ``cacheable`` marks False (outside start/end_percent)."""
    forced = {s: OUTSIDE_WINDOW for s, ok in enumerate((cacheable or [])[:steps]) if not ok}
    return forced | {s: FIRST_AND_LAST for s in (0, steps - 2, steps - 1) if 0 <= s < steps}


class PaperSchedule:
    """The paper's adaptive schedule: the codebook turns each computed step's distance into a reuse length."""

    chosen_by = "paper schedule"

    def __init__(self, config: AdaCacheConfig, steps: int, forced: dict[int, str]):
        self.codebook = config.codebook_for(steps)
        self.forced = forced
        self._next = 0

    def computes(self, step: int) -> bool:
        return step in self.forced or step >= self._next

    def after_computed(self, step: int, distance: float | None) -> tuple[int, int]:
        """(reuse length, next computed step) after computed ``step``; no distance measured: the next step."""
        length, self._next = (1, step + 1) if distance is None else measures.next_computed_step(step, distance,
                                                                                                 self.codebook)
        return length, self._next


class FixedSteps:
    """A set of steps fixed before the run: exactly these compute, the others reuse. ``forced``: the steps it
    was made to include, with the reason (none for an exact set)."""

    def __init__(self, computed: frozenset[int], steps: int, chosen_by: str, forced: dict[int, str]):
        self.computed = computed
        self.steps = steps
        self.chosen_by = chosen_by
        self.forced = forced

    def computes(self, step: int) -> bool:
        return step in self.computed

    def after_computed(self, step: int, distance: float | None) -> tuple[int, int]:
        following = min((s for s in self.computed if s > step), default=self.steps)
        return following - step, following


def choose(config: AdaCacheConfig, sigmas: list[float], steps: int, forced: dict[int, str],
           trace: RunTrace) -> PaperSchedule | FixedSteps:
    """The schedule the settings ask for, honouring ``forced`` (but for an exact set: exactly that); the knob's
    plan and any plan not used are noted in ``trace``."""
    if config.exact_steps is not None:
        return FixedSteps(frozenset(config.exact_steps), steps, "exact steps", {})
    if config.target_speedup is None:
        return PaperSchedule(config, steps, forced)
    budget = min(steps, max(len(forced), round(steps / config.target_speedup)))  # up to 1x: every step
    estimate = step_ranking.drop_order(sigmas, steps, set(forced), config.reuse == "forecast")
    order, chosen_by, planned_from = estimate, "speed knob", KNOB_ESTIMATE
    searched = config.searched_plan
    why = None if searched is None else searched.mismatch(sigmas, config.reuse)
    if why is not None:
        trace.notes.append(f"{PLAN_NOT_USED}: {why}; search again with this sampler's steps and scheduler")
    elif searched is not None:
        order, chosen_by = searched.order_for(estimate), "plan"
        planned_from = f"from the plan AdaCache Plan Search found ({searched.searched_on})"
    computed = frozenset(step_ranking.kept_steps(order, steps, set(forced), budget))
    unused = "the preset's codebook" + (" and MoReg do" if config.moreg is not None else " does")
    trace.notes.append(f"speed knob {config.target_speedup:g}x: {len(computed)} of {steps} steps planned "
                       f"{planned_from}; {unused} not choose steps (target_speedup 0 lets them)")
    if steps / config.target_speedup < len(forced) - 0.5:  # rounds below what must be computed
        trace.notes.append(f"speed knob: {config.target_speedup:g}x is more than this run can do: at most "
                           f"{steps / len(forced):.3g}x ({len(forced)} of its {steps} steps are always computed)")
    return FixedSteps(computed, steps, chosen_by, forced)
