"""Whatever a user types: refused at queue time with a short, clear message, or run to the end.

Through ComfyUI's own prompt validation and execution engine, on the demo workflow (the tiny model,
shortened to 4 steps on a small latent so each executed case takes about a second).
"""
import json
import math
import os
import random
import sys
import time
from pathlib import Path

import pytest
import torch

import helpers as h
from tools import comfy_runtime

MEGABYTE = "1" * (1 << 20)


@pytest.fixture(scope="module")
def demo_prompt(runtime):
    """The demo, short, with MoReg Settings on its Patch Model as the calibrated workflow carries them (the scale
    set for this model): the cases reach MoReg's inputs too."""
    prompt = h.short_demo_prompt(4)
    patch = next(k for k, v in prompt.items() if v["class_type"] == "AdaCachePatchModel")
    prompt["90"] = {"class_type": "AdaCacheMoRegSettings",
                    "inputs": dict(motion_scale=0.15, motion_power=8.0, motion_divisor=1.0, gradient_weight=10.0,
                                   frame_strides="1", window_start=0.1, window_end=0.9)}
    prompt[patch]["inputs"]["moreg"] = ["90", 0]
    return prompt


def written_files(runtime) -> dict[str, tuple[int, int]]:
    """(size, mtime) of every file a prompt could write outside ComfyUI's output and temp folders: under
    ComfyUI, this repository, the folder around the output folder and the working directory."""
    output = runtime.output_dir.resolve()
    files = {}
    for root in {runtime.comfy_root, comfy_runtime.REPO_ROOT, output.parent, Path.cwd()}:
        for folder, dirs, names in os.walk(root):
            dirs[:] = [d for d in dirs if d not in ("__pycache__", ".pytest_cache") and Path(folder, d).resolve() != output]
            for name in names:
                stat = os.stat(os.path.join(folder, name), follow_symlinks=False)
                files[os.path.join(folder, name)] = (stat.st_size, stat.st_mtime_ns)
    return files


@pytest.fixture(scope="module", autouse=True)
def server_level_checks(runtime):
    """Over every case here: nothing written outside output/ and temp/, and all run data strict JSON."""
    before = written_files(runtime)
    yield
    after = written_files(runtime)
    assert {p for p in after.keys() | before.keys() if after.get(p) != before.get(p)} == set()
    for saved in runtime.output_dir.rglob("*.json"):
        json.loads(saved.read_text(), parse_constant=lambda c: pytest.fail(f"{saved.name} holds {c}"))


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
    """ComfyUI's validation message for the prompt, or None if it was accepted whole (ComfyUI queues a prompt
    of which some outputs fail validation, and drops those: that counts as refused here)."""
    from tools import comfy_exec

    valid, error, _, node_errors = comfy_exec.validate(prompt)
    return None if valid and not node_errors else json.dumps([error, node_errors])


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


@pytest.mark.parametrize("value", [0.0, 0.5, 1.0, 50.0, -0.25, 50.25])
def test_the_speed_knob_accepts_its_whole_widget_range(runtime, demo_prompt, value):
    """Saved workflows hold 0 (off); 0.5 asks for no speed-up; outside the widget's range a message names the range."""
    import nodes

    widget = next(i for i in nodes.NODE_CLASS_MAPPINGS["AdaCachePatchModel"].define_schema().inputs if i.id == "target_speedup")
    message = refusal(with_inputs(demo_prompt, "AdaCachePatchModel", target_speedup=value))
    if widget.min <= value <= widget.max:
        assert message is None
    else:
        assert message is not None and "target_speedup" in message and "from 0 to 50" in message, message


def test_probe_blocks_name_the_real_block_count(demo_prompt):
    from tools import comfy_exec

    message = refusal(with_inputs(demo_prompt, "AdaCachePatchModel", probe_blocks="x"))
    assert message is not None and "probe_blocks" in message and "10000" not in message
    with pytest.raises(RuntimeError) as error:  # the tiny model has 8 blocks: refused by the node, before sampling
        comfy_exec.execute(with_inputs(demo_prompt, "AdaCachePatchModel", probe_blocks="9"))
    assert "0 to 7 (this model has 8 blocks)" in str(error.value)


