"""MoReg calibration: AdaCache Calibrate on ComfyUI's real runtime, and the adaptivity it buys on both tiny models."""
import json
import math

import pytest
import torch

import helpers as h
from adacache_core.calibration import MotionCalibration

VIDEO = torch.zeros(1, 16, 9, 16, 16)
STEPS = 30
BLOB_MODELS = ("heldout", "motion")  # the tiny models trained on moving blobs, whose prompts are motion classes


def calibrate(model, positive, negative, latent=VIDEO, earlier=None, seed=100, **overrides):
    """The `AdaCache Calibrate` node (the class ComfyUI registered): (samples, calibration text)."""
    import nodes

    values = dict(seed=seed, steps=STEPS, cfg=5.0, sampler_name="euler", scheduler="simple", probe_blocks="middle",
                  frame_strides="1", probe_residual="block", earlier_calibration=earlier) | overrides
    out = nodes.NODE_CLASS_MAPPINGS["AdaCacheCalibrate"].execute(model=model, positive=positive, negative=negative,
                                                                 latent_image={"samples": latent}, **values)
    return out.args[0]["samples"], out.args[1]


@pytest.fixture(scope="module")
def tiny_models(runtime):  # the blob models: their prompts are motion classes (static to fast)
    return {name: h.load_tiny(name) for name in BLOB_MODELS}


def test_calibration_run_is_the_unpatched_run_and_records_motion_per_noise_level(tiny_models):
    base, conds, empty = tiny_models["motion"]
    samples, text = calibrate(base, conds["static"], empty, seed=3)
    assert torch.equal(samples, h.ksample(base, conds["static"], empty, VIDEO, steps=STEPS, seed=3))
    data = json.loads(text)
    assert data["architecture"].startswith("Wan") and data["blocks"] == 8 and data["probe_blocks"] == [3]
    (still,) = data["runs"]
    assert len(still["sigmas"]) == len(still["motion"]) >= STEPS - 1
    assert all(a > b for a, b in zip(still["sigmas"], still["sigmas"][1:]))
    # early on the latent is mostly noise, whose frames differ: a still video scores high there, low at the end
    assert still["motion"][0] > 2 * still["motion"][-1] > 0

    _, merged = calibrate(base, conds["fast"], empty, earlier=text)
    runs = json.loads(merged)["runs"]
    assert len(runs) == 2 and runs[0] == still
    assert runs[1]["motion"][-1] > 2 * still["motion"][-1]  # the moving video separates late in the run


def test_calibrated_scale_is_the_runs_mean_motion_at_each_noise_level(runtime):
    cal = MotionCalibration("Wan", 4, (1,), "block", (1,), (((10.0, 1.0, 0.1), (0.6, 0.4, 0.2)),
                                                                   ((10.0, 1.0), (0.4, 0.2))))
    assert cal.scale_at(10.0) == pytest.approx(0.5)
    assert cal.scale_at(1.0) == pytest.approx(0.3)
    between = math.sqrt(10.0 * 1.0)  # halfway in log sigma
    assert cal.scale_at(between) == pytest.approx(((0.6 + 0.4) / 2 + (0.4 + 0.2) / 2) / 2)
    assert cal.scale_at(100.0) == pytest.approx(0.5) and cal.scale_at(0.01) == pytest.approx((0.2 + 0.2) / 2)
    again = MotionCalibration.from_text(cal.to_text())
    assert again == cal


def test_each_decision_takes_the_calibrated_scale_at_its_own_sigma():
    """The planner looks the calibrated scale up at the sigma of the step it decides on (not a
    neighbour's), and the factor maps the motion with that scale."""
    from adacache_core import AdaCacheConfig, Codebook, MoRegConfig
    from adacache_core.planner import RunPlanner
    from adacache_core.trace import RunTrace

    cal = MotionCalibration("Wan", 4, (0,), "block", (1,), (((1.0, 0.5, 0.1), (0.6, 0.3, 0.1)),))
    steps = 10
    sigmas = [1.0 - i / steps for i in range(steps + 1)]
    moreg = MoRegConfig(window=(0.0, 1.0), calibration=cal)
    trace = RunTrace("m", "a", {}, steps, sigmas, [])
    planner = RunPlanner(AdaCacheConfig(codebook=Codebook(((1.0, 1),)), probe_blocks=(0,), moreg=moreg), sigmas,
                         [True] * (steps + 1), trace)
    for step in range(steps):
        assert planner.enter(step)
        planner.add_change(0, torch.tensor(0.01), torch.tensor(1.0))
        planner.add_motion(0, 1, torch.tensor(0.25), torch.tensor(1.0))
    planner.finish()
    active = [d for d in trace.decisions if d.moreg_active]
    assert len(active) == steps - 1  # every decision but the first (nothing to compare with yet)
    for d in active:
        assert d.sigma == sigmas[d.step]
        assert d.moreg_scale == pytest.approx(cal.scale_at(sigmas[d.step]))
        assert d.moreg_factor == pytest.approx((0.25 / d.moreg_scale) ** 8)
    assert len({round(d.moreg_scale, 6) for d in active}) == len(active)  # a different scale at every step


