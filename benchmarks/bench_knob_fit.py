"""How the speed knob's forecast constant was chosen: mean PSNR along the knob for each candidate.

    .venv/bin/python benchmarks/bench_knob_fit.py --model motion            (the tuned-on model: choose here)
    .venv/bin/python benchmarks/bench_knob_fit.py --model heldout --noise 0.25  (then check the choice once)

For each candidate forecast miss (step_ranking.SLOPE_NOISE at each value of --noise, and the earlier
bend ``k (k + gap) / 2``), samples every motion class at seed 0 with ``target_speedup`` 1.25x-4x and
``reuse: forecast`` (30 steps, euler/simple, CFG 5, block probe) and prints the mean PSNR against the
unpatched run per speed and over all speeds, and the largest drop when asking for less speed. The
candidate is set on the pack's own step_ranking module, so the node runs exactly as a user's would.
"""
from __future__ import annotations

import importlib
import statistics

from bench_knob import SPEEDS, worst_drop
from tiny_runs import load, parser

EARLIER_BEND = "k(k+gap)/2"


def main() -> None:
    ap = parser(__doc__, "motion")
    ap.add_argument("--noise", default="0,0.25,0.5,1", help="SLOPE_NOISE values to try, comma-separated")
    args = ap.parse_args()
    h, base, conds, empty, latent = load(args)
    from tools.quality import psnr

    package = type(h.session_of(h.adacache(None, base))).__module__.rsplit(".", 1)[0]
    plan = importlib.import_module(package + ".step_ranking")  # the module the node's pack plans with
    chosen_noise, chosen_miss = plan.SLOPE_NOISE, plan._forecast_miss
    refs = {cls: h.ksample(base, pos, empty, latent, steps=args.steps, seed=0) for cls, pos in conds.items()}
    for candidate in [*args.noise.split(","), EARLIER_BEND]:
        if candidate == EARLIER_BEND:
            plan._forecast_miss = lambda reach, gap: reach * (reach + gap) / 2
        else:
            plan.SLOPE_NOISE = float(candidate)
        curves = {cls: [psnr(h.ksample(h.adacache(None, base, target_speedup=speed, reuse="forecast"), pos, empty,
                                       latent, steps=args.steps, seed=0), refs[cls]) for speed in SPEEDS]
                  for cls, pos in conds.items()}
        plan.SLOPE_NOISE, plan._forecast_miss = chosen_noise, chosen_miss
        mean = [statistics.mean(curve[i] for curve in curves.values()) for i in range(len(SPEEDS))]
        print(f"{candidate:>10}: mean {statistics.mean(mean):.2f} dB | " + " ".join(f"{p:.1f}" for p in mean)
              + f" | worst drop: mean curve {worst_drop(mean):.2f}, per class "
              + f"{max(worst_drop(c) for c in curves.values()):.2f} dB", flush=True)


if __name__ == "__main__":
    main()