def calibration_text(runs: int = 1, motion=0.3) -> str:
    """A well-formed calibration of the demo's tiny model with ``runs`` runs; ``motion``: its first motion value."""
    data = {"format": "adacache-motion-calibration/1", "architecture": "Wan 2.1 / 2.2", "blocks": 8, "probe_blocks": [3],
            "probe_residual": "block", "frame_strides": [1], "runs": [{"sigmas": [1.0, 0.5], "motion": [motion, 0.2]}] * runs}
    return json.dumps(data)


def with_calibrate_node(prompt: dict, **inputs) -> dict:
    """The demo's model, prompts and latent into AdaCache Calibrate, whose samples are saved (the only output)."""
    sampler = next(n["inputs"] for n in prompt.values() if n["class_type"] == "KSampler")
    kept = {sampler[k][0] for k in ("positive", "negative", "latent_image")}
    loader = next(i for i, n in prompt.items() if n["class_type"] == "UNETLoader")
    calibrate = {"model": [loader, 0], "probe_blocks": "middle", "probe_residual": "block", "frame_strides": "1",
                 **{k: sampler[k] for k in ("seed", "steps", "cfg", "sampler_name", "scheduler", "positive", "negative",
                                            "latent_image")}}
    return json.loads(json.dumps({i: prompt[i] for i in kept | {loader}})) | {
        "90": {"class_type": "AdaCacheCalibrate", "inputs": calibrate | inputs},
        "91": {"class_type": "SaveLatent", "inputs": {"samples": ["90", 0], "filename_prefix": "adacache_test/calibrated"}}}


@pytest.mark.parametrize("text, why", [
    ("[" * 2000, "nested too deeply"),  # a raw RecursionError before
    (calibration_text(motion=int("9" * 400)), "a number too large"),  # a raw OverflowError before
    ("", "the text is empty"),  # silently ignored before
    (" \n", "the text is empty"),
    (calibration_text().replace("Wan 2.1 / 2.2", "\\udcff"), "its architecture '\\\\udcff' holds characters that cannot be shown"),
])
def test_bad_calibration_texts_are_refused_at_queue_time(demo_prompt, text, why):
    message = refusal(with_inputs(demo_prompt, "AdaCacheMoRegSettings", calibration=text))
    assert message is not None and "calibration: " in message and why in message, message
    message = refusal(with_calibrate_node(demo_prompt, earlier_calibration=text))
    assert message is not None and "earlier_calibration: " in message and why in message, message
    assert refusal(with_calibrate_node(demo_prompt, earlier_calibration=calibration_text())) is None


def with_plan_search_node(prompt: dict, **inputs) -> dict:
    """The demo's model, prompt and latent into AdaCache Plan Search, its plan into the demo's Patch Model."""
    sampler = next(n["inputs"] for n in prompt.values() if n["class_type"] == "KSampler")
    loader = next(i for i, n in prompt.items() if n["class_type"] == "UNETLoader")
    search = {"model": [loader, 0], "reuse": "forecast", "candidates": 2,
              **{k: sampler[k] for k in ("seed", "steps", "cfg", "sampler_name", "scheduler", "positive", "negative",
                                         "latent_image")}}
    prompt = with_inputs(prompt, "AdaCachePatchModel", plan=["92", 0])
    return prompt | {"92": {"class_type": "AdaCachePlanSearch", "inputs": search | inputs}}


@pytest.mark.parametrize("name, value, why", [
    ("steps", 3, "steps: must be a whole number from 4 to 100"), ("steps", 101, "from 4 to 100"),
    ("candidates", 0, "candidates: must be a whole number from 1 to 50"), ("candidates", "many", "candidates"),
    ("reuse", "keep", "reuse: 'keep' is not one of the choices (hold, forecast)"), ("seed", -1, "seed"),
    ("sampler_name", "nope", "sampler_name: 'nope' is not one of the choices (euler,"),
    ("scheduler", "nope", "scheduler: 'nope' is not one of the choices (simple,"),
])
def test_bad_plan_search_inputs_are_refused_at_queue_time(demo_prompt, name, value, why):
    assert refusal(with_plan_search_node(demo_prompt)) is None
    message = refusal(with_plan_search_node(demo_prompt, **{name: value}))
    assert message is not None and why in message, message


