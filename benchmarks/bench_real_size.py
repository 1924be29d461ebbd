"""Hook overhead, speedup against the ideal, and memory, at real Wan model sizes (random weights).

    .venv/bin/python benchmarks/bench_real_size.py --config 1.3b --latent 2x16x16 --steps 10
    .venv/bin/python benchmarks/bench_real_size.py --config 1.3b --latent 21x60x104 --steps 30 --dtype bf16   # on a GPU
    .venv/bin/python benchmarks/bench_real_size.py --config 14b --latent 5x60x104 --steps 30 --dtype bf16    # on a GPU

Through the real ComfyUI path (supported_models config -> model_base -> ModelPatcher, the real
KSampler with CFG, the pack's node), in one process, side by side:
  unpatched; patched with every step computed (hook overhead); patched with forced schedules of k
  computed steps out of N (speedup vs the ideal N/k); the cache offloaded to the CPU; ComfyUI's
  EasyCache at a threshold giving a similar computed-step count.
Reports time per step, end to end, peak memory (process RSS; peak allocated on a GPU) and block
executions; appends the run to benchmarks/results/real_size_<config>_<device>.json (every run kept, oldest
first: the history of the overhead) and prints its table, for benchmarks/RESULTS.md's "Real model sizes".
"""
from __future__ import annotations

import argparse
import json
import math
import platform
import sys
import threading
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parent.parent
sys.path.append(str(REPO))
from tools import comfy_runtime  # noqa: E402

CONFIGS = {
    "tiny": dict(dim=128, ffn_dim=256, num_heads=1, num_layers=4),
    "1.3b": dict(dim=1536, ffn_dim=8960, num_heads=12, num_layers=30),
    "14b": dict(dim=5120, ffn_dim=13824, num_heads=40, num_layers=40),
}
DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


class PeakRSS:
    """Samples the process's resident memory in a thread (the CPU has no allocator counter)."""

    def __enter__(self):
        import psutil

        self.proc, self.peak, self.stop = psutil.Process(), 0, False
        self.thread = threading.Thread(target=self._poll, daemon=True)
        self.thread.start()
        return self

    def _poll(self):
        while not self.stop:
            self.peak = max(self.peak, self.proc.memory_info().rss)
            time.sleep(0.005)

    def __exit__(self, *exc):
        self.stop = True
        self.thread.join()


def profiled_pack_seconds(run) -> float:
    """Time spent in the pack's own code during ``run()``, from cProfile: the self time of every
    function in adacache_core plus the self time of what those functions call directly (torch ops
    such as the residual subtraction and the L1 norms), but not the blocks they run. Unlike a
    wall-clock difference, this does not drown in the machine's run-to-run noise."""
    import cProfile
    import pstats

    pack_dir = str(REPO / "adacache_core")
    profiler = cProfile.Profile()
    profiler.runcall(run)
    stats = pstats.Stats(profiler).stats
    in_pack = {f for f in stats if f[0].startswith(pack_dir)}
    total = 0.0
    for func, (_, _, tottime, _, callers) in stats.items():
        if func in in_pack:
            total += tottime
        elif func[0] == "~":  # a builtin (a torch op) called directly by the pack
            total += sum(c[2] for caller, c in callers.items() if caller in in_pack)
    return total


def build_model(config: str, dtype, device):
    import comfy.model_patcher
    import comfy.supported_models

    unet = dict(comfy.supported_models.WAN21_T2V.unet_config) | CONFIGS[config] | dict(
        in_dim=16, out_dim=16, text_dim=4096, freq_dim=256, patch_size=(1, 2, 2), cross_attn_norm=True)
    model_config = comfy.supported_models.WAN21_T2V(unet)
    model_config.set_inference_dtype(dtype, None)
    model = model_config.get_model({}, device=device)
    gen = torch.Generator(device="cpu").manual_seed(0)
    with torch.no_grad():
        for name, p in model.diffusion_model.named_parameters():  # weights do not change the cost
            value = torch.randn(p.shape, generator=gen) * (0.02 if p.ndim > 1 else 0.1)
            p.copy_((value + 1.0) if "norm" in name else value)
    return comfy.model_patcher.ModelPatcher(model, load_device=device, offload_device=torch.device("cpu"))


