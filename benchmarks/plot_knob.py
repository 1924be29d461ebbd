"""The speed knob's curve next to the peers': PSNR and motion energy against compute, both tiny models.

    .venv/bin/python benchmarks/plot_knob.py

Reads what the benchmarks wrote (results/knob_<model>.json from bench_knob.py, results/peers_<model>.json
from bench_peers.py) and draws benchmarks/results/knob_chart.png: one row per tiny model; left PSNR
against the unpatched run, right motion energy kept, both against the compute fraction (1 / speed for
the knob, block executions / unpatched for the peers). The knob with `forecast` per motion class
(thin) and on average (thick), with `hold` on average, the knob following the plan AdaCache Plan Search finds
on two prompts (results/knob_<model>_chain_<model>_5x8x8_k6_joint.json, where it exists; `forecast`, dashed),
each peer's mean curve where bench_peers.py has run on that model, and the knob's earlier ranking by the sampler's
step sizes (results/knob_<model>_stepsizes.json, where it exists; dotted). Also benchmarks/results/artist_chart.png,
the README's one panel: quality against speed-up for the knob's default and the peers on ARTIST_MODEL. No sampling
here.
"""
from __future__ import annotations

import json
import math
import statistics

from tiny_runs import REPO

RESULTS = REPO / "benchmarks" / "results"
MODELS = {"motion": "blobs, tuned on", "heldout": "blobs, held out (nobody tuned on it)",
          "clips": "real clips, the ranking chosen here"}
PLAN_SEARCH = "5x8x8_k6_joint"  # bench_knob.py --chain M --chain-variant: the plan AdaCache Plan Search finds (two prompts)
ARTIST_MODEL = "clips"  # the README's one-panel chart: the test model whose first steps matter as on real models
PEERS = ("EasyCache", "LazyCache", "First-Block Cache", "TeaCache (fitted to the model)", "MagCache (fitted to the model)",
         "uniform every k")


def knob_curves(rows: list[dict], steps: int) -> dict[tuple[str, str], list[tuple[float, float, float]]]:
    """(reuse, class or 'mean') -> [(compute, PSNR, motion energy)] by ascending compute (computed / ``steps``)."""
    out: dict[tuple[str, str], list[tuple[float, float, float]]] = {}
    for reuse in dict.fromkeys(r["reuse"] for r in rows):
        for cls in [*dict.fromkeys(r["class"] for r in rows), "mean"]:
            points = []
            for speed in sorted({r["speed"] for r in rows}):
                rs = [r for r in rows if r["reuse"] == reuse and r["speed"] == speed and cls in ("mean", r["class"])]
                points.append((statistics.mean(r["computed"] for r in rs) / steps,
                               statistics.mean(r["psnr"] for r in rs), statistics.mean(r["motion_energy"] for r in rs)))
            out[(reuse, cls)] = sorted(points)
    return out


def peer_curves(rows: list[dict]) -> dict[str, list[tuple[float, float, float]]]:
    """Peer -> [(mean compute, mean PSNR, mean motion energy)] per setting, finite PSNR only."""
    out = {}
    for peer in PEERS:
        settings = dict.fromkeys(json.dumps(r["setting"]) for r in rows if r["method"] == peer)
        points = []
        for s in settings:
            rs = [r for r in rows if r["method"] == peer and json.dumps(r["setting"]) == s]
            if all(math.isfinite(r["psnr"]) for r in rs):
                points.append((statistics.mean(r["compute"] for r in rs), statistics.mean(r["psnr"] for r in rs),
                               statistics.mean(r["motion_energy"] for r in rs)))
        if points:
            out[peer] = sorted(points)
    return out


