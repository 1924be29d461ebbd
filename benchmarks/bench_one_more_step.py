"""What one more computed step does, from one setting of the speed knob: where the knob's plan errs.

    .venv/bin/python benchmarks/bench_one_more_step.py --model motion  [--speed 4]
    .venv/bin/python benchmarks/bench_one_more_step.py --model heldout [--speed 4]

With ``reuse: forecast`` (30 steps, euler/simple, CFG 5, block probe), per motion class at seed 0,
in one process, against the unpatched run: the schedule the knob plans at ``--speed``, the one it
plans with one step more (the step a slower setting adds), and that first schedule plus each other
single step in turn (the exact-steps schedule, tiny_runs.computing_exactly).

The knob promises that asking for less speed never costs quality. This shows, at one setting,
whether the step it adds is the one that helps: prints per added step the mean change of PSNR of
the final latents over the classes and per class, marks the knob's choice, and counts the steps
whose computation lowers PSNR. Writes benchmarks/results/one_more_step_<model>_<speed>x.json.
"""
from __future__ import annotations

import json
import statistics
import sys

import torch
from tiny_runs import REPO, computing_exactly, load, parser


def main() -> None:
    ap = parser(__doc__, "motion")
    ap.add_argument("--speed", type=float, default=4.0, help="the knob's setting to start from (target_speedup)")
    args = ap.parse_args()
    h, base, conds, empty, latent = load(args)
    from tools.quality import psnr

    def planned(speed: float, pos) -> frozenset[int]:
        """The steps the node computes at ``target_speedup`` ``speed`` (sampled as a user would)."""
        model = h.adacache(None, base, target_speedup=speed, reuse="forecast")
        h.ksample(model, pos, empty, latent, steps=args.steps)
        return frozenset(h.session_of(model).last_run.computed_steps())

    model = h.adacache(None, base, reuse="forecast")
    rows = []
    for cls, pos in conds.items():
        ref = h.ksample(base, pos, empty, latent, steps=args.steps)
        start = planned(args.speed, pos)
        slower = planned(args.steps / (len(start) + 1), pos)
        assert start < slower and len(slower) == len(start) + 1, (sorted(start), sorted(slower))  # the plans nest
        knob_next = slower - start

        def quality(computed: frozenset[int]) -> float:
            with computing_exactly(h, model, computed):
                return psnr(h.ksample(model, pos, empty, latent, steps=args.steps), ref)

        start_psnr = quality(start)
        for step in sorted(set(range(args.steps)) - start):
            rows.append({"class": cls, "start": sorted(start), "added": step, "knob_adds": step in knob_next,
                         "start_psnr": start_psnr, "psnr": quality(start | {step})})
        print(f"{cls} done", flush=True)

    meta = {"command": "benchmarks/bench_one_more_step.py " + " ".join(sys.argv[1:]), "torch": torch.__version__,
            "device": "cpu", "latent": list(latent.shape), "steps": args.steps, "cfg": 5.0,
            "sampler": "euler/simple", "seed": 0}
    out_path = REPO / "benchmarks" / "results" / f"one_more_step_{args.model}_{args.speed:g}x.json"
    out_path.parent.mkdir(exist_ok=True)
    out_path.write_text(json.dumps({"meta": meta, "rows": rows}, indent=1))
    print(report(rows))


def report(rows: list[dict]) -> str:
    """Per added step: the mean and per-class change of PSNR; the knob's choice marked."""
    classes = list(dict.fromkeys(r["class"] for r in rows))
    gains = {}
    for r in rows:
        gains.setdefault(r["added"], {})[r["class"]] = r["psnr"] - r["start_psnr"]
    knob = {r["added"] for r in rows if r["knob_adds"]}
    lines = [f"start: the knob's schedule {rows[0]['start']} (the same for every class: it depends on the sigmas only)",
             "", "| added step | mean change | " + " | ".join(classes) + " |", "|---" * (len(classes) + 2) + "|"]
    for step, per_class in sorted(gains.items()):
        mark = " (the knob adds this)" if step in knob else ""
        lines.append(f"| {step}{mark} | {statistics.mean(per_class.values()):+.1f} dB | "
                     + " | ".join(f"{per_class[c]:+.1f}" for c in classes) + " |")
    means = {s: statistics.mean(g.values()) for s, g in gains.items()}
    best = max(means, key=means.get)
    lines += ["", f"the knob adds step(s) {sorted(knob)}: {statistics.mean(means[s] for s in knob):+.1f} dB on average; "
              f"the best single step is {best}: {means[best]:+.1f} dB; "
              f"{sum(m < 0 for m in means.values())} of {len(means)} added steps lower the mean PSNR"]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
