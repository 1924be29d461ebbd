"""Fit the speed knob's step ranking to schedules measured on real weights (no sampling, seconds).

The knob's steps at a budget should overlap the computed-step lists LeMiCa published for real models
(benchmarks/data/real_weight_schedules.json). This grid-searches step_ranking.StepRanking on the Wan 2.1
lists (both reuse modes, Wan's shifts 5 and 8) and checks the result on the families it was not fitted on
(FLUX.1, Qwen-Image, HunyuanVideo 1.5). Score: the Jaccard index of the computed sets, averaged over the
budgets; "early": the fewest of the first 10 steps computed at any Wan budget. Also checks the step-size part
of the weight against MagCache's magnitude ratios measured on real Wan 2.1 weights (same file): how closely
the residual's per-step change |1 - ratio| (conditional branch) follows the sampler's step size.

    .venv/bin/python benchmarks/fit_step_ranking.py        # writes benchmarks/results/fit_step_ranking.json
"""
from __future__ import annotations

import dataclasses
import itertools
import json
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
from adacache_core import step_ranking  # noqa: E402
from adacache_core.schedule import forced_steps  # noqa: E402

DATA = json.loads((REPO / "benchmarks" / "data" / "real_weight_schedules.json").read_text())
GRID = dict(step_size_power=(0.0, 0.25, 0.5, 0.75, 1.0), head=(0.12, 0.16, 0.2, 0.22), head_softness=(0.01, 0.02, 0.04),
            head_weight=(100.0, 1000.0, 10000.0))


def flow_sigmas(steps: int, shift: float) -> list[float]:
    """ComfyUI's simple scheduler on a flow model with this shift."""
    return [shift * t / (1 + (shift - 1) * t) for t in (1 - i / steps for i in range(steps + 1))]


def knob_steps(ranking: step_ranking.StepRanking, steps: int, shift: float, forecast: bool) -> dict[int, set[int]]:
    """The knob's computed steps at each budget of 1..steps."""
    forced = set(forced_steps(steps))
    order = step_ranking.drop_order(flow_sigmas(steps, shift), steps, forced, forecast, ranking)
    return {b: step_ranking.kept_steps(order, steps, forced, b) for b in range(1, steps + 1)}


def agreement(ranking: step_ranking.StepRanking, family: str) -> dict:
    """Mean Jaccard index with the family's lists (per shift and reuse mode) and the fewest early steps computed."""
    fam = DATA["families"][family]
    out = {}
    for shift, forecast in itertools.product(fam["shifts"], (False, True)):
        kept = knob_steps(ranking, fam["steps"], shift, forecast)
        jac = [len(kept[int(b)] & set(ls)) / len(kept[int(b)] | set(ls)) for b, ls in fam["budgets"].items()]
        early = min(len([s for s in kept[int(b)] if s < 10]) for b in fam["budgets"])
        out[f"shift {shift:g}, {'forecast' if forecast else 'hold'}"] = {"jaccard": round(sum(jac) / len(jac), 3),
                                                                         "early": early}
    return out


def magcache_agreement() -> dict:
    """Per Wan family and shift: Pearson and Spearman correlation of the residual's per-step change measured by
    MagCache with the sampler's step size, and the mean change per fifth of the run. MagCache's ratio at step j
    compares step j's residual with step j-1's, so it is set beside the step from j-1 to j (step 0 has none)."""
    magcache = DATA["magcache_mag_ratios"]
    out = {}
    for family, ratios in magcache["families"].items():
        change = np.abs(1.0 - np.array(ratios[0::2]))[1:]  # conditional branch
        for shift in DATA["families"][family]["shifts"]:
            sizes = np.array(step_ranking.step_sizes(flow_sigmas(magcache["steps"], shift), magcache["steps"]))[:-1]
            out[f"{family}, shift {shift:g}"] = {
                "pearson": round(float(np.corrcoef(change, sizes)[0, 1]), 3),
                "spearman": round(float(np.corrcoef(_ranks(change), _ranks(sizes))[0, 1]), 3),
                "change_per_fifth": [round(float(f.mean()), 4) for f in np.array_split(change, 5)]}
    return out


def _ranks(values: np.ndarray) -> np.ndarray:
    return np.argsort(np.argsort(values))


def summary(ranking: step_ranking.StepRanking) -> dict:
    per = {family: agreement(ranking, family) for family in DATA["families"]}
    fitted = [v for f in DATA["fitted_on"] for v in per[f].values()]
    return {"ranking": dataclasses.asdict(ranking), "fitted_jaccard": round(sum(v["jaccard"] for v in fitted) / len(fitted), 3),
            "fitted_early": min(v["early"] for v in fitted), "families": per}


def main() -> None:
    fits = [summary(step_ranking.StepRanking(**dict(zip(GRID, values)))) for values in itertools.product(*GRID.values())]
    fits.sort(key=lambda f: (f["fitted_jaccard"], f["fitted_early"]), reverse=True)
    result = {"shipped": summary(step_ranking.REAL_MODEL_RANKING), "step sizes only (before)": summary(step_ranking.STEP_SIZE_RANKING),
              "best of the grid": fits[:5], "magcache": magcache_agreement()}
    (REPO / "benchmarks" / "results" / "fit_step_ranking.json").write_text(json.dumps(result, indent=1))
    for name in ("step sizes only (before)", "shipped"):
        row = result[name]
        print(f"{name}: {row['ranking']}\n  Wan (fitted): Jaccard {row['fitted_jaccard']}, early steps >= {row['fitted_early']}")
        for family, modes in row["families"].items():
            print(f"  {family:18s} " + "  ".join(f"{m}: {v['jaccard']:.2f}/{v['early']}" for m, v in modes.items()))
    print("best of the grid (Wan Jaccard, early):", [(f["fitted_jaccard"], f["fitted_early"], f["ranking"]) for f in fits[:5]])
    print("MagCache's per-step change on real Wan 2.1 against the sampler's step size:")
    for key, row in result["magcache"].items():
        print(f"  {key}: Pearson {row['pearson']}, Spearman {row['spearman']}, mean change per fifth {row['change_per_fifth']}")


if __name__ == "__main__":
    main()