@pytest.mark.parametrize("text, why", [
    ("[" * 2000, "nested too deeply"), ("", "the text is empty"), ('{"format": "adacache-plan/1"}', "not a plan"),
    (calibration_text(), "format is not 'adacache-plan/1'"),  # a calibration connected to the wrong socket
    # a lone surrogate stopped the server's queue (tests/test_server_queue.py); control characters reached the viewer
    # (the expected texts are as the JSON of the refusal shows them: one backslash doubled)
    ('{"format": "adacache-plan/1", "architecture": "\\udcff", "blocks": 8, "reuse": "forecast", "searched_on": "", '
     '"sigmas": [1.0, 0.5, 0.0], "drop_order": [], "psnr": []}', "its architecture '\\\\udcff' holds characters that cannot be shown"),
    ('{"format": "adacache-plan/1", "architecture": "Wan 2.1 / 2.2", "blocks": 8, "reuse": "forecast", "searched_on": '
     '"a\\u001b[2Jb", "sigmas": [1.0, 0.5, 0.0], "drop_order": [], "psnr": []}', "its searched_on 'a\\\\x1b[2Jb' holds characters"),
])
def test_bad_plan_texts_are_refused_at_queue_time(demo_prompt, text, why):
    message = refusal(with_inputs(demo_prompt, "AdaCachePatchModel", plan=text))
    assert message is not None and "plan: " in message and why in message, message


@pytest.mark.parametrize("name", ["sampler_name", "scheduler"])
def test_calibrate_refuses_a_sampler_or_scheduler_that_is_not_a_choice(demo_prompt, name):
    message = refusal(with_calibrate_node(demo_prompt, **{name: "nope"}))
    assert message is not None and f"{name}: 'nope' is not one of the choices" in message, message


def test_calibrate_needs_two_steps(demo_prompt):
    message = refusal(with_calibrate_node(demo_prompt, steps=1))
    assert message is not None and "steps: a calibration measures the motion at each step and needs 2 to 10000" in message
    assert "reuse" not in message  # not the patched runs' note about reuse, which does not apply to a calibration


def test_the_seventeenth_chained_calibration_is_refused_before_it_samples(demo_prompt):
    """Typed in: refused at queue time. Linked (from a string node): refused by the node before sampling,
    shown by a step count that would take minutes to sample."""
    from tools import comfy_exec

    full = calibration_text(runs=16)
    message = refusal(with_calibrate_node(demo_prompt, earlier_calibration=full))
    assert message is not None and "earlier_calibration: it holds 16 runs, the most one calibration merges" in message
    prompt = with_calibrate_node(demo_prompt, earlier_calibration=["92", 0], steps=10000)
    prompt["92"] = {"class_type": "PrimitiveStringMultiline", "inputs": {"value": full}}
    started = time.perf_counter()
    with pytest.raises(RuntimeError) as error:
        comfy_exec.execute(prompt)
    assert "earlier_calibration: it holds 16 runs" in str(error.value)
    assert time.perf_counter() - started < 60


def ray_started() -> bool:
    """Whether Ray runs in this process or any process it started (a refused prompt must start none)."""
    import psutil

    ray = sys.modules.get("ray")  # never imported: never started
    started = ray is not None and ray.is_initialized()
    return started or any(p.name() in ("raylet", "gcs_server") for p in psutil.Process().children(recursive=True))


@pytest.mark.parametrize("value", ["foo", {"workers": []}, {"workers": ["foo"]}, {"nodes": 2}, 7])
def test_ray_actors_are_checked_before_any_ray_call(runtime, demo_prompt, value):
    """Typed in through the API: refused at queue time, on the Raylight patch node and on the viewer; and the
    nodes themselves refuse such a value (as another node might hand on) before they call Ray."""
    import nodes

    assert not ray_started()
    settings = {k: v for k, v in demo_prompt["2"]["inputs"].items() if k not in ("model", "moreg")}
    raylight = {"class_type": "AdaCachePatchModelRaylight", "inputs": settings | {"ray_actors": value}}
    for ray_actors in (value, ["80", 0]):  # on the viewer itself, or from the Raylight node wired to it
        prompt = with_inputs(demo_prompt, "AdaCacheScheduleViewer", ray_actors=ray_actors) | {"80": raylight}
        message = refusal(prompt)
        assert message is not None and "ray_actors: needs Raylight's workers" in message, message
    with pytest.raises(runtime.pack.adacache_core.SettingsError, match="ray_actors: needs Raylight's workers"):
        nodes.NODE_CLASS_MAPPINGS["AdaCachePatchModelRaylight"].execute(ray_actors=value, **settings)
    with pytest.raises(runtime.pack.adacache_core.SettingsError, match="ray_actors: needs Raylight's workers"):
        nodes.NODE_CLASS_MAPPINGS["AdaCacheScheduleViewer"].execute(samples={"samples": torch.zeros(1)},
                                                                    filename_prefix="adacache/test", ray_actors=value)
    assert not ray_started()


