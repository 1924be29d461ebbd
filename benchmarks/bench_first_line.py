"""What the forecast's first-step rule buys: no line through steps 0 and 1 (span_memory.forms_line).

    .venv/bin/python benchmarks/bench_first_line.py --model motion
    .venv/bin/python benchmarks/bench_first_line.py --model heldout

Per motion class at seed 0, in one process, with ``reuse: forecast`` (30 steps, euler/simple, CFG 5,
block probe), each run twice: with the rule as shipped (step 1's residual is held until the next
computed step) and with it off (a line through steps 0 and 1, as before). The runs:

* only step 2 reused, every other step computed; then steps 2 and 3 reused (the rule's case in isolation);
* the speed knob at 1.25x (the knob's only setting that reuses step 2 after computing step 1);
* the paper's three presets (their codebook computes steps 0 and 1 and reuses the next ones).

Prints the mean PSNR of the final latents against the unpatched run per run and rule, and the
difference. Writes benchmarks/results/first_line_<model>.json. The rule is switched on the pack's own
modules, so the node runs exactly as a user's would.
"""
from __future__ import annotations

import contextlib
import importlib
import json
import statistics
import sys

import torch
from tiny_runs import REPO, computing_exactly, load, parser

PRESETS = ("paper: fastest (fast, 30 steps)", "paper: middle (100 steps)", "paper: slowest (slow, 30 steps)")


def main() -> None:
    args = parser(__doc__, "motion").parse_args()
    h, base, conds, empty, latent = load(args)
    from tools.quality import psnr

    probe = h.adacache(None, base)
    package = type(h.session_of(probe)).__module__.rsplit(".", 1)[0]
    bridge = importlib.import_module(package + ".comfy_bridge")
    shipped_rule = bridge.forms_line
    every = frozenset(range(args.steps))

    def sample(pos, settings: dict, computed: frozenset | None) -> tuple[torch.Tensor, int]:
        """Sample with the node's ``settings``; ``computed``: exactly these steps (the planner overridden)."""
        model = h.adacache(None, base, reuse="forecast", **settings)
        with computing_exactly(h, model, computed) if computed is not None else contextlib.nullcontext():
            out = h.ksample(model, pos, empty, latent, steps=args.steps)
        return out, len(h.session_of(model).last_run.computed_steps())

    runs = {"only step 2 reused": ({"target_speedup": 0.0}, every - {2}),
            "steps 2-3 reused": ({"target_speedup": 0.0}, every - {2, 3}),
            "knob 1.25x": ({"target_speedup": 1.25}, None),
            **{preset: ({"preset": preset, "target_speedup": 0.0}, None) for preset in PRESETS}}
    rows = []
    for cls, pos in conds.items():
        ref = h.ksample(base, pos, empty, latent, steps=args.steps)
        for name, (settings, computed) in runs.items():
            for rule in ("shipped", "off"):
                bridge.forms_line = shipped_rule if rule == "shipped" else (lambda step: True)
                try:
                    out, n = sample(pos, settings, computed)
                finally:
                    bridge.forms_line = shipped_rule
                rows.append({"class": cls, "run": name, "rule": rule, "computed": n, "psnr": psnr(out, ref)})
        print(f"{cls} done", flush=True)

    meta = {"command": "benchmarks/bench_first_line.py " + " ".join(sys.argv[1:]), "torch": torch.__version__,
            "device": "cpu", "latent": list(latent.shape), "steps": args.steps, "cfg": 5.0, "sampler": "euler/simple",
            "seed": 0}
    out_path = REPO / "benchmarks" / "results" / f"first_line_{args.model}.json"
    out_path.write_text(json.dumps({"meta": meta, "rows": rows}, indent=1))
    print("| run | computed | rule on (shipped) | rule off | on minus off |\n|---|---|---|---|---|")
    for name in runs:
        on, off = ([r for r in rows if r["run"] == name and r["rule"] == rule] for rule in ("shipped", "off"))
        mean_on, mean_off = (statistics.mean(r["psnr"] for r in side) for side in (on, off))
        computed = statistics.mean(r["computed"] for r in on)
        print(f"| {name} | {computed:.1f} | {mean_on:.1f} dB | {mean_off:.1f} dB | {mean_on - mean_off:+.1f} dB |")


if __name__ == "__main__":
    main()
