"""The main job: the demo workflow on the bundled tiny model, patched and unpatched, side by side.

    bash tools/demo.sh            (sets up .venv, then runs this)

Runs workflows/adacache_demo_tiny_model.json through ComfyUI's real execution engine twice with
the same seed: as saved (with AdaCache) and with AdaCache taken out (the sampler fed straight from
the loader). Prints computed / total steps, the sampler's wall-clock speedup measured in this run,
and the quality of the patched result against the unpatched one (PSNR of the final latents and
SSIM of the preview frames); writes the schedule chart, the run data JSON and preview animations
of both videos to the output folder it names.

How the speed-up is measured: after a warm-up run, the two variants run in turn (which goes first
alternates), `--repeats` times each; the speed-up is the median unpatched sampler time over the
median AdaCache one, with the spread of the repeats' ratios beside it. The ideal is counted from
the model calls the sampler really made: all calls over the computed ones (a reused call still
costs a little, so a run cannot gain more). A measurement above the ideal is timing noise, and
the report says so.
"""
from __future__ import annotations

import argparse
import copy
import dataclasses
import shutil
import json
import statistics
import sys
from pathlib import Path

import torch

sys.path.append(str(Path(__file__).resolve().parent.parent))
from tools import comfy_exec, comfy_runtime  # noqa: E402
from tools.quality import psnr, ssim  # noqa: E402
from tools.workflow import ui_to_api  # noqa: E402

DEMO = comfy_runtime.REPO_ROOT / "workflows" / "adacache_demo_tiny_model.json"
README_PICTURE = comfy_runtime.REPO_ROOT / "docs" / "schedule_chart.png"
ADACACHE_ONLY = {"AdaCachePatchModel", "AdaCacheMoRegSettings", "AdaCacheScheduleViewer"}


def node_id(prompt: dict, class_type: str) -> str:
    return next(k for k, v in prompt.items() if v["class_type"] == class_type)


def adacache_sampler(prompt: dict) -> str:
    """The KSampler that samples AdaCache Patch Model's model (the demo's other one is the uncached comparison)."""
    patch = node_id(prompt, "AdaCachePatchModel")
    return next(k for k, v in prompt.items() if v["class_type"] == "KSampler" and v["inputs"]["model"][0] == patch)


def timed_branch(prompt: dict) -> dict:
    """The demo without AdaCache Compare: ComfyUI then runs only what the AdaCache branch's outputs need (the uncached
    sampler feeds only the comparison), so each timed run samples once; this script compares the two runs itself."""
    return {k: v for k, v in copy.deepcopy(prompt).items() if v["class_type"] != "AdaCacheCompare"}


def without_adacache(prompt: dict) -> dict:
    """The same graph with AdaCache taken out: the sampler takes the loader's model directly."""
    plain = copy.deepcopy(prompt)
    sampler, loader = adacache_sampler(plain), node_id(plain, "UNETLoader")
    plain[sampler]["inputs"]["model"] = [loader, 0]
    drop = {k for k, v in plain.items() if v["class_type"] in ADACACHE_ONLY}
    drop |= {k for k, v in plain.items() if any(isinstance(x, list) and x[0] in drop for x in v["inputs"].values())}
    for k in drop:
        del plain[k]
    for v in plain.values():
        if "filename_prefix" in v["inputs"]:
            v["inputs"]["filename_prefix"] = v["inputs"]["filename_prefix"].replace("adacache_demo/", "adacache_demo/unpatched_")
    return plain


def newest(folder: Path, pattern: str) -> Path:
    return max(folder.glob(pattern), key=lambda p: p.stat().st_mtime)


def load_latent(path: Path) -> torch.Tensor:
    from safetensors.torch import load_file

    return load_file(str(path))["latent_tensor"]


