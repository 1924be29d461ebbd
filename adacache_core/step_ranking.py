"""The speed knob: which steps a run computes when the artist asks for a speed-up (framework-free).

An artist tunes by moving one value and looking, so asking for less speed should not give a worse
video. Schedules chosen step by step from measurements drift apart: a run that computed one more
step early measures something else later and can end up worse. Here every step of the run gets a
rank before sampling starts, and a run asked for ``n`` computed steps computes the ``n``
best-ranked ones: a slower setting computes every step a faster one does, plus some (the schedules
nest). How steady quality is along the knob is measured, not promised, in benchmarks/RESULTS.md.

The rank comes from the error a reused step makes in the result. A reused step ``j`` adds a stale (or
forecast) residual to the model output; how much that costs is the step's weight (``StepRanking``) times
the residual's staleness. Staleness grows with the reach ``k`` (steps since the last computed one): for
``hold``, ``k`` for the residual's drift plus ``hold_bend * k * k / 2`` as it bends away from the held value,
so a reuse of ``L`` steps costs about ``L ** 3`` rather than ``L ** 2`` and tight budgets spread their steps;
for ``forecast``, a straight line through the last two computed steps (``gap`` apart) misses a bending
residual by about ``k * k / 2``, and its slope carries the residual's step-to-step jitter divided by the gap
it was measured over (``slope_noise * k / gap``), up to the forecast's reach (span_memory.MAX_REACH gaps),
after which it holds. One reuse is costed as a forecast though the forecast holds there: right after steps
0 and 1 (span_memory.forms_line).

The weight follows what real models show (sources in benchmarks/data/real_weight_schedules.json): the
first steps of a run set the composition and are the last to be given up (the "head"); past the head a
step weighs as far as the sampler moves there, so the same staleness costs more where the sampler takes
large steps. Ranks are found greedily, as a search
with real sampling does: start with every step computed and drop, one at a time, the step whose reuse adds
the least estimated error. Steps that must be computed (``forced``) are never dropped.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from .span_memory import MAX_REACH

@dataclass(frozen=True)
class StepRanking:
    """How much a reused step's error weighs, by where the step sits in the run.

    weight(j) = step_size(j) ** step_size_power * (1 + head_weight * protected(j / steps)), where
    ``protected`` falls smoothly from 1 to 0 around ``head`` (a fraction of the run) over ``head_softness``.
    """

    head: float = 0.2  # the fraction of the run whose steps set the composition
    head_softness: float = 0.01  # how gradually the protection ends, as a fraction of the run
    head_weight: float = 1000.0  # how much more a head step weighs than a later one of the same step size
    step_size_power: float = 1.0  # 1: a step weighs as far as the sampler moves there (in sigma); 0: all alike
    slope_noise: float = 0.25  # the forecast slope's jitter against the bend, in units of bend
    hold_cost: float = 4.0  # per step where the forecast has reached as far as it may and holds: a held residual
    # misses by its whole drift, which the forecast removes
    hold_bend: float = 1.0  # reuse hold: how fast a held residual's miss outgrows its drift, per step squared. 0 (a
    # miss growing like the reach) left the knob's tight budgets with one reuse of half the run; 1 was chosen on the
    # held-out tiny model (benchmarks/RESULTS.md)

    def weights(self, sigmas: list[float], steps: int) -> list[float]:
        """The weight of each step's reuse error, one per step."""
        return [size ** self.step_size_power * (1.0 + self.head_weight * self._protected(j / steps))
                for j, size in enumerate(step_sizes(sigmas, steps))]

    def _protected(self, progress: float) -> float:
        if self.head_weight == 0:
            return 0.0
        return 1.0 / (1.0 + math.exp(min((progress - self.head) / self.head_softness, 700.0)))

    def reuse_error(self, reach: int, gap: int | None, forecast: bool) -> float:
        """Estimated staleness of a residual reused ``reach`` steps after the last computed step.

        ``gap``: steps between the last two computed steps (None: only one computed so far, nothing to
        forecast from, so the forecast holds the residual).
        """
        if not forecast:
            return reach + self.hold_bend * reach * reach / 2
        if gap is None:  # held by the forecast; without the bend on purpose, so forecast's ranking stays as fitted
            return float(reach)
        limit = MAX_REACH * gap
        if reach <= limit:
            return self._forecast_miss(reach, gap)
        return self._forecast_miss(limit, gap) + self.hold_cost * (reach - limit)  # the forecast holds beyond its reach

    def _forecast_miss(self, reach: float, gap: int) -> float:
        """How far a line through two computed steps ``gap`` apart misses ``reach`` steps on: bend plus slope jitter."""
        return reach * reach / 2 + self.slope_noise * reach / gap


