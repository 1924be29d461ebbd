"""The speed knob along its range: quality and motion per class, both reuse modes, one model per run.

    .venv/bin/python benchmarks/bench_knob.py --model heldout   [--seeds 3]
    .venv/bin/python benchmarks/bench_knob.py --model motion    [--seeds 3]

For every motion class and seed, in one process: the unpatched run, then AdaCache Patch Model with
``target_speedup`` at each speed of SPEEDS (everything else at the node's defaults: block probe),
with ``reuse`` hold and forecast (30 steps, euler/simple, CFG 5). Per row: computed steps, PSNR of
the final latents against the unpatched run, motion energy ratio (frame-to-frame change of the
output over the unpatched output's).

Prints per mode the mean PSNR per class and overall at each speed, the largest drop in quality when
asking for LESS speed (the knob's aim: never more than 0.5 dB), and, where
benchmarks/bench_schedule_search.py has results for this model and mode, the gap to the greedy
search's best-found PSNR on the same videos at 1.5x, 2x, 3x and 4x. Writes
benchmarks/results/knob_<model>.json; ``--report`` prints the tables again from that file (for
example after a new search) without sampling.

``--chain motion|heldout|clips`` samples, in place of the knob's plan, the greedy search's schedules of
that model (benchmarks/results/search_<model>_<reuse>.json) with as many computed steps as the knob
would compute at each speed: the search's levels nest too, so this asks how a plan as good as a
search on one video does on the other videos, of its own model or of the other one.
``--chain-variant 5x8x8`` (or ``5x8x8_k6``) takes the search made with ``--latent 5x8x8`` (and
``--candidates 6``) of bench_schedule_search.py. Writes knob_<model>_chain_<chain>[_<variant>].json.

``--ranking step-sizes`` samples the schedules the knob chose before it followed real-model evidence
(step_ranking.STEP_SIZE_RANKING, the sampler's step sizes alone), for comparison on the same videos.
Writes knob_<model>_stepsizes.json.

``--ranking lemica`` samples LeMiCa's computed-step lists published for real Wan 2.1 T2V 1.3B at 50 steps
(benchmarks/data/real_weight_schedules.json) with the pack's reuse, at the speeds whose step count has a
list: ``--steps 50 --speeds 2,2.5,3,3.5`` (25, 20, 17, 14 computed steps). With the pack's ``hold`` this is
LeMiCa's own reuse (the whole stack's change from the last computed step, added again). Run the knob with the
same ``--steps 50 --speeds ...`` beside it for the matched-compute comparison. ``--steps`` other than 30 adds
``_<steps>steps`` to the file name.
"""
from __future__ import annotations

import json
import statistics
import sys

import numpy as np
import torch
from tiny_runs import REPO, computing_exactly, load, parser

SPEEDS = (1.25, 1.5, 1.75, 2.0, 2.5, 3.0, 3.5, 4.0)
MODES = ("hold", "forecast")
GAP_SPEEDS = (1.5, 2.0, 3.0, 4.0)


