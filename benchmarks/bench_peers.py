"""AdaCache against the step caches ComfyUI users pick, at matched compute, on a tiny model.

    .venv/bin/python benchmarks/bench_peers.py --model heldout [--seeds 3]
    .venv/bin/python benchmarks/bench_peers.py --model motion  [--seeds 3]
    .venv/bin/python benchmarks/bench_peers.py --model clips   [--seeds 3]

Every method runs through ComfyUI's real KSampler (30 steps, euler/simple, CFG 5) on one of the
project's tiny Wan 2.1 models, per motion class and seed, side by side with the unpatched run:

* AdaCache: each preset with MoReg off, at the paper's scale and calibrated (AdaCache Calibrate,
  one run per class at seed 100, which is not evaluated), and with MoReg off and ``reuse: forecast``;
  uniform every-k-th-step schedules
  (AdaCache with a one-entry codebook) as the plain baseline;
* EasyCache (ComfyUI core), swept over ``reuse_threshold``, on a copy of its input: in ComfyUI
  0.3.75 EasyCache adds its cached change in place into the tensor the sampler later uses for the
  denoised value when the model runs in fp32 without concat channels (this CPU run); fp16/bf16
  models copy on the dtype cast, so that is what users on a GPU get. A short sweep "as in 0.3.75"
  shows the in-place effect;
* LazyCache (ComfyUI core), swept over ``reuse_threshold``;
* First-Block Cache as Comfy-WaveSpeed defines it (its node refuses WanModel): the first block
  always runs; when its residual differs from the previous step's by less than
  ``residual_diff_threshold`` (mean absolute difference over mean absolute value) the other blocks
  are replaced by their cached residual. Written here with ComfyUI's block replacement.
* TeaCache and MagCache, the packs users install (ComfyUI-TeaCache at 91dff8e, ComfyUI-MagCache
  at 47bdd2a; not part of this repository: check them out and pass their folders with
  ``--teacache`` and ``--magcache``, e.g. ``git clone https://github.com/welltop-cn/ComfyUI-TeaCache
  && git -C ComfyUI-TeaCache checkout 91dff8e``, and Zehong-Ma/ComfyUI-MagCache at 47bdd2a). Each
  with what a user picks off the shelf (its Wan 2.1 T2V 1.3B coefficients / magnitude ratios) and
  with its own calibration recipe applied to the tiny model on seed 100 (TeaCache: a degree-4
  polynomial from the timestep embedding's relative L1 change to the model output's; MagCache: the
  per-step ratio of the block stack residual's token norms, per branch). Both load on ComfyUI
  0.3.75 as published and their Wan path is measured as written (on a ComfyUI without
  ``comfy.ldm.lightricks.model.precompute_freqs_cis``, which they import, they get a stand-in that
  raises if called: only their LTX-Video path calls it).

Compute is counted from real block executions (forward hooks on every block), as a fraction of
the unpatched run's. Per method and setting: compute, PSNR against unpatched, motion energy ratio.
Each peer's PSNR-vs-compute curve is interpolated at the compute of every AdaCache point. Wall
clock: for one setting per method (the one nearest AdaCache 'fast''s compute), the ratio of its
sampler time to the unpatched one, median of interleaved repeats, next to the ideal (its compute).
Writes benchmarks/results/peers_<model>.json and .png and prints markdown tables.
"""
from __future__ import annotations

import importlib.util
import json
import math
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

from tiny_runs import REPO, load, parser

PRESETS = ("fast (paper, 30 steps)", "slow (paper, 30 steps)", "paper (100 steps)")
# Each speed knob swept from nearly every step computed to below AdaCache 'fast''s compute on the tiny models
THRESHOLDS = {"EasyCache": (0.05, 0.1, 0.2, 0.3, 0.5, 0.7, 1.0, 1.5), "EasyCache as in 0.3.75 (fp32, in place)": (0.05, 0.1, 0.2),
              "LazyCache": (0.05, 0.1, 0.2, 0.3, 0.5, 0.7, 1.0, 1.5),
              "First-Block Cache": (0.1, 0.12, 0.15, 0.18, 0.2, 0.22, 0.25), "uniform every k": (2, 3, 4, 5, 6)}
# the packs' own knobs: TeaCache rel_l1_thresh; MagCache (magcache_thresh, magcache_K) at its default retention 0.2
PACK_SETTINGS = {"TeaCache": (0.02, 0.05, 0.08, 0.12, 0.2, 0.3, 0.5),
                 "MagCache": ((0.02, 2), (0.06, 2), (0.12, 2), (0.24, 2), (0.06, 4), (0.12, 4), (0.24, 4))}
