"""Whatever a user types: refused at queue time with a short, clear message, or run to the end.

Through ComfyUI's own prompt validation and execution engine, on the demo workflow (the tiny model,
shortened to 4 steps on a small latent so each executed case takes about a second).
"""
import json
import math
import random
import time

import pytest
import torch

import helpers as h
from tools import comfy_runtime

MEGABYTE = "1" * (1 << 20)


@pytest.fixture(scope="module")
def demo_prompt(runtime):
    from tools.workflow import ui_to_api

    prompt = ui_to_api(json.loads((comfy_runtime.REPO_ROOT / "workflows" / "adacache_demo_tiny_model.json").read_text()))
    for node in prompt.values():
        if node["class_type"] == "KSampler":
            node["inputs"]["steps"] = 4
        if node["class_type"] == "EmptyHunyuanLatentVideo":
            node["inputs"].update(width=32, height=32, length=9)
    return prompt


def with_inputs(prompt: dict, class_type: str, **inputs) -> dict:
    prompt = json.loads(json.dumps(prompt))
    node = next(n for n in prompt.values() if n["class_type"] == class_type)
    node["inputs"].update(inputs)
    return prompt


def timed(function, *args):
    """(what ``function(*args)`` returns, the seconds it took)."""
    started = time.perf_counter()
    result = function(*args)
    return result, time.perf_counter() - started


def refusal(prompt: dict) -> str | None:
    """ComfyUI's validation message for the prompt, or None if it was accepted."""
    from tools import comfy_exec

    valid, error, _, node_errors = comfy_exec.validate(prompt)
    return None if valid else json.dumps([error, node_errors])


@pytest.mark.parametrize("class_type, name, value", [
    ("AdaCachePatchModel", "custom_codebook", "1" * 100_000),  # held the server for 128 s before
    ("AdaCachePatchModel", "custom_codebook", MEGABYTE),
    ("AdaCachePatchModel", "probe_blocks", MEGABYTE),
    ("AdaCacheMoRegSettings", "frame_strides", "1," * 50_000),
])
def test_huge_values_are_refused_about_as_fast_as_short_ones(demo_prompt, class_type, name, value):
    """Up to a megabyte of input is refused within 50 times the validation of the same prompt with its
    first 100 characters (measured: 1 to 7 times; the quadratic parse this guards against took 128 s).
    Each time is the fastest of three, so that a busy machine's pauses do not count."""
    extra = {"preset": "custom"} if name == "custom_codebook" else {}
    short, huge = (with_inputs(demo_prompt, class_type, **{name: v}, **extra) for v in (value[:100], value))
    baseline = min(timed(refusal, short)[1] for _ in range(3))
    seconds = min(timed(refusal, huge)[1] for _ in range(3))
    assert seconds < 50 * baseline, (seconds, baseline)
    message = refusal(huge)
    assert message is not None and name in message
    assert value[:100] not in message  # the value is not echoed back (ComfyUI repeats the message once per input)


@pytest.mark.parametrize("name, value", [
    ("motion_power", 1e6),  # queued, then OverflowError in KSampler, before
    ("gradient_weight", math.nan),
    ("gradient_weight", math.inf),
    ("gradient_weight", 1e308),
    ("motion_scale", 0.0),
    ("motion_divisor", -1.0),
    ("motion_scale", "abc"),
    ("window_start", math.nan),
])
def test_out_of_range_and_wrong_typed_numbers_are_refused_at_queue_time(demo_prompt, name, value):
    message = refusal(with_inputs(demo_prompt, "AdaCacheMoRegSettings", **{name: value}))
    assert message is not None and name in message
    assert "not supported between" not in message  # a sentence for the user, not a raw Python error


def test_probe_blocks_name_the_real_block_count(demo_prompt):
    from tools import comfy_exec

    message = refusal(with_inputs(demo_prompt, "AdaCachePatchModel", probe_blocks="x"))
    assert message is not None and "probe_blocks" in message and "10000" not in message
    with pytest.raises(RuntimeError) as error:  # the tiny model has 8 blocks: refused by the node, before sampling
        comfy_exec.execute(with_inputs(demo_prompt, "AdaCachePatchModel", probe_blocks="9"))
    assert "0 to 7 (this model has 8 blocks)" in str(error.value)