def run_data(saved: str) -> dict:
    """A viewer's saved run data, read as strict JSON (NaN or Infinity in it fails the test)."""
    from tools import comfy_runtime

    text = (comfy_runtime.boot().output_dir / saved).read_text()
    return json.loads(text, parse_constant=lambda c: pytest.fail(f"run data JSON holds {c}"))


def test_a_nan_latent_is_reported_by_the_run_data_and_the_viewer(demo_prompt):
    """LatentMultiply by NaN passes ComfyUI's own min/max check (NaN compares false): the sampler gets a NaN latent."""
    from tools import comfy_exec

    prompt = json.loads(json.dumps(demo_prompt))
    sampler = next(n["inputs"] for n in prompt.values() if n["class_type"] == "KSampler")
    prompt["95"] = {"class_type": "LatentMultiply", "inputs": {"samples": sampler["latent_image"], "multiplier": math.nan}}
    sampler["latent_image"] = ["95", 0]
    viewer = next(i for i, n in prompt.items() if n["class_type"] == "AdaCacheScheduleViewer")
    (text,) = comfy_exec.execute(prompt).history_result["outputs"][viewer]["text"]
    assert "note: NaN or infinite values in the sampler's input latent" in text, text
    assert "note: NaN or infinite values in the samples" in text, text
    (trace,) = run_data(text.rsplit("run data: ", 1)[1].strip()).values()
    assert all(d["change"] is None and d["motion"] is None for d in trace["decisions"])  # were 0.0, as if nothing moved
    assert any(n.startswith("NaN or infinite values in the probe block's output, first at step 0") for n in trace["notes"])


def test_infinite_hidden_states_leave_the_measurements_empty(runtime):
    import comfy.sd

    tiny = comfy.sd.load_diffusion_model(str(comfy_runtime.TINY_MODEL_DIR / "tiny_wan21_motion.safetensors"))
    patched = h.adacache(runtime, tiny, moreg=h.moreg())
    latent = torch.zeros(1, 16, 3, 8, 8)
    latent[0, 0, 1, 2, 2] = math.inf
    h.ksample(patched, h.conditioning(seed=1), h.conditioning(seed=2), latent, steps=6)
    trace = h.session_of(patched).last_run
    assert [d.change for d in trace.decisions] == [None] * len(trace.decisions)
    assert len([n for n in trace.notes if n.startswith("NaN or infinite values in the probe block's output")]) == 1
    json.loads(h.run_data_json(trace))


def viewer_text(executor, prompt: dict) -> str:
    viewer = next(i for i, n in prompt.items() if n["class_type"] == "AdaCacheScheduleViewer")
    (text,) = executor.history_result["outputs"][viewer]["text"]
    return text


@pytest.mark.parametrize("prefix, why", [
    ("x" * 300, "300 characters is too long; at most 200"),  # a raw OSError (Errno 36) before
    ("adacache/\x00schedule", "holds a NUL character"),  # 'embedded null byte' before
    ("", "needs a file name at its end"),  # wrote the hidden file output/._00001_.json before
    ("./.", "needs a file name at its end"),
    ("../schedule", "leads outside ComfyUI's output folder"),
])
def test_bad_viewer_file_names_are_refused_at_queue_time(demo_prompt, prefix, why):
    message = refusal(with_inputs(demo_prompt, "AdaCacheScheduleViewer", filename_prefix=prefix))
    assert message is not None and "filename_prefix: " in message and why in message, message


def test_a_linked_empty_file_name_is_refused_by_the_viewer(demo_prompt):
    from tools import comfy_exec

    prompt = with_inputs(demo_prompt, "AdaCacheScheduleViewer", filename_prefix=["98", 0])
    prompt["98"] = {"class_type": "PrimitiveString", "inputs": {"value": ""}}
    with pytest.raises(RuntimeError, match="filename_prefix: needs a file name at its end"):
        comfy_exec.execute(prompt)


