"""What the probe measures: the gated self-attention residual (the paper's) against the whole block's.

    .venv/bin/python benchmarks/bench_probe_residual.py [--seeds 3] [--steps 30]

On the project's trained tiny Wan model, for every motion class and seed, side by side in one
process: the unpatched run, then each paper preset with ``probe_residual`` attention and block
(MoReg off, then MoReg with the paper's defaults). Per row: computed steps, PSNR of the final
latents against the unpatched run, the median per-step distance the codebook saw, and the range of
MoReg's motion scores. Then, for hand-tuned MoReg scales (``--tuned-scales``), the computed steps of
the still and the fast class per seed with each probe (*fast* preset): how well each probe's motion
score tells them apart. Writes benchmarks/results/probe_residual.json and prints markdown tables.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parent.parent
sys.path.append(str(REPO))
sys.path.append(str(REPO / "tests"))
from tools import comfy_runtime  # noqa: E402

PRESETS = ("fast (paper, 30 steps)", "slow (paper, 30 steps)", "paper (100 steps)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--classes", default="static,slow,fast,orbit")
    ap.add_argument("--tuned-scales", default="0.12,0.15,0.18")
    args = ap.parse_args()

    rt = comfy_runtime.boot()
    torch.set_num_threads(2)
    import comfy.sd
    import helpers as h
    from bench_tiny_model import psnr

    demo = rt.pack.nodes.demo
    base = comfy.sd.load_diffusion_model(str(comfy_runtime.FIXTURE_MODEL_DIR / demo.TINY_MODEL))
    paper_moreg = h.moreg()
    latent = torch.zeros(1, 16, 9, 16, 16)
    neg = [[demo.load_prompt("empty"), {}]]
    rows = []
    for cls in args.classes.split(","):
        pos = [[demo.load_prompt(cls), {}]]
        for seed in range(args.seeds):
            ref = h.ksample(base, pos, neg, latent, steps=args.steps, seed=seed)
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
                    h.ksample(m, [[demo.load_prompt(cls), {}]], neg, latent, steps=args.steps, seed=seed)
                    row[cls].append(len(h.session_of(m).last_run.computed_steps()))
            separation.append(row)

    out_dir = REPO / "benchmarks" / "results"
    out_dir.mkdir(exist_ok=True)
    meta = {"command": "benchmarks/bench_probe_residual.py " + " ".join(sys.argv[1:]), "torch": torch.__version__,
            "device": "cpu", "latent": list(latent.shape), "steps": args.steps, "cfg": 5.0, "sampler": "euler/simple"}
    (out_dir / "probe_residual.json").write_text(json.dumps({"meta": meta, "rows": rows, "tuned_moreg": separation}, indent=1))

    print("\n| preset | probe | MoReg (0.385) | class | computed/total | PSNR dB | median change/step | motion scores |")
    print("|---|---|---|---|---|---|---|---|")
    keyed: dict = {}
    for r in rows:
        keyed.setdefault((r["preset"], r["probe_residual"], r["moreg"], r["class"]), []).append(r)
    for (preset, probe, moreg, cls), rs in keyed.items():
        motion = [m for r in rs if r["motion"] for m in r["motion"]]
        print(f"| {preset} | {probe} | {'on' if moreg else 'off'} | {cls} "
              f"| {statistics.mean(r['computed'] for r in rs):.1f}/{rs[0]['total']} "
              f"| {statistics.mean(r['psnr'] for r in rs):.1f} "
              f"| {statistics.median(r['median_change_per_step'] for r in rs):.3f} "
              f"| {f'{min(motion):.2f}-{max(motion):.2f}' if motion else '-'} |")
    print("\n| motion_scale | probe | static: computed per seed | fast: computed per seed |")
    print("|---|---|---|---|")
    for row in separation:
        print(f"| {row['scale']} | {row['probe_residual']} | {'/'.join(map(str, row['static']))} | {'/'.join(map(str, row['fast']))} |")


if __name__ == "__main__":
    main()
