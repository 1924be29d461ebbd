"""What the probe measures: the gated self-attention residual (the paper's) against the whole block's.

    .venv/bin/python benchmarks/bench_probe_residual.py [--model motion|heldout] [--seeds 3] [--steps 30]

On one of the project's trained tiny Wan models (``motion``, tuned on; ``heldout``, tuned on by
nobody), for every motion class and seed, side by side in one
process: the unpatched run, then each paper preset with ``probe_residual`` attention and block
(MoReg off, then MoReg with the paper's defaults). Per row: computed steps, PSNR of the final
latents against the unpatched run, the median per-step distance the codebook saw, and the range of
MoReg's motion scores; then the mean PSNR gain over uniform every-k-th-step schedules at the same
compute (k = 2..6, interpolated per class and seed). Then, for hand-tuned MoReg scales (``--tuned-scales``), the computed steps of
the still and the fast class per seed with each probe (*fast* preset): how well each probe's motion
score tells them apart (``--tuned-scales ''`` skips that). Writes
benchmarks/results/probe_residual[_heldout].json and prints markdown tables.
"""
from __future__ import annotations

import json
import statistics
import sys

import numpy as np
import torch

from tiny_runs import REPO, load, parser

PRESETS = ("fast (paper, 30 steps)", "slow (paper, 30 steps)", "paper (100 steps)")


def main() -> None:
    ap = parser(__doc__, "motion")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--tuned-scales", default="0.12,0.15,0.18", help="hand-tuned fixed MoReg scales to compare")
    args = ap.parse_args()

    h, base, conds, neg, latent = load(args)
    import comfy.sd
    from tools import comfy_runtime
    from tools.quality import psnr

    rt = comfy_runtime.boot()
    paper_moreg = h.moreg()
    rows, uniform = [], []
    for cls, pos in conds.items():
        for seed in range(args.seeds):
            ref = h.ksample(base, pos, neg, latent, steps=args.steps, seed=seed)
            for k in range(2, 7):
                m = h.adacache(rt, base, preset="custom", custom_codebook=f"1000:{k}")
                out = h.ksample(m, pos, neg, latent, steps=args.steps, seed=seed)
                uniform.append({"class": cls, "seed": seed, "computed": len(h.session_of(m).last_run.computed_steps()),
                                "psnr": psnr(out, ref)})
            for preset in PRESETS:
                for probe in ("attention", "block"):
                    for moreg in (None, paper_moreg):
                        m = h.adacache(rt, base, preset=preset, probe_residual=probe, moreg=moreg)
                        out = h.ksample(m, pos, neg, latent, steps=args.steps, seed=seed)
                        trace = h.session_of(m).last_run
                        distances = [d.change / d.gap for d in trace.decisions if d.change is not None and d.gap]
                        motions = [d.motion for d in trace.decisions if d.motion is not None]
                        rows.append({"class": cls, "seed": seed, "preset": preset, "probe_residual": probe,
                                     "moreg": moreg is not None, "computed": len(trace.computed_steps()),
                                     "total": trace.steps, "psnr": psnr(out, ref),
                                     "median_change_per_step": statistics.median(distances),
                                     "motion": [min(motions), max(motions)] if motions else None})
            print(f"{cls} seed {seed} done", flush=True)

    separation = []
    for scale in (float(x) for x in args.tuned_scales.split(",") if x):
        for probe in ("attention", "block"):
            row = {"scale": scale, "probe_residual": probe}
            for cls in ("static", "fast"):
                row[cls] = []
                for seed in range(args.seeds):
                    m = h.adacache(rt, base, probe_residual=probe, moreg=h.moreg(motion_scale=scale))
                    h.ksample(m, conds[cls], neg, latent, steps=args.steps, seed=seed)
                    row[cls].append(len(h.session_of(m).last_run.computed_steps()))
            separation.append(row)

    out_dir = REPO / "benchmarks" / "results"
    out_dir.mkdir(exist_ok=True)
    meta = {"command": "benchmarks/bench_probe_residual.py " + " ".join(sys.argv[1:]), "torch": torch.__version__,
            "device": "cpu", "latent": list(latent.shape), "steps": args.steps, "cfg": 5.0, "sampler": "euler/simple"}
    suffix = "" if args.model == "motion" else f"_{args.model}"
    (out_dir / f"probe_residual{suffix}.json").write_text(
        json.dumps({"meta": meta, "rows": rows, "uniform": uniform, "tuned_moreg": separation}, indent=1))

    def gain_over_uniform(r: dict) -> float | None:
        """PSNR over the uniform schedules at the same compute; None outside their range (every 2nd to 6th step)."""
        xs, ys = zip(*sorted((u["computed"], u["psnr"]) for u in uniform if u["class"] == r["class"] and u["seed"] == r["seed"]))
        return r["psnr"] - float(np.interp(r["computed"], xs, ys)) if xs[0] <= r["computed"] <= xs[-1] else None

    def mean_gain(rs: list[dict]) -> str:
        gains = [gain_over_uniform(r) for r in rs]
        return "n/a" if None in gains else f"{statistics.mean(gains):+.1f} dB"

    print("\n| preset | probe | MoReg (0.385) | class | computed/total | PSNR dB | median change/step | motion scores |"
          " gain over uniform |")
    print("|---|---|---|---|---|---|---|---|---|")
    keyed: dict = {}
    for r in rows:
        keyed.setdefault((r["preset"], r["probe_residual"], r["moreg"], r["class"]), []).append(r)
    for (preset, probe, moreg, cls), rs in keyed.items():
        motion = [m for r in rs if r["motion"] for m in r["motion"]]
        print(f"| {preset} | {probe} | {'on' if moreg else 'off'} | {cls} "
              f"| {statistics.mean(r['computed'] for r in rs):.1f}/{rs[0]['total']} "
              f"| {statistics.mean(r['psnr'] for r in rs):.1f} "
              f"| {statistics.median(r['median_change_per_step'] for r in rs):.3f} "
              f"| {f'{min(motion):.2f}-{max(motion):.2f}' if motion else '-'} "
              f"| {mean_gain(rs)} |")
    print("\n| motion_scale | probe | static: computed per seed | fast: computed per seed |")
    print("|---|---|---|---|")
    for row in separation:
        print(f"| {row['scale']} | {row['probe_residual']} | {'/'.join(map(str, row['static']))} | {'/'.join(map(str, row['fast']))} |")


if __name__ == "__main__":
    main()
