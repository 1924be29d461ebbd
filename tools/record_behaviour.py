"""Record what the pack does on a fixed set of runs, to prove a refactor changed nothing (tests/test_behaviour.py).

    .venv/bin/python tools/record_behaviour.py --pack-root PATH --out tests/data/behaviour.json

Samples the held-out tiny model (20 steps, 3x8x8 latent, seed 1, CFG 5) through ComfyUI's KSampler with AdaCache Patch
Model at: the knob from 1x to 10x with hold and forecast, the three presets with and without MoReg, a custom codebook,
start/end percent, a plan from AdaCache Plan Search (made here from the run's own sigmas), CFG 1, heun, and 3, 7 and 30
steps. Per run it keeps which calls computed, the notes, what chose the steps, the decisions and a fingerprint of the
samples. ``--pack-root``: the repository whose pack (and tools) run, e.g. a worktree of an earlier commit, so the file
records that commit's behaviour; the shipped file was first recorded at commit 67b715c, before the schedule module and
the split of the bridge and the settings, and again when reuse hold's ranking gained its bend (tests/test_behaviour.py).
"""
from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

CASES_STEPS = 20


def cases(moreg) -> list[tuple[str, dict, dict]]:
    """(name, Patch Model settings, sampling options) of every recorded run."""
    runs = [(f"knob {speed:g}x {reuse}", {"target_speedup": speed, "reuse": reuse}, {})
            for speed in (1.0, 1.5, 2.0, 3.0, 4.0, 10.0) for reuse in ("hold", "forecast")]
    for preset in ("paper: fastest (fast, 30 steps)", "paper: middle (100 steps)", "paper: slowest (slow, 30 steps)"):
        runs += [(f"paper {preset}", {"preset": preset}, {}),
                 (f"paper {preset} with MoReg", {"preset": preset, "moreg": moreg}, {})]
    return runs + [
        ("custom codebook", {"preset": "custom", "custom_codebook": "0.02:3, 0.1:2, 1:1"}, {}),
        ("knob 2x in a window", {"target_speedup": 2.0, "start_percent": 0.2, "end_percent": 0.7}, {}),
        ("paper in a window", {"start_percent": 0.3, "end_percent": 0.9}, {}),
        ("knob 2x cfg 1", {"target_speedup": 2.0, "reuse": "forecast"}, {"cfg": 1.0}),
        ("knob 2x heun", {"target_speedup": 2.0, "reuse": "forecast"}, {"sampler": "heun"}),
        ("paper with MoReg, 30 steps", {"moreg": moreg}, {"steps": 30}),
        ("knob 3x, 7 steps", {"target_speedup": 3.0}, {"steps": 7}),
        ("knob 2x, 3 steps", {"target_speedup": 2.0}, {"steps": 3}),
    ]


def record(h) -> dict:
    """Every case's run data, as plain JSON."""
    import comfy.samplers
    import torch

    from tools import comfy_runtime

    base, conds, empty = h.load_tiny("heldout")
    latent = torch.zeros(1, 16, 3, 8, 8)
    out = {}

    def run(name: str, model, steps: int = CASES_STEPS, cfg: float = 5.0, sampler: str = "euler") -> None:
        samples = h.ksample(model, conds["fast"], empty, latent, steps=steps, cfg=cfg, seed=1, sampler=sampler)
        trace = h.session_of(model).last_run
        out[name] = {"calls": [[c.step, c.branches, c.computed] for c in trace.calls], "notes": trace.notes,
                     "chosen_by": trace.chosen_by, "budget": trace.budget,
                     "decisions": [[d.step, d.change, d.distance, d.reuse_length, d.next_step, d.moreg_factor]
                                   for d in trace.decisions],
                     "samples": [samples.double().sum().item(), samples.double().abs().sum().item()]}

    for name, settings, options in cases(h.moreg()):
        run(name, h.adacache(None, base, **settings), **options)
    # a plan from Plan Search: a drop order for this run's own sigmas (the late steps first, then every other one)
    searched_plan = comfy_runtime.boot().pack.adacache_core.searched_plan  # the pack's own, of --pack-root
    session = h.session_of(h.adacache(None, base, target_speedup=2.0))
    sigmas = comfy.samplers.calculate_sigmas(base.get_model_object("model_sampling"), "simple", CASES_STEPS).tolist()
    order = (*range(CASES_STEPS - 3, 0, -2), *range(CASES_STEPS - 4, 0, -2))
    plan = searched_plan.SearchedPlan(session.arch.name, session.num_blocks, "forecast", tuple(sigmas), order,
                                      (math.inf,) * len(order), "record_behaviour").to_text()
    for speed in (1.5, 2.0, 3.0):
        run(f"plan at {speed:g}x", h.adacache(None, base, target_speedup=speed, reuse="forecast", plan=plan))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--pack-root", type=Path, default=Path(__file__).resolve().parent.parent)
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()
    sys.path.insert(0, str(args.pack_root.resolve()))
    from tools import comfy_runtime, pack_calls

    comfy_runtime.boot()
    args.out.write_text(json.dumps(record(pack_calls), indent=0) + "\n")
    print("wrote", args.out)


if __name__ == "__main__":
    main()
