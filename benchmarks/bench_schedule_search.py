"""How good can a schedule be? A greedy search with real sampling runs, as a reference for the knob.

    .venv/bin/python benchmarks/bench_schedule_search.py --model motion  --reuse forecast
    .venv/bin/python benchmarks/bench_schedule_search.py --model heldout --reuse hold --videos static:0,fast:0

Per video (motion class and seed), in one process, against the unpatched run (30 steps, euler/simple,
CFG 5, the node's block probe): start with every step computed and drop, one at a time, the step
whose reuse costs least (the highest PSNR of the final latents after the drop, found by sampling
with each remaining optional step dropped in turn), down to ``--min-computed`` steps. The first and
the last two steps are never dropped (the pack always computes them). Each level's best-found PSNR
and schedule are kept, so one search gives the reference at every compute level.

A greedy search is a reference, not a proof of optimality: dropping the cheapest step first can
miss a schedule that only pays off after several drops. It costs about n^2/2 sampling runs per
video (about 350 for 30 steps down to 7).

``--latent 5x8x8`` searches at another latent size (frames x height x width): a preview of the model
that samples several times faster (benchmarks/RESULTS.md, "A searched plan": does a plan searched
there keep its value at the full size?).

``--candidates K`` tries at each level only the K steps whose drop the knob's own estimate ranks
cheapest (adacache_core/step_ranking.drop_cost): about K runs per level instead of one per optional step.
The loop is the one AdaCache Plan Search runs (adacache_core/searched_plan.search_drop_order).

``--videos static:0+fast:0`` searches one plan for several videos together: each level drops the step
whose loss keeps their mean PSNR highest.

Writes benchmarks/results/search_<model>_<reuse>.json; ``--latent``, ``--candidates`` and a joint search
add ``_<latent>``, ``_k<K>`` and ``_joint`` to the name (merged with earlier videos of that file).
"""
from __future__ import annotations

import json
import sys
import time

import torch
from tiny_runs import LATENT, REPO, computing_exactly, load, parser


def main() -> None:
    ap = parser(__doc__, "motion")
    ap.add_argument("--reuse", choices=("hold", "forecast"), default="forecast")
    ap.add_argument("--videos", default="static:0,fast:0", help="class:seed pairs, comma-separated; joined by + "
                                                                  "(static:0+fast:0): one search on their mean PSNR")
    ap.add_argument("--cfg", type=float, default=5.0)
    ap.add_argument("--min-computed", type=int, default=7)
    ap.add_argument("--latent", help="frames x height x width of the latent to search at, e.g. 5x8x8 "
                                     f"(default: {'x'.join(map(str, LATENT[2:]))}, the size every benchmark samples)")
    ap.add_argument("--candidates", type=int, default=0, help="try only this many drops per level, the ones the "
                                                                  "knob's estimate ranks cheapest (0: every optional step)")
    args = ap.parse_args()
    h, base, conds, empty, latent = load(args)
    if args.latent:
        latent = torch.zeros(*LATENT[:2], *(int(n) for n in args.latent.split("x")))
    from adacache_core.searched_plan import search_drop_order
    from tools.quality import psnr

    model = h.adacache(None, base, reuse=args.reuse)
    forced = {0, args.steps - 2, args.steps - 1}  # always computed by the pack

    def sample_with(computed: frozenset[int], pos, seed: int) -> torch.Tensor:
        """Sample computing exactly ``computed``; checks that the pack did."""
        with computing_exactly(h, model, computed):
            out = h.ksample(model, pos, empty, latent, steps=args.steps, cfg=args.cfg, seed=seed)
        got = h.session_of(model).last_run.computed_steps()
        assert set(got) == set(computed), (got, sorted(computed))
        return out

    variant = ((f"_{args.latent}" if args.latent else "") + (f"_k{args.candidates}" if args.candidates else "")
               + ("_joint" if "+" in args.videos else ""))
    out_path = REPO / "benchmarks" / "results" / f"search_{args.model}_{args.reuse}{variant}.json"
    results = json.loads(out_path.read_text()) if out_path.exists() else {"videos": {}}
    for video in args.videos.split(","):
        runs = [(conds[cls], int(seed)) for cls, seed in (part.split(":") for part in video.split("+"))]
        refs = [h.ksample(base, pos, empty, latent, steps=args.steps, cfg=args.cfg, seed=seed) for pos, seed in runs]
        for (pos, seed), ref in zip(runs, refs):  # every step computed: the unpatched output
            assert torch.equal(sample_with(frozenset(range(args.steps)), pos, seed), ref)
        sigmas = h.session_of(model).last_run.sigmas
        levels = [{"computed": args.steps, "psnr": None, "steps": list(range(args.steps))}]
        started = time.time()

        def score(computed: frozenset[int]) -> float:
            """Mean PSNR over the videos searched together."""
            return sum(psnr(sample_with(computed, pos, seed), ref) for (pos, seed), ref in zip(runs, refs)) / len(runs)

        def report(computed: int, dropped: int, value: float, runs: int) -> None:
            steps = sorted(set(levels[-1]["steps"]) - {dropped})
            levels.append({"computed": computed, "psnr": value, "steps": steps, "dropped": dropped})
            print(f"{video} {computed} computed: {value:.2f} dB (dropped {dropped}, {runs} runs, "
                  f"{time.time() - started:.0f} s)", flush=True)

        search_drop_order(sigmas, forced, args.reuse == "forecast", args.candidates, score, args.min_computed, report)
        results["videos"][video] = levels
        results["meta"] = {"command": "benchmarks/bench_schedule_search.py " + " ".join(sys.argv[1:]),
                           "torch": torch.__version__, "device": "cpu", "latent": list(latent.shape),
                           "steps": args.steps, "cfg": args.cfg, "sampler": "euler/simple", "reuse": args.reuse,
                           "probe": "block (the node's default)"}
        out_path.parent.mkdir(exist_ok=True)
        out_path.write_text(json.dumps(results, indent=1))  # after each video: a long search keeps what it found


if __name__ == "__main__":
    main()