# The knob's ranking: fitted to LeMiCa's published Wan 2.1 schedules (benchmarks/fit_step_ranking.py; the choice
# among the close fits: benchmarks/RESULTS.md, "Real models first").
REAL_MODEL_RANKING = StepRanking()
# The ranking from the sampler's step sizes alone, as before the head: for comparisons in the benchmarks.
STEP_SIZE_RANKING = StepRanking(head_weight=0.0, step_size_power=1.0)


def step_sizes(sigmas: list[float], steps: int) -> list[float]:
    """How far the sampler moves at each step (in sigma)."""
    return [abs(sigmas[j] - sigmas[j + 1]) if j + 1 < len(sigmas) else 0.0 for j in range(steps)]


def _segment_error(previous: int | None, start: int, end: int, weights: list[float], forecast: bool,
                   ranking: StepRanking) -> float:
    """Error of the steps reused between computed ``start`` and ``end`` (``previous``: the one before start)."""
    gap = None if previous is None else start - previous
    return sum(weights[j] * ranking.reuse_error(j - start, gap, forecast) for j in range(start + 1, end))


def drop_order(sigmas: list[float], steps: int, forced: set[int], forecast: bool,
               ranking: StepRanking = REAL_MODEL_RANKING) -> list[int]:
    """The optional steps, in the order a faster setting gives them up (the first is dropped first).

    Dropping a step changes only the reused stretches next to it and, with forecast, the one after
    (its slope comes from the two computed steps before it), so each candidate is costed locally.
    """
    weights = ranking.weights(sigmas, steps)
    kept = list(range(steps))
    order = []
    while True:
        costs = {s: drop_cost(kept, s, weights, forecast, ranking) for s in kept if s not in forced}
        if not costs:
            return order
        drop = min(costs, key=lambda s: (costs[s], s))
        kept.remove(drop)
        order.append(drop)


def drop_cost(kept: list[int], step: int, weights: list[float], forecast: bool,
              ranking: StepRanking = REAL_MODEL_RANKING) -> float:
    """Estimated error added when ``step``, one of the computed steps ``kept`` (ascending), is reused instead.

    Only the stretches next to it change (and, with forecast, the one after, whose slope it helped set),
    so only its neighbourhood is costed. ``weights``: StepRanking.weights of the run, one per step.
    """
    steps = len(weights)
    i = kept.index(step)
    window = kept[max(0, i - 2): i + 3] + ([steps] if i + 2 >= len(kept) - 1 else [])  # steps: the run's end
    return (_stretches([p for p in window if p != step], weights, forecast, ranking)
            - _stretches(window, weights, forecast, ranking))


def _stretches(points: list[int], weights: list[float], forecast: bool, ranking: StepRanking) -> float:
    """Error of the reused stretches between consecutive ``points`` (the first one only gives the gap)."""
    return sum(_segment_error(points[i - 2] if i >= 2 else None, points[i - 1], points[i], weights, forecast, ranking)
               for i in range(1, len(points)))


def kept_steps(order: list[int], steps: int, forced: set[int], computed: int) -> set[int]:
    """The steps a run computes when it may compute ``computed`` of its ``steps``: all but the first ones
    of the drop ``order`` (this plan's, or a searched one). Forced steps are never dropped."""
    droppable = [s for s in order if s not in forced]
    return set(range(steps)) - set(droppable[: max(0, steps - max(computed, len(forced)))])