def main() -> None:
    ap = parser(__doc__, "heldout")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--report", action="store_true", help="print the tables from the saved results; sample nothing")
    ap.add_argument("--chain", choices=("motion", "heldout", "clips"), help="sample this model's searched schedules instead")
    ap.add_argument("--chain-variant", help="with --chain: the end of the search file's name, e.g. 5x8x8 or 5x8x8_k6")
    ap.add_argument("--ranking", default="real-model",
                    help="step-sizes: sample the schedules of the knob's earlier ranking instead of the knob; or "
                         "POWER,HEAD,SOFTNESS,WEIGHT: a step_ranking.StepRanking to try (file suffix _ranking_...)")
    ap.add_argument("--reuse", choices=MODES, action="append", help="only this reuse mode (repeatable; default both)")
    ap.add_argument("--speeds", help="comma-separated target speedups to sample (default: " +
                                     ",".join(f"{s:g}" for s in SPEEDS) + ")")
    args = ap.parse_args()
    modes = tuple(args.reuse or MODES)
    speeds = tuple(float(s) for s in args.speeds.split(",")) if args.speeds else SPEEDS
    size = f"_{args.chain_variant}" if args.chain_variant else ""
    suffix = (f"_chain_{args.chain}{size}" if args.chain else "") + {
        "step-sizes": "_stepsizes", "real-model": "", "lemica": "_lemica"}.get(
        args.ranking, "_ranking_" + args.ranking.replace(",", "_")) + (f"_{args.steps}steps" if args.steps != 30 else "")
    results_path = REPO / "benchmarks" / "results" / f"knob_{args.model}{suffix}.json"
    if args.report:
        saved = json.loads(results_path.read_text())
        rows = saved["rows"]
        print(report(rows, list(dict.fromkeys(r["class"] for r in rows)), args.model, speeds, saved["meta"]["steps"]))
        return
    h, base, conds, empty, latent = load(args)
    from tools.quality import psnr
    from tools.tiny_video_data import latent_motion

    chains = {reuse: searched_chain(f"{args.chain}_{reuse}{size}", args.steps) for reuse in modes} if args.chain else None
    if args.ranking == "lemica":
        chains = {reuse: lemica_chain(args.steps) for reuse in modes}
        if missing := [s for s in speeds if round(args.steps / s) not in chains[modes[0]]]:
            sys.exit(f"--ranking lemica: no published list for {missing}x at {args.steps} steps")
    elif args.ranking != "real-model":
        chains = {reuse: ranked_chain(base, args.steps, reuse == "forecast", args.ranking) for reuse in modes}
    rows = []
    for cls, pos in conds.items():
        for seed in range(args.seeds):
            ref = h.ksample(base, pos, empty, latent, steps=args.steps, seed=seed)
            energy = latent_motion(ref)
            for reuse in modes:
                for speed in speeds:
                    if chains is None:
                        model = h.adacache(None, base, target_speedup=speed, reuse=reuse)
                        out = h.ksample(model, pos, empty, latent, steps=args.steps, seed=seed)
                    else:
                        model = h.adacache(None, base, reuse=reuse)
                        with computing_exactly(h, model, chains[reuse][round(args.steps / speed)]):
                            out = h.ksample(model, pos, empty, latent, steps=args.steps, seed=seed)
                    rows.append({"class": cls, "seed": seed, "reuse": reuse, "speed": speed,
                                 "computed": len(h.session_of(model).last_run.computed_steps()),
                                 "psnr": psnr(out, ref), "motion_energy": latent_motion(out) / energy})
            print(f"{cls} seed {seed} done", flush=True)

    meta = {"command": "benchmarks/bench_knob.py " + " ".join(sys.argv[1:]), "torch": torch.__version__,
            "device": "cpu", "latent": list(latent.shape), "steps": args.steps, "cfg": 5.0, "sampler": "euler/simple"}
    results_path.parent.mkdir(exist_ok=True)
    results_path.write_text(json.dumps({"meta": meta, "rows": rows}, indent=1))
    print(report(rows, list(conds), args.model, speeds, args.steps))


def lemica_chain(steps: int) -> dict[int, frozenset[int]]:
    """LeMiCa's published computed steps for Wan 2.1 T2V 1.3B, per computed-step count."""
    data = json.loads((REPO / "benchmarks" / "data" / "real_weight_schedules.json").read_text())
    family = data["families"]["wan2.1_t2v_1.3B"]
    if family["steps"] != steps:
        sys.exit(f"--ranking lemica: LeMiCa's lists are for {family['steps']} steps, not --steps {steps}")
    return {int(n): frozenset(computed) for n, computed in family["budgets"].items()}


def searched_chain(name: str, steps: int) -> dict[int, frozenset[int]]:
    """The greedy search's schedule per computed-step count (its one video's levels; they nest)."""
    search = json.loads((REPO / "benchmarks" / "results" / f"search_{name}.json").read_text())
    if search["meta"]["steps"] != steps:
        sys.exit(f"--chain: search_{name}.json ran {search['meta']['steps']} steps, not --steps {steps}")
    (levels,) = search["videos"].values()
    return {level["computed"]: frozenset(level["steps"]) for level in levels}