def run_rows(config: str, latent: tuple[int, int, int], steps: int, dtype_name: str, easycache_thresholds) -> dict:
    rt = comfy_runtime.boot()  # first: ComfyUI's `nodes` must be importable before ours shadows it
    from tools import pack_calls as h
    import nodes

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dtype = DTYPES[dtype_name]
    base = build_model(config, dtype, device)
    blocks = base.model.diffusion_model.blocks
    shape = (1, 16, *latent)
    g = torch.Generator().manual_seed(0)
    pos = [[torch.randn(1, 16, 4096, generator=g), {}]]
    neg = [[torch.randn(1, 16, 4096, generator=g), {}]]

    def measure(label, model, **extra):
        count = []
        handle = blocks[0].register_forward_hook(lambda *a: count.append(1))
        if device.type == "cuda":
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
        try:
            with PeakRSS() as rss:
                start = time.perf_counter()
                out = h.ksample(model, pos, neg, torch.zeros(shape), steps=steps, seed=0)
                if device.type == "cuda":
                    torch.cuda.synchronize()
                seconds = time.perf_counter() - start
        finally:
            handle.remove()
        row = {"row": label, "seconds": seconds, "seconds_per_step": seconds / steps, "block_runs": len(count) * len(blocks),
               "computed_calls": len(count), "peak_rss_mb": rss.peak / 2**20} | extra
        if device.type == "cuda":
            row["peak_allocated_mb"] = torch.cuda.max_memory_allocated() / 2**20
        return row, out

    h.ksample(base, pos, neg, torch.zeros(shape), steps=2, seed=0)  # warm-up (kernels, allocator)
    rows = []
    unpatched, ref = measure("unpatched", base)
    rows.append(unpatched)
    every = h.adacache(rt, base, preset="custom", custom_codebook="1000:1")
    row, _ = measure("AdaCache, every step computed", every)
    row["overhead_pct"] = 100 * (row["seconds"] / unpatched["seconds"] - 1)
    pack_seconds = profiled_pack_seconds(lambda: h.ksample(every, pos, neg, torch.zeros(shape), steps=steps, seed=0))
    row["pack_seconds_per_step"] = pack_seconds / steps
    row["pack_overhead_pct"] = 100 * pack_seconds / unpatched["seconds"]
    rows.append(row)
    for length in (2, 3, 5):
        for offload in (False, True):
            patched = h.adacache(rt, base, preset="custom", custom_codebook=f"1000:{length}", offload_cache=offload)
            row, out = measure(f"AdaCache forced 1000:{length}" + (", cache offloaded" if offload else ""), patched)
            trace = h.session_of(patched).last_run
            k = len(trace.computed_steps())
            row |= {"computed_steps": k, "cache_mb": trace.cache_bytes / 2**20, "ideal_speedup": steps / k, "speedup": unpatched["seconds"] / row["seconds"]}
            row["speedup_vs_ideal"] = row["speedup"] / row["ideal_speedup"]
            rows.append(row)
    easycache = nodes.NODE_CLASS_MAPPINGS["EasyCache"]
    for threshold in easycache_thresholds:
        row, _ = measure(f"EasyCache {threshold}", easycache.execute(base, threshold, 0.15, 0.95, False).args[0])
        row |= {"computed_steps": row["computed_calls"], "speedup": unpatched["seconds"] / row["seconds"]}
        rows.append(row)
    # The unpatched run again at the end: drift over the run (thermal, other load) shows as a gap
    # between the two; ratios above use the first.
    again, _ = measure("unpatched, again at the end", base)
    again["drift_pct"] = 100 * (again["seconds"] / unpatched["seconds"] - 1)
    rows.append(again)
    return {
        "device": torch.cuda.get_device_name() if device.type == "cuda" else f"CPU ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)",
        "torch": torch.__version__, "config": config, "model": CONFIGS[config], "latent": list(shape), "steps": steps,
        "dtype": dtype_name, "cfg": 5.0, "rows": rows,
        # cond and uncond batched: one hidden state is (2, tokens, dim) in the run's dtype
        "hidden_state_mb": 2 * math.prod(latent[i] // p for i, p in enumerate((1, 2, 2))) * blocks[0].dim
                           * torch.tensor([], dtype=dtype).element_size() / 2**20,
        "num_blocks": len(blocks),
    }


def markdown(result: dict, command: str) -> str:
    lines = [f"\n### {result['config']} on {result['device']} ({time.strftime('%Y-%m-%d')})\n",
             f"`{command}` — torch {result['torch']}, latent {result['latent']}, {result['steps']} steps, CFG {result['cfg']}, {result['dtype']}\n",
             "| row | s/step | computed | speedup | vs ideal | overhead / drift (wall) | pack code (cProfile) | peak RSS MB | peak alloc MB | cache MB |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in result["rows"]:
        fmt = lambda k, f: (f.format(r[k]) if r.get(k) is not None else "")  # noqa: E731
        lines.append(f"| {r['row']} | {r['seconds_per_step']:.3f} | {r.get('computed_steps', r['computed_calls'])} "
                     f"| {fmt('speedup', '{:.2f}x')} | {fmt('speedup_vs_ideal', '{:.3f}')} | {fmt('overhead_pct', '{:+.2f}%')}{fmt('drift_pct', '{:+.2f}%')} "
                     f"| {fmt('pack_seconds_per_step', '{:.4f} s/step')} {fmt('pack_overhead_pct', '({:.3f}%)')} | {r['peak_rss_mb']:.0f} | {fmt('peak_allocated_mb', '{:.0f}')} "
                     f"| {fmt('cache_mb', '{:.2f}')} |")
    if result.get("hidden_state_mb"):
        lines.append(f"\nCache MB: the cached residuals at the end of the run. One hidden state (cond and uncond batched) is "
                     f"{result['hidden_state_mb']:.2f} MB; one per block would be {result['hidden_state_mb'] * result['num_blocks']:.1f} MB.")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", choices=sorted(CONFIGS), default="1.3b")
    ap.add_argument("--latent", default="2x16x16", help="latent frames x height x width")
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--dtype", choices=sorted(DTYPES), default="fp32")
    ap.add_argument("--easycache", default="0.05,0.2", help="EasyCache thresholds to run")
    ap.add_argument("--no-write", action="store_true", help="print only (the smoke test uses this)")
    args = ap.parse_args(argv)
    latent = tuple(int(v) for v in args.latent.split("x"))
    result = run_rows(args.config, latent, args.steps, args.dtype, [float(t) for t in args.easycache.split(",") if t])
    command = "benchmarks/bench_real_size.py " + " ".join(argv if argv is not None else sys.argv[1:])
    table = markdown(result, command)
    print(table)
    if not args.no_write:
        out = REPO / "benchmarks" / "results"
        out.mkdir(exist_ok=True)
        device = "cuda" if torch.cuda.is_available() else "cpu"
        path = out / f"real_size_{args.config}_{device}.json"
        history = json.loads(path.read_text()) if path.exists() else []  # every run, oldest first
        history = history if isinstance(history, list) else [history]
        history.append(result | {"command": command, "date": time.strftime("%Y-%m-%d")})
        path.write_text(json.dumps(history, indent=1))
    return result


if __name__ == "__main__":
    main()