@pytest.mark.parametrize("text, names", [
    ("not json", "not a calibration"),
    ('{"format": "other"}', "not a calibration"),
    ('{"format": "adacache-motion-calibration/1", "architecture": "Wan", "blocks": 4, "probe_blocks": [1], '
     '"probe_residual": "block", "frame_strides": [1], "runs": [{"sigmas": [1.0, 2.0], "motion": [0.1, 0.2]}]}',
     "descending"),
    ('{"format": "adacache-motion-calibration/1", "architecture": "Wan", "blocks": 4, "probe_blocks": [1], '
     '"probe_residual": "block", "frame_strides": [1], "runs": [{"sigmas": [2.0, 1.0], "motion": [NaN, 0.2]}]}',
     "not a calibration"),
    ("x" * 300_000, "at most"),
])
def test_a_bad_calibration_is_refused_by_name_before_sampling(runtime, text, names):
    import nodes

    node = nodes.NODE_CLASS_MAPPINGS["AdaCacheMoRegSettings"]
    with pytest.raises(ValueError, match=f"calibration: .*{names}"):
        node.execute(motion_scale=0.385, motion_power=8.0, motion_divisor=1.0, gradient_weight=10.0, frame_strides="1",
                     window_start=0.1, window_end=0.9, calibration=text)


def test_calibration_must_match_the_probe_and_model_it_is_used_with(tiny_models):
    base, conds, empty = tiny_models["motion"]
    _, text = calibrate(base, conds["slow"], empty, latent=torch.zeros(1, 16, 3, 8, 8))
    with pytest.raises(ValueError, match=r"calibration: measured with probe_blocks \[3\].*\[1\]"):
        h.adacache(None, base, probe_blocks="1", moreg=h.moreg(calibration=text))
    with pytest.raises(ValueError, match=r"calibration: measured with model Wan.* 8 blocks.* 6 blocks"):
        h.adacache(None, tiny_models["heldout"][0], moreg=h.moreg(calibration=text))
    with pytest.raises(ValueError, match=r"frame_strides: the calibration was measured with frame_strides \[1\]"):
        h.moreg(calibration=text, frame_strides="1, 2")
    with pytest.raises(ValueError, match="latent_image: .* 1 frame"):
        calibrate(base, conds["slow"], empty, latent=torch.zeros(1, 16, 1, 8, 8))


@pytest.mark.parametrize("name", BLOB_MODELS)
def test_calibrated_moreg_makes_the_schedule_follow_the_video_on_both_models(tiny_models, name):
    """The default preset with MoReg calibrated on this model (one run per class, seed 100), at another seed:
    the fastest class computes at least 1.3x the steps of the still one, and the classes differ. With the
    paper's scale the same preset computes the same steps for every class (benchmarks/RESULTS.md)."""
    base, conds, empty = tiny_models[name]
    text = None
    for pos in conds.values():
        text = calibrate(base, pos, empty, earlier=text)[1]
    computed = {}
    for cls, pos in conds.items():
        model = h.adacache(None, base, moreg=h.moreg(calibration=text))
        h.ksample(model, pos, empty, VIDEO, steps=STEPS, seed=0)
        trace = h.session_of(model).last_run
        computed[cls] = len(trace.computed_steps())
        assert trace.settings["moreg"]["calibration"]["runs"] == len(conds)
        scales = [d.moreg_scale for d in trace.decisions if d.moreg_active]
        assert scales and max(scales) > 1.2 * min(scales)  # the scale follows the noise level
    assert computed["fast"] >= 1.3 * computed["static"], computed
    assert len(set(computed.values())) > 1, computed

    # the speed knob lands on its compute with its planned steps: MoReg does not choose them, and the run data say so
    budgeted = {}
    for cls in ("static", "fast"):
        model = h.adacache(None, base, target_speedup=2.5, moreg=h.moreg(calibration=text))
        h.ksample(model, conds[cls], empty, VIDEO, steps=STEPS, seed=0)
        trace = h.session_of(model).last_run
        assert trace.budget == round(STEPS / 2.5) == len(trace.computed_steps())
        assert any("MoReg do not choose steps" in note for note in trace.notes)
        budgeted[cls] = trace.computed_steps()
    assert budgeted["static"] == budgeted["fast"]
