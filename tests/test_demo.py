"""The main job end to end: the demo workflow through ComfyUI's execution engine, twice."""
import math

import numpy as np
from PIL import Image


def test_demo_runs_patched_and_unpatched_and_writes_its_outputs(runtime):
    from tools import run_demo

    report = run_demo.run(repeats=1)
    assert report["total_steps"] == 30
    assert 3 <= report["computed_steps"] < 30
    assert report["ideal_speedup"] == report["model_calls"] / report["computed_calls"]
    assert report["model_calls"] >= 30 and report["computed_calls"] >= report["computed_steps"]
    low, high = report["measured_speedup_spread"]
    assert low <= report["measured_speedup"] <= high
    assert (report["note"] is not None) == (report["measured_speedup"] > report["ideal_speedup"])
    # measured with the workflow as saved (speed knob 2x, forecast): 15/30 steps, 44.8 dB, SSIM 0.991. The knob keeps
    # the first fifth of the run, as real models need; this blob model rewards reusing it instead (53.7 dB with the
    # knob's earlier ranking, benchmarks/ARCHIVE.md). 6 dB are left for another platform's arithmetic
    assert math.isfinite(report["psnr_latents_db"]) and report["psnr_latents_db"] > 38
    assert 0.98 < report["ssim_preview"] <= 1
    for rel in report["files"].values():
        assert (runtime.output_dir / rel).stat().st_size > 0
    # the README's picture is this run's (regenerate: .venv/bin/python tools/run_demo.py --readme)
    made, shown = (np.asarray(Image.open(p).convert("RGB"), dtype=np.float32)
                   for p in (runtime.output_dir / report["files"]["readme_picture"], run_demo.README_PICTURE))
    assert made.shape == shown.shape and np.abs(made - shown).mean() < 1.0, "docs/schedule_chart.png is not the demo's"
