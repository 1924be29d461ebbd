"""Does the schedule adapt to the video on a model nobody tuned for? Both tiny models, side by side.

    .venv/bin/python benchmarks/bench_adaptive.py --model motion  [--seeds 3]
    .venv/bin/python benchmarks/bench_adaptive.py --model heldout [--seeds 3]

``motion`` is the project's tiny model (everything was tuned on it); ``heldout`` was trained apart,
on other data, at another size (tools/train_tiny_wan.py --recipe heldout) and tuned on by nobody.
For every motion class (stillest to fastest) and seed, in one process: the unpatched run; uniform
every-k-th-step schedules (k = 2..6, the compute-matched baseline); each paper preset without and
with MoReg at the paper's defaults, and with MoReg calibrated by AdaCache Calibrate on this model
(one run per class at seed 100, which is not evaluated); everything else at the node's defaults
(CFG 5, euler/simple, 30 steps). Per row: computed steps, PSNR of the final latents against the unpatched run, and the
motion energy ratio (frame-to-frame change of the output over that of the unpatched output); per
method, the PSNR gain over the uniform schedules at the same compute (interpolated per class, "n/a"
outside the uniform schedules' range). Writes benchmarks/results/adaptive_<model>.json and prints a
markdown table.

    .venv/bin/python benchmarks/bench_adaptive.py --model motion --budgets 2,3

runs the speed budget instead (``target_speedup``: every run computes the same number of steps),
with MoReg off and calibrated, to see what MoReg does at matched compute: only WHICH steps are
computed differs. Writes benchmarks/results/adaptive_budget_<model>.json.
"""
from __future__ import annotations

import json
import statistics
import sys

import numpy as np
import torch

from tiny_runs import REPO, load, parser

PRESETS = ("fast (paper, 30 steps)", "slow (paper, 30 steps)", "paper (100 steps)")
UNIFORM = (2, 3, 4, 5, 6)


def main() -> None:
    ap = parser(__doc__, "motion")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--budgets", default="", help="comma-separated target speedups: run the speed-budget comparison")
    args = ap.parse_args()
    budgets = [float(b) for b in args.budgets.split(",") if b]

    h, base, conds, empty, latent = load(args)
    from tools.quality import psnr
    from tools.tiny_video_data import latent_motion

    calibration = calibrate(base, conds, empty, latent, args.steps)
    settings = {"MoReg off": None, "MoReg (paper)": h.moreg(), "MoReg (calibrated)": h.moreg(calibration=calibration)}
    if budgets:
        settings = {name: settings[name] for name in ("MoReg off", "MoReg (calibrated)")}
    rows = []
    for cls, pos in conds.items():
        for seed in range(args.seeds):
            ref = h.ksample(base, pos, empty, latent, steps=args.steps, seed=seed)
            energy = latent_motion(ref)

            def record(method: str, preset: str, model) -> None:
                out = h.ksample(model, pos, empty, latent, steps=args.steps, seed=seed)
                trace = h.session_of(model).last_run
                rows.append({"class": cls, "seed": seed, "method": method, "preset": preset,
                             "computed": len(trace.computed_steps()), "psnr": psnr(out, ref),
                             "motion_energy": latent_motion(out) / energy, "unpatched_motion": energy})

            for k in UNIFORM:
                record("uniform", f"every {k}", h.adacache(None, base, preset="custom", custom_codebook=f"1000:{k}"))
            for preset in PRESETS if not budgets else ():
                for method, moreg in settings.items():
                    record(method, preset, h.adacache(None, base, preset=preset, moreg=moreg))
            for target in budgets:
                for method, moreg in settings.items():
                    record(method, f"budget {target:g}x", h.adacache(None, base, preset=PRESETS[0], moreg=moreg,
                                                                     target_speedup=target))
            print(f"{cls} seed {seed} done", flush=True)

    out_dir = REPO / "benchmarks" / "results"
    out_dir.mkdir(exist_ok=True)
    meta = {"command": "benchmarks/bench_adaptive.py " + " ".join(sys.argv[1:]), "torch": torch.__version__,
            "device": "cpu", "latent": list(latent.shape), "steps": args.steps, "cfg": 5.0, "sampler": "euler/simple"}
    name = f"adaptive_budget_{args.model}" if budgets else f"adaptive_{args.model}"
    (out_dir / f"{name}.json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=1))
    print(report(rows, list(conds)))


def calibrate(base, conds: dict, empty, latent: torch.Tensor, steps: int) -> str:
    """AdaCache Calibrate, chained over one run per class at seed 100 (a seed the benchmark does not evaluate)."""
    import nodes

    node, calibration = nodes.NODE_CLASS_MAPPINGS["AdaCacheCalibrate"], None
    for pos in conds.values():
        calibration = node.execute(model=base, positive=pos, negative=empty, latent_image={"samples": latent}, seed=100,
                                   steps=steps, cfg=5.0, sampler_name="euler", scheduler="simple", probe_blocks="middle",
                                   frame_strides="1", earlier_calibration=calibration).args[1]
    return calibration


def uniform_psnr_at(rows: list[dict], cls: str, computed: float) -> float | None:
    """PSNR of the uniform schedules of this class, interpolated at a computed-step count (None outside their range)."""
    points = sorted((statistics.mean(r["computed"] for r in rs), statistics.mean(r["psnr"] for r in rs))
                    for rs in _group([r for r in rows if r["class"] == cls and r["method"] == "uniform"], "preset").values())
    xs, ys = zip(*points)
    return float(np.interp(computed, xs, ys)) if xs[0] <= computed <= xs[-1] else None


def _group(rows: list[dict], *keys: str) -> dict:
    out: dict = {}
    for r in rows:
        out.setdefault(tuple(r[k] for k in keys) if len(keys) > 1 else r[keys[0]], []).append(r)
    return out


def report(rows: list[dict], classes: list[str]) -> str:
    """Per method and preset: computed steps, PSNR, gain over uniform at equal compute, motion energy, per class."""
    by_motion = sorted(classes, key=lambda c: statistics.mean(r["unpatched_motion"] for r in rows if r["class"] == c))
    still, fastest = by_motion[0], by_motion[-1]
    lines = ["| method | preset | " + " | ".join(classes) + f" | mean gain over uniform | computed {fastest} / {still} |",
             "|---|---|" + "---|" * (len(classes) + 2)]
    for (method, preset), rs in _group([r for r in rows if r["method"] != "uniform"], "method", "preset").items():
        cells, gains = [], []
        for cls in classes:
            c = [r for r in rs if r["class"] == cls]
            computed = statistics.mean(r["computed"] for r in c)
            quality = statistics.mean(r["psnr"] for r in c)
            baseline = uniform_psnr_at(rows, cls, computed)
            gains.append(None if baseline is None else quality - baseline)
            cells.append(f"{computed:.1f} / {quality:.1f} dB / {statistics.mean(r['motion_energy'] for r in c):.2f}")
        gain = "n/a" if None in gains else f"{statistics.mean(gains):+.1f} dB"
        ratio = (statistics.mean(r["computed"] for r in rs if r["class"] == fastest)
                 / statistics.mean(r["computed"] for r in rs if r["class"] == still))
        lines.append(f"| {method} | {preset.split(' (')[0]} | " + " | ".join(cells) + f" | {gain} | {ratio:.2f}x |")
    return ("cells: computed steps / PSNR / motion energy ratio (means over seeds); classes ordered by the unpatched "
            f"output's motion: {' < '.join(by_motion)}\n\n" + "\n".join(lines))


if __name__ == "__main__":
    main()