@pytest.mark.parametrize("length, target_speedup, state", [
    (1, 0.0, "MoReg off in this run (set, but no motion was measured)"),  # said "MoReg on, scale 0.15" before
    (9, 2.0, "MoReg measuring only, scale 0.15 (the speed knob chose the steps)"),
    (9, 0.0, "MoReg on, scale 0.15"),
])
def test_the_summary_says_what_moreg_did(demo_prompt, length, target_speedup, state):
    from tools import comfy_exec

    prompt = with_inputs(with_inputs(demo_prompt, "EmptyHunyuanLatentVideo", length=length), "AdaCachePatchModel",
                         target_speedup=target_speedup)
    prompt = with_inputs(prompt, "AdaCacheScheduleViewer", detail="engineering")  # the overview has three plain lines
    text = viewer_text(comfy_exec.execute(prompt), prompt)
    assert state in text, text
    assert ("MoReg on" in text) == state.startswith("MoReg on")


def test_a_sampler_output_from_comfyuis_cache_is_named_as_such(runtime, demo_prompt):
    """As a server between prompts: a second sampler on the same patched model runs each time (its seed
    changes), the first one's output comes from ComfyUI's cache and its run leaves the model's kept runs."""
    from tools import comfy_exec

    kept = runtime.pack.adacache_core.session.RUNS_KEPT
    prompt = json.loads(json.dumps(demo_prompt))
    sampler = next(i for i, n in prompt.items() if n["class_type"] == "KSampler")
    prompt["96"] = json.loads(json.dumps(prompt[sampler]))
    prompt["97"] = {"class_type": "SaveLatent", "inputs": {"samples": ["96", 0], "filename_prefix": "adacache_test/other"}}
    executor, texts = None, []
    for k in range(kept + 2):  # the first prompt runs both samplers; one more than kept pushes the first run out
        prompt["96"]["inputs"]["seed"] = 1000 + k
        prompt = with_inputs(prompt, "AdaCacheScheduleViewer", filename_prefix=f"adacache_test/cached_{k}")
        executor = comfy_exec.execute(prompt, executor)
        texts.append(viewer_text(executor, prompt))
    assert texts[0].startswith("model: 3 of 4 steps computed"), texts[0]
    cached = next(data["nodes"] for event, data in executor.status_messages if event == "execution_cached")
    assert sampler in cached  # this prompt's samples came from ComfyUI's cache
    assert "these samples are ComfyUI's cached output of an earlier run of this model" in texts[-1], texts[-1]
    assert "connect the output of the sampler" not in texts[-1]


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
    json.loads(h.run_data_json(trace), parse_constant=lambda c: pytest.fail(f"run data JSON holds {c}"))


FUZZ_VALUES = {
    "AdaCachePatchModel": {
        "preset": ["paper: fastest (fast, 30 steps)", "custom", "nope", 3, None],
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
        "calibration": ["", "[" * 2000, calibration_text(), calibration_text(motion=int("9" * 400))],
    },
    "AdaCacheScheduleViewer": {
        "filename_prefix": ["adacache/schedule", "", "x" * 300, "a\x00b", "../up", "adacache/."],
        "ray_actors": ["foo", {"workers": []}],
    },
}


def test_fuzz_refused_at_queue_time_or_run_to_the_end(demo_prompt):
    """Bounded: 150 random prompts, at most 8 executed; every one refused with a message or run fully."""
    from tools import comfy_exec

    rng = random.Random(2411)
    # baselines from this test: validating and running the demo prompt as it is
    validating = min(timed(refusal, demo_prompt)[1] for _ in range(3))
    running = timed(comfy_exec.execute, demo_prompt)[1]
    executed, validated, validation_seconds, run_seconds = 0, 0, 0.0, 0.0
    for _ in range(150):
        prompt = demo_prompt
        for class_type, inputs in FUZZ_VALUES.items():  # each node fuzzed in half the prompts, so some pass whole
            picked = {name: rng.choice(values) for name, values in inputs.items() if rng.random() < 0.4} \
                if rng.random() < 0.5 else {}
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
            except RuntimeError as error:
                # only the nodes' own checks, before sampling: of the probe against the model, and of null values,
                # which ComfyUI's validation passes as None just as it does linked inputs
                assert "SettingsError'" in str(error), str(error)[:500]
            run_seconds += time.perf_counter() - started
    assert executed >= 3
    # bounded: no value makes validation or a run (4 steps) much slower than the demo prompt's own
    assert validation_seconds < 20 * validated * validating, (validation_seconds, validated, validating)
    assert run_seconds < 5 * executed * running, (run_seconds, executed, running)


def plan_search_error(prompt: dict) -> str:
    """The error ComfyUI's execution engine reports for ``prompt`` (which must fail in AdaCache Plan Search)."""
    from tools import comfy_exec

    with pytest.raises(RuntimeError) as error:
        comfy_exec.execute(prompt)
    assert "AdaCachePlanSearch" in str(error.value), error.value
    return str(error.value)


