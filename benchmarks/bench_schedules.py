"""Sample schedules written out by hand: which steps compute, as a row of '#' (computed) and '.' (reused).

    .venv/bin/python benchmarks/bench_schedules.py --model clips --file benchmarks/data/tight_schedules.json
    .venv/bin/python benchmarks/bench_schedules.py --model motion --classes static \\
        --rows "#########.#.#.#.#.#.##########" "########..#.#.#.#.#.#.#.#.####"

For asking "what would this schedule give?" without a rule in the pack that makes it: per class and seed,
the unpatched run, then each row sampled with exactly its steps computed (the pack's exact-steps schedule,
reuse ``--reuse``), PSNR of the final latents against the unpatched run. ``--file``: a JSON file
``{"steps": N, "schedules": {label: {speed: row}}}`` (a family of rows, one per speed, like the knob's);
its table gives the mean over classes per speed and the largest loss of one class when asking for less
speed. ``--rows``: rows on the command line, printed one per line. Writes
benchmarks/results/schedules_<model>_<file stem or 'rows'>[_hold].json.
"""
from __future__ import annotations

import json
import statistics
import sys
from pathlib import Path

import torch
from tiny_runs import REPO, computing_exactly, load, parser


def steps_of(row: str) -> frozenset[int]:
    if set(row) - {"#", "."}:
        sys.exit(f"a schedule row is '#' (computed) and '.' (reused), not {row!r}")
    return frozenset(i for i, c in enumerate(row) if c == "#")


def main() -> None:
    ap = parser(__doc__, "clips")
    ap.add_argument("--reuse", choices=("hold", "forecast"), default="forecast")
    ap.add_argument("--seeds", type=int, default=1)
    ap.add_argument("--classes", help="comma-separated classes (default: all of the model's)")
    source = ap.add_mutually_exclusive_group(required=True)
    source.add_argument("--file", type=Path)
    source.add_argument("--rows", nargs="+")
    args = ap.parse_args()
    if args.file:
        spec = json.loads(args.file.read_text())
        families = {label: {float(s): row for s, row in rows.items()} for label, rows in spec["schedules"].items()}
        args.steps = spec["steps"]
    else:
        families = {row: {0.0: row} for row in args.rows}
    for row in (row for rows in families.values() for row in rows.values()):
        steps_of(row)  # checks the characters before anything is loaded
        if len(row) != args.steps:
            sys.exit(f"a schedule row has one character per step ({args.steps}), not {len(row)}: {row!r}")
    h, base, conds, empty, latent = load(args)
    from tools.quality import psnr

    classes = args.classes.split(",") if args.classes else list(conds)
    model = h.adacache(None, base, reuse=args.reuse)
    results = []
    for cls in classes:
        for seed in range(args.seeds):
            reference = h.ksample(base, conds[cls], empty, latent, steps=args.steps, seed=seed)
            for label, rows in families.items():
                for speed, row in rows.items():
                    with computing_exactly(h, model, steps_of(row)):
                        out = h.ksample(model, conds[cls], empty, latent, steps=args.steps, seed=seed)
                    results.append({"class": cls, "seed": seed, "label": label, "speed": speed, "row": row,
                                    "psnr": psnr(out, reference)})
                    if not args.file:
                        print(f"{cls}:{seed} {row} {results[-1]['psnr']:.1f} dB", flush=True)
    name = (args.file.stem if args.file else "rows") + ("_hold" if args.reuse == "hold" else "")
    out_path = REPO / "benchmarks" / "results" / f"schedules_{args.model}_{name}.json"
    meta = {"command": "benchmarks/bench_schedules.py " + " ".join(sys.argv[1:]), "steps": args.steps,
            "reuse": args.reuse, "torch": torch.__version__}
    out_path.write_text(json.dumps({"meta": meta, "rows": results}, indent=1))
    if args.file:
        print(table(results, families, classes))


def table(results: list[dict], families: dict, classes: list[str]) -> str:
    """Per family: mean PSNR over classes and seeds at each speed, and the largest loss of one class."""
    speeds = sorted({s for rows in families.values() for s in rows})
    lines = ["| schedules | " + " | ".join(f"{s:g}x" for s in speeds) + " | worst class drop |",
             "|---|" + "---|" * (len(speeds) + 1)]
    for label in families:
        def mean(speed, **where):
            return statistics.mean(r["psnr"] for r in results if r["label"] == label and r["speed"] == speed
                                   and all(r[k] == v for k, v in where.items()))
        curves = [[mean(s, **{"class": c}) for s in speeds] for c in classes]
        drop = max([0.0] + [c[i] - c[i - 1] for c in curves for i in range(1, len(c))])
        lines.append(f"| {label} | " + " | ".join(f"{mean(s):.1f}" for s in speeds) + f" | {drop:.2f} |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
