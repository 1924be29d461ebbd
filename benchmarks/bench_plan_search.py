"""AdaCache Plan Search with and without replaying earlier runs: the same plan, and how much model work each takes.

    .venv/bin/python benchmarks/bench_plan_search.py [--model motion] [--latent 5x16x16] [--candidates 6]

The node's own search (nodes/plan_search.search_plan) on a tiny model, two prompts (the stillest and the fastest
class), 30 steps euler/simple, cfg 5: once sampling every candidate run from scratch, once replaying the run
each candidate differs from up to the step it gives up (adacache_core/replay.py). Counts the sampling runs, the
model calls that ran the blocks (forward hooks on every block) and the wall time of each, side by side, and checks
that both found the same plan (drop order and PSNR per level). Writes benchmarks/results/plan_search_<model>.json.
"""
from __future__ import annotations

import json
import sys
import time

import torch

from tiny_runs import REPO, load, parser


def main() -> None:
    ap = parser(__doc__, "motion")
    ap.add_argument("--latent", default="5x16x16", help="frames x height x width of the search latent")
    ap.add_argument("--candidates", type=int, default=6)
    args = ap.parse_args()
    h, base, conds, empty, _ = load(args)
    from tools import comfy_runtime

    plan_search = comfy_runtime.boot().pack.nodes.plan_search
    frames, height, width = (int(n) for n in args.latent.split("x"))
    latent = {"samples": torch.zeros(1, 16, frames, height, width)}
    prompts = [conds["static"], conds["fast"]] if "static" in conds else list(conds.values())[:2]
    rows = {}
    for replay in (False, True):
        counter = h.BlockCounter(base)
        started = time.perf_counter()
        with counter:
            plan = plan_search.search_plan(base, prompts, empty, latent, 0, args.steps, 5.0, "euler", "simple",
                                           args.candidates, "forecast", "bench", replay=replay)
        seconds = time.perf_counter() - started
        runs = len(prompts) * (1 + plan_search.search_runs(args.steps - 3, args.candidates))
        rows["replay" if replay else "from scratch"] = {
            "runs": runs, "block_calls": counter.count, "seconds": round(seconds, 1),
            "drop_order": list(plan.drop_order), "psnr": [round(p, 4) for p in plan.psnr]}
        print(f"{'replay' if replay else 'from scratch'}: {runs} runs, {counter.count} block calls, {seconds:.0f} s",
              flush=True)
    before, after = rows["from scratch"], rows["replay"]
    same = before["drop_order"] == after["drop_order"] and before["psnr"] == after["psnr"]
    print(f"same plan: {same}; model work {after['block_calls'] / before['block_calls']:.2f} of before, "
          f"wall time {after['seconds'] / before['seconds']:.2f} of before")
    out = REPO / "benchmarks" / "results" / f"plan_search_{args.model}.json"
    out.write_text(json.dumps({"meta": {"command": "benchmarks/bench_plan_search.py " + " ".join(sys.argv[1:]),
                                        "steps": args.steps, "latent": args.latent, "candidates": args.candidates},
                               "same_plan": same, "rows": rows}, indent=1) + "\n")
    print("wrote", out.relative_to(REPO))


if __name__ == "__main__":
    main()
