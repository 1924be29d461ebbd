"""Which steps matter on a tiny model: the quality lost when only step k is reused, for every k.

    .venv/bin/python benchmarks/bench_step_importance.py --model clips [--reuse forecast] [--seeds 1]

Per class and seed, against the unpatched run (30 steps, euler/simple, CFG 5): sample computing every step
but k (reused as the pack's ``reuse`` does), for every optional k, and take the PSNR of the final latents. A
low PSNR at step k means step k is expensive to reuse. On real models the first steps are the most
expensive (they choose the composition; benchmarks/data/real_weight_schedules.json); this shows whether a
tiny model agrees. Writes benchmarks/results/importance_<model>_<reuse>.json and prints, per class, the
loss by fifth of the run.
"""
from __future__ import annotations

import json
import sys

import torch
from tiny_runs import REPO, computing_exactly, load, parser


def main() -> None:
    ap = parser(__doc__, "clips")
    ap.add_argument("--reuse", choices=("hold", "forecast"), default="forecast")
    ap.add_argument("--seeds", type=int, default=1)
    args = ap.parse_args()
    h, base, conds, empty, latent = load(args)
    from tools.quality import psnr

    model = h.adacache(None, base, reuse=args.reuse)
    steps, forced = args.steps, {0, args.steps - 2, args.steps - 1}
    rows = {}
    for cls, pos in conds.items():
        for seed in range(args.seeds):
            reference = h.ksample(base, pos, empty, latent, steps=steps, seed=seed)
            losses = {}
            for k in sorted(set(range(steps)) - forced):
                with computing_exactly(h, model, frozenset(range(steps)) - {k}):
                    losses[k] = psnr(h.ksample(model, pos, empty, latent, steps=steps, seed=seed), reference)
            rows[f"{cls}:{seed}"] = losses
            fifths = [[v for k, v in losses.items() if k * 5 // steps == f] for f in range(5)]
            print(f"{cls}:{seed} mean PSNR by fifth of the run: "
                  + ", ".join(f"{sum(x) / len(x):.1f}" for x in fifths if x)
                  + f"; worst step {min(losses, key=losses.get)}", flush=True)
    out = REPO / "benchmarks" / "results" / f"importance_{args.model}_{args.reuse}.json"
    out.write_text(json.dumps({"meta": {"command": "benchmarks/bench_step_importance.py " + " ".join(sys.argv[1:]),
                                        "steps": steps, "reuse": args.reuse, "torch": torch.__version__},
                               "psnr_when_only_step_k_is_reused": rows}, indent=1))


if __name__ == "__main__":
    main()