OFF_THE_SHELF = "wan2.1_t2v_1.3B"  # the coefficients / ratios a Wan user picks in the packs' nodes
FITTED = "wan2.1_tiny_fitted"  # registered in the packs' tables by fit_pack_recipes (the name must contain 'wan2.1')
TIMING_REPEATS = 5


class FirstBlockCache:
    """First-Block Cache (Comfy-WaveSpeed's definition) on a Wan model, through ``patches_replace["dit"]``.

    Per batch layout (cond and uncond together, or apart): the first block's residual is compared
    with the previous step's; below the threshold the remaining blocks are skipped and their cached
    residual added to the first block's output. The previous first-block residual is updated at
    every step, the remaining blocks' residual only where they ran.
    """

    def __init__(self, threshold: float, blocks: int):
        self.threshold, self.last = threshold, blocks - 1
        self.first_residual: dict = {}
        self.rest_residual: dict = {}
        self.reuse = False
        self.after_first = None  # the first block's output in the call in flight

    def install(self, model):
        patched = model.clone()
        for i in range(self.last + 1):
            patched.set_model_patch_replace(self._block(i), "dit", "double_block", i)
        return patched

    def _block(self, index: int):
        def run(args: dict, extra: dict) -> dict:
            key = (tuple(args["transformer_options"].get("cond_or_uncond", ())), tuple(args["img"].shape))
            if index == 0:
                out = extra["original_block"](args)
                residual = out["img"] - args["img"]
                prev = self.first_residual.get(key)
                self.reuse = prev is not None and key in self.rest_residual and (
                    ((prev - residual).abs().mean() / prev.abs().mean()).item() < self.threshold)
                self.first_residual[key] = residual
                self.after_first = out["img"]
                return {"img": out["img"] + self.rest_residual[key]} if self.reuse and self.last > 0 else out
            if self.reuse:
                return {"img": args["img"]}
            out = extra["original_block"](args)
            if index == self.last:
                self.rest_residual[key] = out["img"] - self.after_first
            return out
        return run