def test_duplicate_strides_are_dropped():
    from adacache_core import parse_strides

    assert parse_strides("2, 1, 1, 2") == (1, 2)


def test_moreg_that_cannot_measure_says_why(runtime):
    import comfy.sd

    tiny = comfy.sd.load_diffusion_model(str(comfy_runtime.TINY_MODEL_DIR / "tiny_wan21_motion.safetensors"))
    moreg = h.moreg(motion_scale=0.15, frame_strides="3, 4")
    patched = h.adacache(runtime, tiny, moreg=moreg)
    h.ksample(patched, h.conditioning(seed=1), h.conditioning(seed=2), torch.zeros(1, 16, 3, 8, 8), steps=6)
    trace = h.session_of(patched).last_run
    assert any("MoReg off: the clip has 3 latent frame(s); frame_strides [3, 4] need more" in n for n in trace.notes)
    assert all(d.motion is None for d in trace.decisions)
    json.loads(trace.to_json(), parse_constant=lambda c: pytest.fail(f"run data JSON holds {c}"))


FUZZ_VALUES = {
    "AdaCachePatchModel": {
        "preset": ["fast (paper, 30 steps)", "custom", "nope", 3, None],
        "custom_codebook": ["0.1:2, 1:1", "", "1:0", "0.2:1, 0.1:2", "nan:1", "1e400:2", "x" * 5000, "0.1:9999999", 7],
        "probe_blocks": ["middle", "0, 7", "8", "-1", "1,,2", "", "99999999", 1.5],
        "start_percent": [0.0, 0.5, -0.1, math.nan, 2.0, "a"],
        "end_percent": [1.0, 0.2, math.inf, -1e-9],
        "target_speedup": [0.0, 2.0, 0.5, 51.0, math.nan],
        "probe_residual": ["attention", "block", "neither"],
        "sequence_parallel": ["auto", "off", "sometimes"],
    },
    "AdaCacheMoRegSettings": {
        "motion_scale": [0.15, 0.001, 10.0, 0.0, -1.0, math.nan, "x"],
        "motion_power": [8.0, 32.0, 0.1, 33.0, math.inf],
        "motion_divisor": [1.0, 0.01, 100.0, 0.0],
        "gradient_weight": [10.0, 0.0, 100.0, 1e308, math.nan],
        "frame_strides": ["1", "1, 2", "999", "1000", "0", "1,1,1", "a", "1," * 9],
        "window_start": [0.0, 0.1, 1.0, 1.5],
        "window_end": [0.9, 0.0, 1.0, -0.5],
    },
    "AdaCacheScheduleViewer": {},
}


def test_fuzz_refused_at_queue_time_or_run_to_the_end(demo_prompt):
    """Bounded: 60 random prompts, at most 8 executed; every one refused with a message or run fully."""
    from tools import comfy_exec

    rng = random.Random(2411)
    # baselines from this test: validating and running the demo prompt as it is
    validating = min(timed(refusal, demo_prompt)[1] for _ in range(3))
    running = timed(comfy_exec.execute, demo_prompt)[1]
    executed, validated, validation_seconds, run_seconds = 0, 0, 0.0, 0.0
    for _ in range(60):
        prompt = demo_prompt
        for class_type, inputs in FUZZ_VALUES.items():
            picked = {name: rng.choice(values) for name, values in inputs.items() if rng.random() < 0.4}
            prompt = with_inputs(prompt, class_type, **picked)
        message, seconds = timed(refusal, prompt)
        validated, validation_seconds = validated + 1, validation_seconds + seconds
        if message is not None:
            details = [e["details"] for node in json.loads(message)[1].values() for e in node["errors"]]
            assert all(len(d) < 300 and "Traceback" not in d for d in details), message[:300]
            continue
        if executed < 8:
            executed += 1
            started = time.perf_counter()
            try:
                comfy_exec.execute(prompt)
            except RuntimeError as error:  # only the node's own check of the probe against the model may refuse
                assert "this model has 8 blocks" in str(error), str(error)[:500]
            run_seconds += time.perf_counter() - started
    assert executed >= 3
    # bounded: no value makes validation or a run (4 steps) much slower than the demo prompt's own
    assert validation_seconds < 20 * validated * validating, (validation_seconds, validated, validating)
    assert run_seconds < 5 * executed * running, (run_seconds, executed, running)