def main() -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(MODELS), 2, figsize=(12, 4.2 * len(MODELS)), squeeze=False)
    for row, (model, role) in zip(axes, MODELS.items()):
        result = json.loads((RESULTS / f"knob_{model}.json").read_text())
        knob = knob_curves(result["rows"], result["meta"]["steps"])
        peers_path = RESULTS / f"peers_{model}.json"
        peers = peer_curves(json.loads(peers_path.read_text())["rows"]) if peers_path.exists() else {}
        earlier_path = RESULTS / f"knob_{model}_stepsizes.json"
        earlier = knob_curves(json.loads(earlier_path.read_text())["rows"], result["meta"]["steps"]) if earlier_path.exists() else None
        plan_path = RESULTS / f"knob_{model}_chain_{model}_{PLAN_SEARCH}.json"
        searched = knob_curves(json.loads(plan_path.read_text())["rows"], result["meta"]["steps"]) if plan_path.exists() else None
        for col, ax in enumerate(row):
            for peer, points in peers.items():
                ax.plot([p[0] for p in points], [p[1 + col] for p in points], ":", marker=".", alpha=0.8, label=peer)
            for (reuse, cls), points in knob.items():
                if reuse == "forecast" and cls != "mean":
                    ax.plot([p[0] for p in points], [p[1 + col] for p in points], "-", color="tab:red", alpha=0.25, lw=1)
            for reuse, color in (("forecast", "tab:red"), ("hold", "black")):
                if (reuse, "mean") in knob:
                    points = knob[(reuse, "mean")]
                    ax.plot([p[0] for p in points], [p[1 + col] for p in points], "-", color=color, marker="o", lw=2.2,
                            label=f"AdaCache speed knob, {reuse}" + (" (default)" if reuse == "forecast" else ""))
            if earlier is not None:
                points = earlier[("forecast", "mean")]
                ax.plot([p[0] for p in points], [p[1 + col] for p in points], ":", color="tab:red", marker="x", lw=1.5,
                        label="speed knob ranked by step sizes (before), forecast")
            if searched is not None:
                points = searched[("forecast", "mean")]
                ax.plot([p[0] for p in points], [p[1 + col] for p in points], "--", color="darkred", marker="s", lw=2,
                        label="speed knob with AdaCache Plan Search, forecast")
            ax.set_xlabel("compute (fraction of the unpatched run; 0.5 = 2x)")
            ax.grid(alpha=0.3)
        row[0].set(ylabel="PSNR vs unpatched (dB)", title=f"tiny model '{model}', {role}: quality")
        row[1].set(ylabel="motion energy / unpatched", title=f"'{model}': motion kept (1 = all)")
        row[0].legend(fontsize=7, loc="lower right")
    fig.suptitle("Speed knob 1.25x-4x (thin red: each motion class, forecast) against the peers' sweeps")
    fig.tight_layout()
    path = RESULTS / "knob_chart.png"
    fig.savefig(path, dpi=100)
    print(f"wrote {path.relative_to(REPO)}")
    artist_chart(plt)


def artist_chart(plt, model: str = ARTIST_MODEL) -> None:
    """The README's picture: one panel, how close to the uncached video (PSNR) against how much faster (1 / compute),
    the speed knob (its default, forecast) and each peer on the same tiny model."""
    result = json.loads((RESULTS / f"knob_{model}.json").read_text())
    knob = knob_curves(result["rows"], result["meta"]["steps"])[("forecast", "mean")]
    peers = peer_curves(json.loads((RESULTS / f"peers_{model}.json").read_text())["rows"])
    fig, ax = plt.subplots(figsize=(8, 4.5))
    for peer, points in peers.items():
        ax.plot([1 / p[0] for p in points], [p[1] for p in points], ":", marker=".", alpha=0.9, label=peer)
    ax.plot([1 / p[0] for p in knob], [p[1] for p in knob], "-", color="tab:red", marker="o", lw=2.5,
            label="AdaCache speed knob (default)")
    ax.set(xlabel="how much faster (the model runs on 1/x of the steps)", ylabel="closeness to the uncached video (PSNR, dB)",
           title=f"Faster costs fidelity: higher is better at each speed (small test model '{model}')")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    path = RESULTS / "artist_chart.png"
    fig.savefig(path, dpi=100)
    print(f"wrote {path.relative_to(REPO)}")


if __name__ == "__main__":
    main()
