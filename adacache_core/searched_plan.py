"""A plan searched on the user's own model: the order in which the speed knob gives up steps (framework-free).

Why: the knob ranks steps by an estimate made before the run (step_ranking.py), the same for every
model. Which reused steps really hurt differs from model to model and from video to video; a search
with real sampling on the user's model and prompts measures it instead. It is measured on the prompts
and latent it searched with; other prompts of the model may rank steps differently.

The search (:func:`search_drop_order`) is greedy, as the reference in
benchmarks/bench_schedule_search.py: start with every step computed and give up, one at a time, the
step whose reuse keeps the output closest to the every-step output, measured by sampling. Only the
``candidates`` steps the estimate (step_ranking.drop_cost) ranks cheapest are tried at each level:
about ``candidates x steps`` sampling runs in all instead of ``steps^2 / 2``. Each level keeps the
steps of the level before, so the plans nest as the knob's do.

A plan travels as a short JSON text (workflows carry and share it) and is only used on runs with
the sigmas it was searched with, on the model and ``reuse`` it was searched for.
"""
from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Callable

from . import node_text, step_ranking
from .checks import SettingsError, is_whole, shown
from .config import REUSE_MODES
from .node_text import note, number, short, whole

FORMAT = "adacache-plan/1"
MAX_PLAN_STEPS = 1000
MAX_PLAN_TEXT = 100_000  # characters: 1000 steps with full float precision fit
MAX_NOTE = 300  # characters of the description of what the plan was searched on
SIGMA_TOLERANCE = 1e-4  # relative: the text keeps six significant digits


@dataclasses.dataclass(frozen=True)
class SearchedPlan:
    """Which steps to give up first, found by sampling on one model with one run's sigmas."""

    architecture: str
    blocks: int
    reuse: str
    sigmas: tuple[float, ...]  # the run's sigmas (steps + 1 values): the plan fits runs with these only
    drop_order: tuple[int, ...]  # steps, the first given up first
    psnr: tuple[float, ...] = ()  # per searched drop: PSNR (dB) of the searched output against every step computed
    searched_on: str = ""  # what it was searched on, for the reader (seed, latent size, sampler)

    def __post_init__(self) -> None:
        steps = len(self.sigmas) - 1
        if not 1 <= steps <= MAX_PLAN_STEPS or not all(isinstance(s, float) and math.isfinite(s) for s in self.sigmas):
            raise SettingsError(f"plan: needs 2 to {MAX_PLAN_STEPS + 1} finite sigmas, got {len(self.sigmas)}")
        if len(set(self.drop_order)) != len(self.drop_order) or not all(
                is_whole(s, 0, steps - 1) for s in self.drop_order):
            raise SettingsError(f"plan: the drop order must name distinct steps from 0 to {steps - 1}")
        if len(self.psnr) > len(self.drop_order):
            raise SettingsError("plan: has more PSNR values than dropped steps")
        if self.reuse not in REUSE_MODES:
            raise SettingsError(f"plan: reuse {shown(self.reuse)} is not one of {list(REUSE_MODES)}")

    @property
    def steps(self) -> int:
        return len(self.sigmas) - 1

    def check_model(self, architecture: str, blocks: int) -> None:
        """Refuse a model other than the one searched: which steps hurt is that model's property."""
        if (architecture, blocks) != (self.architecture, self.blocks):
            raise SettingsError(f"plan: searched on {self.architecture} with {self.blocks} blocks, but this model is "
                                f"{architecture} with {blocks} blocks; search again with AdaCache Plan Search on this model")

    def mismatch(self, sigmas: list[float], reuse: str) -> str | None:
        """Why this plan does not fit a run with these sigmas and this reuse (None: it fits)."""
        if reuse != self.reuse:
            return f"it was searched with reuse '{self.reuse}', the run reuses with '{reuse}'"
        if len(sigmas) != len(self.sigmas):
            return f"it was searched for {self.steps} steps, the run has {len(sigmas) - 1}"
        if any(abs(a - b) > SIGMA_TOLERANCE * max(abs(b), 1e-3) for a, b in zip(sigmas, self.sigmas)):
            return "the run's noise levels differ from the search's (another scheduler, shift or denoise)"
        return None

    def order_for(self, estimate: list[int]) -> list[int]:
        """The drop order of a run: the searched one, then the estimate's order for any step it did not reach."""
        searched = set(self.drop_order)
        return [*self.drop_order, *(s for s in estimate if s not in searched)]

    def describe(self) -> dict:
        """Short summary for the run data and the viewer."""
        return {"model": f"{self.architecture} with {self.blocks} blocks", "reuse": self.reuse, "steps": self.steps,
                "searched_on": self.searched_on}

    def to_text(self) -> str:
        return json.dumps({"format": FORMAT, "architecture": self.architecture, "blocks": self.blocks,
                           "reuse": self.reuse, "searched_on": self.searched_on,
                           "sigmas": [short(s) for s in self.sigmas], "drop_order": list(self.drop_order),
                           "psnr": [round(p, 3) if math.isfinite(p) else None for p in self.psnr]})  # None: identical

    @classmethod
    def from_text(cls, text) -> "SearchedPlan":
        """Parse what :meth:`to_text` wrote; anything else is refused with a message naming the problem."""
        return node_text.parse(text, "plan", "AdaCache Plan Search", MAX_PLAN_TEXT, cls._from_data)

    @classmethod
    def _from_data(cls, data: dict) -> "SearchedPlan":
        if data.get("format") != FORMAT:
            raise ValueError(f"format is not {FORMAT!r}")
        return cls(note(data["architecture"], "architecture", MAX_NOTE), whole(data["blocks"], 1, 10_000), data["reuse"],
                   tuple(map(number, data["sigmas"])), tuple(data["drop_order"]),
                   tuple(math.inf if p is None else number(p) for p in data["psnr"]), note(data["searched_on"], "searched_on", MAX_NOTE))


