"""Reused steps: hold the last residual (the paper) or forecast it? Both tiny models, side by side.

    .venv/bin/python benchmarks/bench_forecast.py --model motion  [--seeds 3]
    .venv/bin/python benchmarks/bench_forecast.py --model heldout [--seeds 3]

Per motion class and seed, in one process, against the unpatched run (30 steps, euler/simple,
CFG 5): uniform every-k-th-step schedules (the same schedule whatever is added on reused steps)
and the three presets (whose later decisions may differ), each with

* ``hold``: the paper's reuse;
* ``forecast`` along sigma and along the step index (what the node ships), reaching at most one last
  gap past the last computed step (span_memory.MAX_REACH);
* ``forecast`` along sigma with unlimited reach (the guard off), to show what the guard does.

Per row: computed steps, PSNR of the final latents, motion energy ratio. Writes
benchmarks/results/forecast_<model>.json and prints a markdown table of means per class.
"""
from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parent.parent
sys.path.append(str(REPO))
from tools import comfy_runtime  # noqa: E402

SCHEDULES = {"every 3": ("custom", "1000:3"), "every 4": ("custom", "1000:4"), "every 6": ("custom", "1000:6"),
             "fast": ("fast (paper, 30 steps)", ""), "slow": ("slow (paper, 30 steps)", ""), "paper": ("paper (100 steps)", "")}
VARIANTS = {"hold": ("hold", "sigma", None), "forecast, sigma": ("forecast", "sigma", None),
            "forecast, step": ("forecast", "step", None), "forecast, sigma, unlimited reach": ("forecast", "sigma", math.inf)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", choices=("motion", "heldout"), default="motion")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--steps", type=int, default=30)
    args = ap.parse_args()

    rt = comfy_runtime.boot()
    torch.set_num_threads(2)
    from tools import pack_calls as h
    from tools.quality import psnr
    from tools.tiny_video_data import latent_motion

    core = rt.pack.adacache_core
    base, conds, empty = h.load_tiny(args.model)
    latent = torch.zeros(1, 16, 9, 16, 16)
    shipped_reach = core.span_memory.MAX_REACH

    def patched(preset: str, codebook: str, reuse: str, variable: str):
        def config_for(num_blocks: int):
            return core.AdaCacheConfig(codebook=core.resolve_codebook(preset, codebook), preset=preset,
                                       probe_blocks=core.parse_probe_blocks("middle", num_blocks), reuse=reuse,
                                       forecast_variable=variable)
        return core.comfy_bridge.patch_model(base, config_for)[0]

    rows = []
    for cls, pos in conds.items():
        for seed in range(args.seeds):
            ref = h.ksample(base, pos, empty, latent, steps=args.steps, seed=seed)
            energy = latent_motion(ref)
            for schedule, (preset, codebook) in SCHEDULES.items():
                for variant, (reuse, variable, reach) in VARIANTS.items():
                    core.span_memory.MAX_REACH = shipped_reach if reach is None else reach
                    model = patched(preset, codebook, reuse, variable)
                    out = h.ksample(model, pos, empty, latent, steps=args.steps, seed=seed)
                    rows.append({"class": cls, "seed": seed, "schedule": schedule, "variant": variant,
                                 "computed": len(h.session_of(model).last_run.computed_steps()), "psnr": psnr(out, ref),
                                 "motion_energy": latent_motion(out) / energy, "unpatched_motion": energy})
            core.span_memory.MAX_REACH = shipped_reach
            print(f"{cls} seed {seed} done", flush=True)

    meta = {"command": "benchmarks/bench_forecast.py " + " ".join(sys.argv[1:]), "torch": torch.__version__, "device": "cpu",
            "latent": list(latent.shape), "steps": args.steps, "cfg": 5.0, "sampler": "euler/simple", "max_reach": shipped_reach}
    (REPO / "benchmarks" / "results" / f"forecast_{args.model}.json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=1))
    print(report(rows))


def report(rows: list[dict]) -> str:
    """Per schedule and variant: computed steps, PSNR and motion energy per class (stillest first), and
    the PSNR gain over hold (mean over classes and seeds, and the worst class)."""
    classes = sorted(dict.fromkeys(r["class"] for r in rows),
                     key=lambda c: statistics.mean(r["unpatched_motion"] for r in rows if r["class"] == c))
    mean = lambda rs, k: statistics.mean(r[k] for r in rs)  # noqa: E731
    lines = ["cells: computed / PSNR dB / motion energy ratio; classes by unpatched motion: " + " < ".join(classes), "",
             "| schedule | reuse | " + " | ".join(classes) + " | gain over hold (mean, worst class) |",
             "|---|---|" + "---|" * (len(classes) + 1)]
    for schedule in SCHEDULES:
        for variant in VARIANTS:
            cells, gains = [], []
            for cls in classes:
                rs = [r for r in rows if r["schedule"] == schedule and r["variant"] == variant and r["class"] == cls]
                held = [r for r in rows if r["schedule"] == schedule and r["variant"] == "hold" and r["class"] == cls]
                cells.append(f"{mean(rs, 'computed'):.1f} / {mean(rs, 'psnr'):.1f} / {mean(rs, 'motion_energy'):.2f}")
                gains.append(mean(rs, "psnr") - mean(held, "psnr"))
            gain = "" if variant == "hold" else f"{statistics.mean(gains):+.2f} dB, {min(gains):+.2f} dB"
            lines.append(f"| {schedule} | {variant} | " + " | ".join(cells) + f" | {gain} |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