def test_plan_search_refuses_a_model_adacache_already_patched(demo_prompt):
    """It ran both patches before (every search run computed half its steps) and returned another plan, silently."""
    prompt = with_plan_search_node(demo_prompt)
    patch = next(i for i, n in prompt.items() if n["class_type"] == "AdaCachePatchModel")
    prompt["92"]["inputs"]["model"] = [patch, 0]
    del prompt[patch]["inputs"]["plan"]  # the plan socket left unconnected: no cycle
    prompt["93"] = {"class_type": "PreviewAny", "inputs": {"source": ["92", 0]}}
    assert "model: it already went through AdaCache Patch Model" in plan_search_error(prompt)


def test_plan_search_refuses_a_nan_cfg_at_queue_time(demo_prompt):
    """ComfyUI's own range check lets NaN through (it compares false); the plan's PSNRs were all null."""
    message = refusal(with_plan_search_node(demo_prompt, cfg=math.nan))
    assert message is not None and "cfg: must be a number from 0 to 100, got nan" in message, message


@pytest.mark.parametrize("latent, why", [
    ("EmptyHunyuanLatentVideo", "latent_image: holds NaN or infinite values"),  # a plan of null PSNRs before
    ("EmptyLatentImage", "latent_image: has 4 channels, this model's latents have 16"),  # a raw RuntimeError before
])
def test_plan_search_refuses_a_latent_it_cannot_sample(demo_prompt, latent, why):
    """LatentMultiply by NaN makes a latent that is not empty (NaN counts as non-zero), so ComfyUI keeps its channels."""
    prompt = with_plan_search_node(demo_prompt)
    size = {"EmptyLatentImage": {"width": 32, "height": 32, "batch_size": 1},
            "EmptyHunyuanLatentVideo": {"width": 32, "height": 32, "length": 9, "batch_size": 1}}[latent]
    prompt["94"] = {"class_type": latent, "inputs": size}
    prompt["95"] = {"class_type": "LatentMultiply", "inputs": {"samples": ["94", 0], "multiplier": math.nan}}
    prompt["92"]["inputs"]["latent_image"] = ["95", 0]
    assert why in plan_search_error(prompt)


def test_a_speed_past_the_knobs_reach_is_said_in_the_summary(demo_prompt):
    """4 steps always compute 3 (the first and last two): 2x asks for more than the 1.33x they allow."""
    from tools import comfy_exec

    prompt = with_inputs(demo_prompt, "AdaCachePatchModel", target_speedup=2.0)
    text = viewer_text(comfy_exec.execute(prompt), prompt)
    assert "speed knob: 2x is more than this run can do: at most 1.33x (3 of its 4 steps are always computed)" in text


def test_an_infinite_psnr_written_as_1e999_is_refused(demo_prompt):
    """JSON reads 1e999 as infinity, which the word Infinity was already refused as."""
    text = ('{"format": "adacache-plan/1", "architecture": "Wan 2.1 / 2.2", "blocks": 8, "reuse": "forecast", '
            '"searched_on": "", "sigmas": [1.0, 0.5, 0.0], "drop_order": [1], "psnr": [1e999]}')
    message = refusal(with_inputs(demo_prompt, "AdaCachePatchModel", plan=text))
    assert message is not None and "inf is not a finite number" in message, message


@pytest.mark.parametrize("settings, why", [
    ({"reuse": "hold"}, "plan: it was searched with reuse 'forecast' and this node reuses with 'hold'"),
    ({"target_speedup": 0.0}, "plan: a searched plan tells the speed knob which steps to give up first"),
])
def test_a_plan_that_cannot_apply_to_the_node_is_refused_at_queue_time(demo_prompt, settings, why):
    """Knowable from the typed widgets; it failed only when the node ran before."""
    plan = ('{"format": "adacache-plan/1", "architecture": "Wan 2.1 / 2.2", "blocks": 8, "reuse": "forecast", '
            '"searched_on": "", "sigmas": [1.0, 0.5, 0.0], "drop_order": [1], "psnr": [40.0]}')
    assert refusal(with_inputs(demo_prompt, "AdaCachePatchModel", plan=plan)) is None
    message = refusal(with_inputs(demo_prompt, "AdaCachePatchModel", plan=plan, **settings))
    assert message is not None and why in message, message