def ranked_chain(base, steps: int, forecast: bool, ranking: str) -> dict[int, frozenset[int]]:
    """The schedule per computed-step count of another ranking ('step-sizes', or the numbers of a StepRanking:
    POWER,HEAD,SOFTNESS,WEIGHT[,SLOPE_NOISE[,HOLD_COST]]), on the sigmas KSampler uses (simple scheduler)."""
    import comfy.samplers

    from adacache_core import step_ranking
    from adacache_core.schedule import forced_steps

    sigmas = comfy.samplers.calculate_sigmas(base.get_model_object("model_sampling"), "simple", steps).tolist()
    forced = set(forced_steps(steps))
    if ranking == "step-sizes":
        chosen = step_ranking.STEP_SIZE_RANKING
    else:
        power, head, softness, weight, *forecast_costs = map(float, ranking.split(","))
        chosen = step_ranking.StepRanking(head, softness, weight, power, *forecast_costs)
    order = step_ranking.drop_order(sigmas, steps, forced, forecast, chosen)
    return {n: frozenset(step_ranking.kept_steps(order, steps, forced, n)) for n in range(len(forced), steps + 1)}


def mean_of(rows: list[dict], key: str, **where) -> float:
    return statistics.mean(r[key] for r in rows if all(r[k] == v for k, v in where.items()))


def worst_drop(curve: list[float]) -> float:
    """The largest loss of quality when moving to a LOWER speed (curve ordered by ascending speed)."""
    return max([0.0] + [curve[i] - curve[i - 1] for i in range(1, len(curve))])


def search_gap(rows: list[dict], model: str, reuse: str, steps: int) -> list[str]:
    """Knob minus greedy search at GAP_SPEEDS, on the videos the search ran (interpolated in compute), where it
    searched the same step count."""
    path = REPO / "benchmarks" / "results" / f"search_{model}_{reuse}.json"
    search = json.loads(path.read_text()) if path.exists() else None
    if search is None or search["meta"]["steps"] != steps:
        return []
    lines = []
    for video, levels in search["videos"].items():
        cls, seed = video.split(":")
        points = sorted((lv["computed"], lv["psnr"]) for lv in levels if lv["psnr"] is not None)
        cells = []
        for speed in GAP_SPEEDS:
            knob = [r for r in rows if r["class"] == cls and r["seed"] == int(seed) and r["reuse"] == reuse
                    and r["speed"] == speed]
            if not knob or not points[0][0] <= knob[0]["computed"] <= points[-1][0]:
                cells.append("n/a")
                continue
            best = float(np.interp(knob[0]["computed"], *zip(*points)))
            cells.append(f"{knob[0]['psnr'] - best:+.1f} dB ({knob[0]['computed']} steps)")
        lines.append(f"| {reuse} | {video} | " + " | ".join(cells) + " |")
    return lines


def report(rows: list[dict], classes: list[str], model: str, speeds: tuple[float, ...], steps: int) -> str:
    speeds = tuple(s for s in speeds if any(r["speed"] == s for r in rows))
    lines = ["cells: mean PSNR (dB) / motion energy ratio over seeds; last column: the largest loss of quality "
             "when asking for less speed", "",
             "| reuse | class | " + " | ".join(f"{s:g}x" for s in speeds) + " | worst drop |",
             "|---|---|" + "---|" * (len(speeds) + 1)]
    for reuse in dict.fromkeys(r["reuse"] for r in rows):
        for cls in [*classes, None]:
            where = {"reuse": reuse} | ({"class": cls} if cls else {})
            curve = [mean_of(rows, "psnr", speed=s, **where) for s in speeds]
            motion = [mean_of(rows, "motion_energy", speed=s, **where) for s in speeds]
            cells = [f"{p:.1f} / {m:.2f}" for p, m in zip(curve, motion)]
            lines.append(f"| {reuse} | {cls or '**mean**'} | " + " | ".join(cells) + f" | {worst_drop(curve):.2f} dB |")
    gaps = search_gap(rows, model, "hold", steps) + search_gap(rows, model, "forecast", steps)
    if gaps:
        lines += ["", "knob minus greedy search (best found at the same compute):", "",
                  "| reuse | video | " + " | ".join(f"{s:g}x" for s in GAP_SPEEDS) + " |",
                  "|---|---|" + "---|" * len(GAP_SPEEDS)]
        lines += gaps
    return "\n".join(lines)


if __name__ == "__main__":
    main()