def search_runs(optional: int, candidates: int, min_computed_optional: int = 0) -> int:
    """How many sampling runs :func:`search_drop_order` makes with ``optional`` droppable steps (per prompt): one per
    candidate per level, and a level with fewer options left tries them all (``candidates`` 0: every one)."""
    return sum(min(candidates, left) if candidates else left for left in range(optional, min_computed_optional, -1))


def search_drop_order(sigmas: list[float], forced: set[int], forecast: bool, candidates: int,
                      score: Callable[[frozenset[int]], float], min_computed: int = 0,
                      on_level: Callable[[int, int, float, int], None] | None = None,
                      ranking: step_ranking.StepRanking = step_ranking.REAL_MODEL_RANKING) -> list[tuple[int, float]]:
    """Greedy search: ``[(dropped step, its score), ...]``, the first dropped first.

    ``score(computed)`` samples a run that computes exactly the steps ``computed`` and says how close
    it came to the every-step run (higher is closer; PSNR in dB). At each level the ``candidates``
    optional steps the estimate ranks cheapest are tried (0: every optional step); the one that scores
    best is dropped (on a tie, the earlier step). Stops when only ``forced`` steps are left or at
    ``min_computed`` computed steps. ``on_level(computed, dropped, score, runs so far)`` reports progress.
    ``ranking``: the estimate that picks the candidates (the knob's by default).
    """
    steps = len(sigmas) - 1
    weights = ranking.weights(sigmas, steps)
    kept, order, runs = list(range(steps)), [], 0
    while len(kept) > max(min_computed, len(forced)):
        options = [s for s in kept if s not in forced]
        if candidates:
            cost = {s: step_ranking.drop_cost(kept, s, weights, forecast) for s in options}
            options = sorted(options, key=lambda s: (cost[s], s))[:candidates]
        scores = {s: score(frozenset(kept) - {s}) for s in options}
        runs += len(scores)
        drop = max(sorted(scores), key=scores.get)
        kept.remove(drop)
        order.append((drop, scores[drop]))
        if on_level is not None:
            on_level(len(kept), drop, scores[drop], runs)
    return order
