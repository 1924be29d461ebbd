"""Reused steps: hold the last residual (the paper) or forecast it? Both tiny models, side by side.

    .venv/bin/python benchmarks/bench_forecast.py --model motion  [--seeds 3]
    .venv/bin/python benchmarks/bench_forecast.py --model heldout [--seeds 3]

Per motion class and seed, in one process, against the unpatched run (30 steps, euler/simple,
CFG 5): uniform every-k-th-step schedules (the same schedule whatever is added on reused steps)
and the three presets (whose later decisions may differ), each with ``reuse`` ``hold`` (the paper's)
and ``forecast`` (along the steps, reaching at most one last gap past the last computed step).

Per row: computed steps, PSNR of the final latents, motion energy ratio. Writes
benchmarks/results/forecast_<model>.json and prints a markdown table of means per class.
"""
from __future__ import annotations

import json
import statistics
import sys

import torch
from tiny_runs import REPO, load, parser

SCHEDULES = {"every 3": ("custom", "1000:3"), "every 4": ("custom", "1000:4"), "every 6": ("custom", "1000:6"),
             "fast": ("paper: fastest (fast, 30 steps)", ""), "slow": ("paper: slowest (slow, 30 steps)", ""),
             "paper": ("paper: middle (100 steps)", "")}
VARIANTS = ("hold", "forecast")


def main() -> None:
    ap = parser(__doc__, "motion")
    ap.add_argument("--seeds", type=int, default=3)
    args = ap.parse_args()
    h, base, conds, empty, latent = load(args)
    from tools.quality import psnr
    from tools.tiny_video_data import latent_motion

    rows = []
    for cls, pos in conds.items():
        for seed in range(args.seeds):
            ref = h.ksample(base, pos, empty, latent, steps=args.steps, seed=seed)
            energy = latent_motion(ref)
            for schedule, (preset, codebook) in SCHEDULES.items():
                for variant in VARIANTS:
                    model = h.adacache(None, base, preset=preset, custom_codebook=codebook or "1000:1", reuse=variant)
                    out = h.ksample(model, pos, empty, latent, steps=args.steps, seed=seed)
                    rows.append({"class": cls, "seed": seed, "schedule": schedule, "variant": variant,
                                 "computed": len(h.session_of(model).last_run.computed_steps()), "psnr": psnr(out, ref),
                                 "motion_energy": latent_motion(out) / energy, "unpatched_motion": energy})
            print(f"{cls} seed {seed} done", flush=True)

    meta = {"command": "benchmarks/bench_forecast.py " + " ".join(sys.argv[1:]), "torch": torch.__version__, "device": "cpu",
            "latent": list(latent.shape), "steps": args.steps, "cfg": 5.0, "sampler": "euler/simple"}
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
