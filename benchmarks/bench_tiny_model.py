"""AdaCache vs unpatched vs ComfyUI's EasyCache on the project's trained tiny Wan model.

    .venv/bin/python benchmarks/bench_tiny_model.py [--seeds 2] [--steps 30]

For every motion class and seed, in one process and side by side: the unpatched run; AdaCache for
each preset and a few custom codebooks, with and without MoReg; EasyCache over a threshold sweep.
Each row gives computed steps (counted from real block executions), the sampler's wall-clock
speedup against the unpatched run of the same prompt and seed, and PSNR of the final latents
against it. EasyCache is shown at the threshold whose computed-step count is closest to the row's.
Writes benchmarks/results/tiny_model.json and prints a markdown table (paste into RESULTS.md).
"""
from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parent.parent
sys.path.append(str(REPO))
sys.path.append(str(REPO / "tests"))
from tools import comfy_runtime  # noqa: E402

EASYCACHE_THRESHOLDS = (0.02, 0.05, 0.08, 0.12, 0.16, 0.2, 0.3, 0.45, 0.7, 1.0)
CODEBOOKS = {
    "fast (paper, 30 steps)": {},
    "slow (paper, 30 steps)": {},
    "paper (100 steps)": {},
    "custom 0.1:4, 1:1": {"preset": "custom", "custom_codebook": "0.1:4, 1.0:1"},
    "custom 0.3:3, 1:2": {"preset": "custom", "custom_codebook": "0.3:3, 1.0:2"},
    "budget 2x": {"target_speedup": 2.0},
    "budget 3x": {"target_speedup": 3.0},
}


def psnr(test: torch.Tensor, ref: torch.Tensor) -> float:
    mse = torch.mean((test - ref) ** 2).item()
    return math.inf if mse == 0 else 10 * math.log10(((ref.max() - ref.min()).item()) ** 2 / mse)


class Timed:
    """Runs the real KSampler and counts real executions of the first block."""

    def __init__(self, base):
        self.block = base.model.diffusion_model.blocks[0]

    def __call__(self, model, pos, neg, latent, steps, seed):
        import helpers as h

        calls = []
        handle = self.block.register_forward_hook(lambda *a: calls.append(1))
        try:
            start = time.perf_counter()
            out = h.ksample(model, pos, neg, latent, steps=steps, seed=seed)
            seconds = time.perf_counter() - start
        finally:
            handle.remove()
        return out, seconds, len(calls)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", type=int, default=2)
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--classes", default="static,slow,fast,orbit")
    ap.add_argument("--motion-scale", type=float, default=0.15,
                    help="MoReg motion_scale (the tiny model's motion scores are 0.04-0.28; the paper's 0.385 fits Open-Sora)")
    args = ap.parse_args()

    rt = comfy_runtime.boot()
    torch.set_num_threads(2)
    import comfy.sd
    import helpers as h
    import nodes

    demo = rt.pack.nodes.demo
    base = comfy.sd.load_diffusion_model(str(comfy_runtime.FIXTURE_MODEL_DIR / demo.TINY_MODEL))
    run = Timed(base)
    moreg = h.moreg(motion_scale=args.motion_scale)
    easycache = nodes.NODE_CLASS_MAPPINGS["EasyCache"]
    latent = torch.zeros(1, 16, 9, 16, 16)
    neg = [[demo.load_prompt("empty"), {}]]
    rows = []
    for cls in args.classes.split(","):
        pos = [[demo.load_prompt(cls), {}]]
        for seed in range(args.seeds):
            ref, t_ref, n_ref = run(base, pos, neg, latent, args.steps, seed)
            ref2, t_ref2, _ = run(base, pos, neg, latent, args.steps, seed)
            t_ref = min(t_ref, t_ref2)
            ec = []
            for thr in EASYCACHE_THRESHOLDS:
                m = easycache.execute(base, thr, 0.15, 0.95, False).args[0]
                out, t, n = run(m, pos, neg, latent, args.steps, seed)
                ec.append({"threshold": thr, "computed": n, "speedup": t_ref / t, "psnr": psnr(out, ref)})
            for name, settings in CODEBOOKS.items():
                for use_moreg in (False, True):
                    preset = {"preset": name} if name in rt.pack.adacache_core.PRESETS else {}
                    m = h.adacache(rt, base, **(preset | settings | {"moreg": moreg if use_moreg else None}))
                    out, t, n = run(m, pos, neg, latent, args.steps, seed)
                    match = min(ec, key=lambda r: (abs(r["computed"] - n), -r["psnr"]))
                    rows.append({"class": cls, "seed": seed, "codebook": name, "moreg": use_moreg, "computed": n,
                                 "total": n_ref, "speedup": t_ref / t, "psnr": psnr(out, ref),
                                 "easycache": match})
            print(f"{cls} seed {seed} done", flush=True)

    out_dir = REPO / "benchmarks" / "results"
    out_dir.mkdir(exist_ok=True)
    meta = {"command": "benchmarks/bench_tiny_model.py " + " ".join(sys.argv[1:]), "torch": torch.__version__,
            "device": "cpu", "latent": list(latent.shape), "steps": args.steps, "cfg": 5.0, "sampler": "euler/simple"}
    (out_dir / "tiny_model.json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=1))

    print("\n| codebook | MoReg | class | computed/total | speedup | PSNR dB | EasyCache thr | EC computed | EC speedup | EC PSNR dB |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    keyed = {}
    for r in rows:
        keyed.setdefault((r["codebook"], r["moreg"], r["class"]), []).append(r)
    for (name, use_moreg, cls), rs in keyed.items():
        mean = lambda f: statistics.mean(f(r) for r in rs)  # noqa: E731
        print(f"| {name} | {'on' if use_moreg else 'off'} | {cls} | {mean(lambda r: r['computed']):.1f}/{rs[0]['total']} "
              f"| {mean(lambda r: r['speedup']):.2f}x | {mean(lambda r: r['psnr']):.1f} "
              f"| {'/'.join(str(r['easycache']['threshold']) for r in rs)} | {mean(lambda r: r['easycache']['computed']):.1f} "
              f"| {mean(lambda r: r['easycache']['speedup']):.2f}x | {mean(lambda r: r['easycache']['psnr']):.1f} |")


if __name__ == "__main__":
    main()