def run(output: Path | None = None, motion: str | None = None, repeats: int = 5) -> dict:
    """Run the demo (see module docstring); returns the report that main() prints."""
    rt = comfy_runtime.boot(output_dir=output.resolve() if output else None)
    out = rt.output_dir
    patched = ui_to_api(json.loads(DEMO.read_text()))
    if motion:
        prompt_node = next(k for k, v in patched.items() if v["class_type"] == "AdaCacheDemoPrompt" and v["inputs"]["motion"] != "empty")
        patched[prompt_node]["inputs"]["motion"] = motion
    patched = timed_branch(patched)
    plain = without_adacache(patched)
    sampler = adacache_sampler(patched)

    comfy_exec.execute(plain)  # warm-up: first-call costs (kernels, file cache) land on neither variant
    times = {"unpatched": [], "adacache": []}
    variants = [("unpatched", plain), ("adacache", patched)]
    for i in range(repeats):
        for name, prompt in variants[::-1] if i % 2 else variants:  # interleaved; who goes first alternates
            times[name].append(comfy_exec.execute(prompt).server.node_seconds()[sampler])
    ratios = [u / a for u, a in zip(times["unpatched"], times["adacache"])]
    measured = statistics.median(times["unpatched"]) / statistics.median(times["adacache"])

    run_data = newest(out / "adacache", "schedule_*.json")
    trace = json.loads(run_data.read_text())["model"]
    summary = trace["summary"]
    calls = trace["calls"]
    ideal = len(calls) / sum(c["computed"] for c in calls)  # what the sampler really skipped
    ref = load_latent(newest(out / "adacache_demo", "unpatched_latent_*.latent"))
    test = load_latent(newest(out / "adacache_demo", "latent_*.latent"))
    preview = rt.pack.nodes.demo.latent_to_rgb
    report = {
        "motion": motion or "as saved in the workflow",
        "computed_steps": summary["computed_steps"],
        "total_steps": summary["total_steps"],
        "model_calls": len(calls),
        "computed_calls": sum(c["computed"] for c in calls),
        "ideal_speedup": ideal,
        "repeats": repeats,
        "sampler_seconds_unpatched": statistics.median(times["unpatched"]),
        "sampler_seconds_adacache": statistics.median(times["adacache"]),
        "measured_speedup": measured,
        "measured_speedup_spread": [min(ratios), max(ratios)],
        "note": (f"measured above the ideal: timing noise (the repeats' ratios spread {min(ratios):.2f}x-{max(ratios):.2f}x); "
                 "the ideal is the most a run can gain" if measured > ideal else None),
        "psnr_latents_db": psnr(test, ref),
        "ssim_preview": ssim(preview(test), preview(ref)),
        "output_dir": str(out),
        "files": {
            "schedule_chart": str(newest(out / "adacache_demo", "schedule_*.png").relative_to(out)),
            "run_data": str(run_data.relative_to(out)),
            "video_adacache": str(newest(out / "adacache_demo", "video_*.webp").relative_to(out)),
            "video_unpatched": str(newest(out / "adacache_demo", "unpatched_video_*.webp").relative_to(out)),
        },
    }
    picture = out / "adacache_demo" / "readme_schedule_chart.png"
    readme_picture(rt.pack, trace).save(picture)
    report["files"]["readme_picture"] = str(picture.relative_to(out))
    (out / "demo_report.json").write_text(json.dumps(report, indent=1))
    return report


def readme_picture(pack, trace: dict):
    """The run's overview chart as a PIL image, without the speed-up estimated from its timings (which differ from
    run to run): the README's picture (docs/schedule_chart.png; --readme writes it there, tests/test_demo.py checks)."""
    from PIL import Image

    run = pack.adacache_core.trace.RunTrace.from_dict(trace)
    run.calls = [dataclasses.replace(call, seconds=0.0) for call in run.calls]
    return Image.fromarray(pack.adacache_core.chart.schedule_chart([("model", run)]))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--output", type=Path, default=comfy_runtime.REPO_ROOT / "output" / "demo")
    ap.add_argument("--motion", default=None, help="override the demo prompt's motion class (static, slow, fast, orbit)")
    ap.add_argument("--repeats", type=int, default=5, help="timed runs of each variant, interleaved; the medians count")
    ap.add_argument("--readme", action="store_true", help="also write the run's picture to docs/schedule_chart.png")
    args = ap.parse_args()
    report = run(args.output, args.motion, args.repeats)
    if args.readme:
        shutil.copyfile(Path(report["output_dir"]) / report["files"]["readme_picture"], README_PICTURE)
    print()
    print(f"AdaCache demo on the tiny Wan 2.1 model ({report['motion']})")
    print(f"  computed steps      {report['computed_steps']}/{report['total_steps']}, model calls "
          f"{report['computed_calls']}/{report['model_calls']} (ideal speedup {report['ideal_speedup']:.2f}x)")
    low, high = report["measured_speedup_spread"]
    print(f"  sampler time        unpatched {report['sampler_seconds_unpatched']:.2f} s, AdaCache {report['sampler_seconds_adacache']:.2f} s"
          f" (medians of {report['repeats']}) -> measured speedup {report['measured_speedup']:.2f}x (repeats {low:.2f}x-{high:.2f}x)")
    if report["note"]:
        print(f"  note                {report['note']}")
    print(f"  quality vs unpatched PSNR {report['psnr_latents_db']:.1f} dB (latents), SSIM {report['ssim_preview']:.3f} (preview frames)")
    print(f"  output folder       {report['output_dir']}")
    for k, v in report["files"].items():
        print(f"    {k:16s} {v}")
    print(f"    {'report':16s} demo_report.json")


if __name__ == "__main__":
    main()