def load_pack(folder: Path, name: str):
    """A peer pack's nodes.py, imported from the folder of its checkout (see the module docstring)."""
    import comfy.ldm.lightricks.model as ltx

    if not hasattr(ltx, "precompute_freqs_cis"):
        def precompute_freqs_cis(*args, **kwargs):
            raise NotImplementedError("not in this ComfyUI; stand-in for the benchmark, which runs no LTX-Video")
        ltx.precompute_freqs_cis = precompute_freqs_cis
    spec = importlib.util.spec_from_file_location(f"peer_{name}_nodes", folder / "nodes.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def fit_pack_recipes(packs: dict, base, conds: dict, empty, latent: torch.Tensor, steps: int) -> dict:
    """TeaCache's and MagCache's calibration recipes on this model (unpatched runs, seed 100, every class).

    TeaCache: relative L1 change of the timestep embedding (its 'modulated input' for Wan) and of the
    model output between consecutive steps, fitted by a degree-4 polynomial. MagCache: per step and
    batch position, the mean over tokens of the block stack residual's norm over the previous step's,
    averaged over the runs (the first step's ratio is 1, as in its tables).
    """
    from tools import pack_calls as h

    model = base.model.diffusion_model
    embeddings, outputs, residuals = [], [], []

    def stack_input(module, args, kwargs):
        residuals.append(kwargs.get("x", args[0] if args else None).clone())

    def stack_output(module, args, out):
        residuals[-1] = out - residuals[-1]  # the block stack's residual of this call

    hooks = [model.time_embedding.register_forward_hook(lambda m, a, out: embeddings.append(out.detach().clone())),
             model.register_forward_hook(lambda m, a, out: outputs.append(out.detach().clone())),
             model.blocks[0].register_forward_pre_hook(stack_input, with_kwargs=True),
             model.blocks[-1].register_forward_hook(stack_output)]
    xs, ys, ratios = [], [], []
    try:
        for pos in conds.values():
            embeddings.clear(), outputs.clear(), residuals.clear()
            h.ksample(base, pos, empty, latent, steps=steps, seed=100)
            rel = lambda now, prev: ((now - prev).abs().mean() / prev.abs().mean()).item()  # noqa: E731
            xs += [rel(embeddings[i], embeddings[i - 1]) for i in range(1, len(embeddings))]
            ys += [rel(outputs[i], outputs[i - 1]) for i in range(1, len(outputs))]
            norms = [r.norm(dim=-1) for r in residuals]  # (batch, tokens) per step
            ratios.append([[1.0] * len(norms[0])] + [(norms[i] / norms[i - 1]).mean(dim=1).tolist() for i in range(1, len(norms))])
    finally:
        for hook in hooks:
            hook.remove()
    fitted = {}
    if "TeaCache" in packs:
        fitted["TeaCache"] = np.polyfit(xs, ys, 4).tolist()
        packs["TeaCache"].SUPPORTED_MODELS_COEFFICIENTS[FITTED] = fitted["TeaCache"]
    if "MagCache" in packs:
        per_step = np.mean(np.array(ratios), axis=0)  # (steps, batch positions)
        fitted["MagCache"] = per_step.reshape(-1).tolist()
        packs["MagCache"].SUPPORTED_MODELS_MAG_RATIOS[FITTED] = per_step.reshape(-1)
    return fitted


def copy_input(executor, x, *args, **kwargs):
    """DIFFUSION_MODEL wrapper: the model (and every wrapper inside) gets a copy of its input tensor."""
    return executor(x.clone(), *args, **kwargs)


def build(method: str, setting, base, calibration: str, packs: dict):
    """The patched ModelPatcher of one method at one setting."""
    import comfy.patcher_extension
    from tools import pack_calls as h
    import nodes

    if method.startswith("TeaCache"):
        table = OFF_THE_SHELF if "off the shelf" in method else FITTED
        return packs["TeaCache"].TeaCache().apply_teacache(base, table, setting, 0.0, 1.0, "cpu")[0]
    if method.startswith("MagCache"):
        table = OFF_THE_SHELF if "off the shelf" in method else FITTED
        return packs["MagCache"].MagCache().apply_magcache(base, table, setting[0], 0.2, setting[1], 0, -1)[0]
    if method == "uniform every k":
        return h.adacache(None, base, preset="custom", custom_codebook=f"1000:{setting}")
    if method.startswith("AdaCache"):
        moreg = {"MoReg off": None, "MoReg (paper)": h.moreg(), "MoReg (calibrated)": h.moreg(calibration=calibration)}
        variant = method.split(", ")[1:]  # MoReg setting, then "forecast" when the reused steps forecast
        return h.adacache(None, base, preset=setting, moreg=moreg[variant[0]], reuse="forecast" if "forecast" in variant else "hold")
    if method == "First-Block Cache":
        return FirstBlockCache(setting, len(base.model.diffusion_model.blocks)).install(base)
    source = base
    if method == "EasyCache":
        source = base.clone()
        source.add_wrapper_with_key(comfy.patcher_extension.WrappersMP.DIFFUSION_MODEL, "bench_copy_input", copy_input)
    node = nodes.NODE_CLASS_MAPPINGS["LazyCache" if method == "LazyCache" else "EasyCache"]
    return node.execute(source, setting, 0.15, 0.95, False).args[0]


# per method, a setting at which it should reuse nothing: its output must then equal the unpatched one
NOTHING_REUSED = {"EasyCache": 0.0, "EasyCache as in 0.3.75 (fp32, in place)": 0.0, "LazyCache": 0.0, "First-Block Cache": 0.0,
                  "uniform every k": 1, "TeaCache": 1e-9, "MagCache": (1e-9, 2)}


def sanity(base, pos, sample, calibration: str, packs: dict) -> dict:
    """Each swept method at its nothing-reused setting against the unpatched run: bitwise equal?"""
    ref, _, _ = sample(base, pos, 0)
    out = {}
    for method in swept(packs):
        setting = NOTHING_REUSED.get(method, NOTHING_REUSED.get(method.split(" (")[0]))  # packs: one entry per pack
        result, _, _ = sample(build(method, setting, base, calibration, packs), pos, 0)
        out[method] = bool(torch.equal(result, ref))
    return out


def swept(packs: dict) -> dict:
    """Every swept method (a curve) and its settings: the built-in sweeps and the packs given."""
    return THRESHOLDS | {f"{pack} ({table})": settings for pack, settings in PACK_SETTINGS.items() if pack in packs
                         for table in ("off the shelf", "fitted to the model")}


def methods(packs: dict) -> list[tuple[str, object]]:
    out = [(m, s) for m, settings in swept(packs).items() for s in settings]
    return out + [(f"AdaCache, {variant}", preset) for preset in PRESETS
                  for variant in ("MoReg off", "MoReg (paper)", "MoReg (calibrated)", "MoReg off, forecast")]


def main() -> None:
    ap = parser(__doc__, "heldout")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--teacache", type=Path, help="folder of a ComfyUI-TeaCache checkout at 91dff8e")
    ap.add_argument("--magcache", type=Path, help="folder of a ComfyUI-MagCache checkout at 47bdd2a")
    args = ap.parse_args()

    h, base, conds, empty, latent = load(args)
    from bench_adaptive import calibrate
    from tools.quality import psnr
    from tools.tiny_video_data import latent_motion

    calibration = calibrate(base, conds, empty, latent, args.steps)
    packs = {name: load_pack(folder, name) for name, folder in (("TeaCache", args.teacache), ("MagCache", args.magcache)) if folder}
    fitted = fit_pack_recipes(packs, base, conds, empty, latent, args.steps)
    counter = h.BlockCounter(base)

    def sample(model, pos, seed):
        with counter:
            start = time.perf_counter()
            out = h.ksample(model, pos, empty, latent, steps=args.steps, seed=seed)
            return out, counter.count, time.perf_counter() - start

    checks = sanity(base, next(iter(conds.values())), sample, calibration, packs)
    print("nothing reused -> equal to unpatched:", checks, flush=True)

    rows = []
    for cls, pos in conds.items():
        for seed in range(args.seeds):
            ref, full, _ = sample(base, pos, seed)
            energy = latent_motion(ref)
            for method, setting in methods(packs):
                out, runs, _ = sample(build(method, setting, base, calibration, packs), pos, seed)
                rows.append({"class": cls, "seed": seed, "method": method, "setting": setting, "compute": runs / full,
                             "psnr": psnr(out, ref), "motion_energy": latent_motion(out) / energy, "unpatched_motion": energy})
            print(f"{cls} seed {seed} done", flush=True)

    timing = wall_clock(rows, base, conds, sample, calibration, packs)
    out_dir = REPO / "benchmarks" / "results"
    meta = {"command": "benchmarks/bench_peers.py " + " ".join(sys.argv[1:]), "torch": torch.__version__, "device": "cpu",
            "latent": list(latent.shape), "steps": args.steps, "cfg": 5.0, "sampler": "euler/simple"}
    meta["packs"] = {name: str(folder.name) for name, folder in (("TeaCache", args.teacache), ("MagCache", args.magcache)) if folder}
    (out_dir / f"peers_{args.model}.json").write_text(json.dumps({"meta": meta, "fitted": fitted, "sanity": checks, "rows": rows,
                                                                  "timing": timing},
                                                                 indent=1))
    classes = sorted(conds, key=lambda c: statistics.mean(r["unpatched_motion"] for r in rows if r["class"] == c))
    curves = list(swept(packs))
    plot(rows, curves, out_dir / f"peers_{args.model}.png", args.model)
    print(report(rows, classes, curves, timing))
    print("\nAt a setting that reuses nothing, equal to the unpatched output bitwise: "
          + ", ".join(f"{m} {'yes' if ok else 'NO'}" for m, ok in checks.items()))


def summary(rows: list[dict]) -> dict:
    """(method, setting) -> mean compute, PSNR and motion energy over classes and seeds, and per class."""
    out: dict = {}
    for r in rows:
        out.setdefault((r["method"], r["setting"]), []).append(r)
    return {key: {"compute": statistics.mean(r["compute"] for r in rs), "psnr": statistics.mean(r["psnr"] for r in rs),
                  "motion_energy": statistics.mean(r["motion_energy"] for r in rs),
                  "by_class": {c: (statistics.mean(r["compute"] for r in rs if r["class"] == c),
                                   statistics.mean(r["psnr"] for r in rs if r["class"] == c),
                                   statistics.mean(r["motion_energy"] for r in rs if r["class"] == c))
                               for c in dict.fromkeys(r["class"] for r in rs)}}
            for key, rs in out.items()}


def curve_at(points: dict, method: str, compute: float) -> float | None:
    """A swept method's mean PSNR interpolated at a compute fraction (None outside its sweep).

    Settings that reproduced the unpatched output exactly (infinite PSNR, all steps computed) end the
    curve: they have no finite quality to interpolate towards.
    """
    xs, ys = zip(*sorted((v["compute"], v["psnr"]) for (m, _), v in points.items() if m == method and math.isfinite(v["psnr"])))
    return float(np.interp(compute, xs, ys)) if xs[0] <= compute <= xs[-1] else None


def wall_clock(rows: list[dict], base, conds: dict, sample, calibration: str, packs: dict) -> list[dict]:
    """Per method, at the setting nearest AdaCache 'fast''s compute: sampler time over the unpatched
    time, median of interleaved repeats (the fastest-moving class, seed 0), next to the ideal."""
    points = summary(rows)
    target = points[("AdaCache, MoReg off", PRESETS[0])]["compute"]
    pos = conds[max(conds, key=lambda c: statistics.mean(r["unpatched_motion"] for r in rows if r["class"] == c))]
    chosen = {}
    for (method, setting), v in points.items():
        if method not in chosen or abs(v["compute"] - target) < abs(points[(method, chosen[method])]["compute"] - target):
            chosen[method] = setting
    out = []
    for method, setting in chosen.items():
        model = build(method, setting, base, calibration, packs)
        ratios, ideal = [], []
        for _ in range(TIMING_REPEATS):
            _, full, t_ref = sample(base, pos, 0)
            _, runs, t = sample(model, pos, 0)
            ratios.append(t / t_ref)
            ideal.append(runs / full)
        out.append({"method": method, "setting": setting, "time_ratio": statistics.median(ratios),
                    "ideal_ratio": statistics.median(ideal)})
    return out


def report(rows: list[dict], classes: list[str], curves: list[str], timing: list[dict]) -> str:
    points = summary(rows)
    lines = ["Every setting: compute fraction / mean PSNR (dB) / motion energy ratio, and per class PSNR "
             f"(classes by unpatched motion: {' < '.join(classes)})", "",
             "| method | setting | compute | PSNR | motion energy | " + " | ".join(classes) + " |",
             "|---|---|---|---|---|" + "---|" * len(classes)]
    for (method, setting), v in points.items():
        cells = " | ".join(f"{v['by_class'][c][1]:.1f}" for c in classes)
        lines.append(f"| {method} | {setting} | {v['compute']:.2f} | {v['psnr']:.1f} | {v['motion_energy']:.2f} | {cells} |")
    lines += ["", "AdaCache points against each peer's curve at the same compute (mean PSNR difference, dB; "
              "'-': the peer's sweep does not reach that compute)", "",
              "| AdaCache | compute | PSNR | " + " | ".join(curves) + " |", "|---|---|---|" + "---|" * len(curves)]
    for (method, setting), v in points.items():
        if method.startswith("AdaCache"):
            diffs = [curve_at(points, peer, v["compute"]) for peer in curves]
            cells = " | ".join("-" if d is None else f"{v['psnr'] - d:+.1f}" for d in diffs)
            lines.append(f"| {setting.split(' (')[0]}, {method.removeprefix('AdaCache, ')} | {v['compute']:.2f} | {v['psnr']:.1f} | {cells} |")
    lines += ["", f"Wall clock (sampler time / unpatched, median of {TIMING_REPEATS} interleaved repeats) next to the ideal "
              "(compute fraction):", "", "| method | setting | time ratio | ideal |", "|---|---|---|---|"]
    lines += [f"| {t['method']} | {t['setting']} | {t['time_ratio']:.2f} | {t['ideal_ratio']:.2f} |" for t in timing]
    return "\n".join(lines)


def plot(rows: list[dict], curves: list[str], path: Path, model: str) -> None:
    """PSNR and motion energy against compute: one curve per swept method, AdaCache's presets as points."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    points = summary(rows)
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5))
    for method in curves:
        xs, ys, es = zip(*sorted((v["compute"], v["psnr"], v["motion_energy"]) for (m, _), v in points.items() if m == method))
        style = ":" if "in place" in method else "-"
        axes[0].plot(xs, ys, style, marker=".", label=method)
        axes[1].plot(xs, es, style, marker=".", label=method)
    markers = {"MoReg off": "o", "MoReg (paper)": "s", "MoReg (calibrated)": "^", "MoReg off, forecast": "D"}
    for (method, setting), v in points.items():
        if method.startswith("AdaCache"):
            variant = method.removeprefix("AdaCache, ")
            label = f"AdaCache {variant}" if setting == PRESETS[0] else None
            color = "tab:red" if "forecast" in variant else "black"
            for ax, y in ((axes[0], v["psnr"]), (axes[1], v["motion_energy"])):
                ax.scatter(v["compute"], y, marker=markers[variant], color=color, zorder=3, label=label)
    axes[0].set(xlabel="compute (block executions / unpatched)", ylabel="PSNR vs unpatched (dB, mean over classes)",
                title=f"tiny model '{model}': quality at equal compute")
    axes[1].set(xlabel="compute (block executions / unpatched)", ylabel="motion energy / unpatched", title="motion kept")
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


if __name__ == "__main__":
    main()
