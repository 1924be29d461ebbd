"""Cache Schedule Viewer on recorded data of real runs."""
import json

import pytest
import torch

import helpers as h


@pytest.fixture(scope="module")
def wan(runtime):
    return h.load_model_patcher(h.random_wan_state_dict(seed=0))


def view(model, latent, model_2=None, detail="overview"):
    import nodes

    viewer = nodes.NODE_CLASS_MAPPINGS["AdaCacheScheduleViewer"]
    return viewer.execute(model=model, samples={"samples": latent}, filename_prefix="adacache/test", model_2=model_2,
                          detail=detail)


def assert_chart(image, rows=1):
    """The overview: a headline over one strip row per model (and per branch where branches differ)."""
    assert image.shape == (1, 170 + 40 * rows, 1200, 3)
    assert image.std() > 0.05  # not blank


def share_of_colour(image, hex_colour: str) -> float:
    """The share of the picture's pixels within a few levels of ``hex_colour``."""
    rgb = torch.tensor([int(hex_colour[i:i + 2], 16) for i in (1, 3, 5)], dtype=torch.float32) / 255
    return ((image[0] - rgb).abs().max(dim=-1).values < 3 / 255).float().mean().item()


def test_summary_and_json_come_from_the_recorded_run(runtime, wan):
    patched = h.adacache(runtime, wan, preset="custom", custom_codebook="10:3")
    latent = h.ksample(patched, h.conditioning(seed=1), h.conditioning(seed=2), torch.zeros(1, 16, 3, 8, 8), steps=10)
    out = view(patched, latent)
    image, text = out.args
    assert_chart(image)
    run = h.session_of(patched).last_run
    # the overview: three plain lines
    lines = text.rsplit("\nrun data: ", 1)[0].splitlines()
    assert lines[0] == "model: 6 of 10 steps computed" and lines[1].startswith("  speed-up: up to 1.67x")
    assert lines[2] == "  steps chosen by the paper's schedule (preset custom)" and len(lines) == 3
    engineering = view(patched, latent, detail="engineering").args[1]  # the numbers behind them
    assert "computed 6/10 steps (uncond 6/10, cond 6/10)" in engineering
    assert "ideal speedup 1.67x" in engineering
    assert "probe blocks [1] (block residual)" in engineering
    assert "MoReg off, reuse hold (the paper)" in engineering
    assert ("computed whatever the schedule said: steps 1, 9, 10 (the first and the last two steps are always "
            "computed)") in engineering
    saved = text.rsplit("run data: ", 1)[1].strip()
    data = json.loads((runtime.output_dir / saved).read_text())
    assert data["model"]["summary"]["computed_steps"] == len(run.computed_steps()) == 6
    assert type(run).from_dict(data["model"]) == run  # the pack's own RunTrace class, as ComfyUI loaded it
    assert out.ui["text"] == (text,) and out.ui["images"]


def test_summary_names_the_reuse_and_the_moreg_scale(runtime, wan):
    settings = dict(preset="custom", custom_codebook="10:3", reuse="forecast", moreg=h.moreg(motion_scale=0.2))
    patched = h.adacache(runtime, wan, **settings)
    latent = h.ksample(patched, h.conditioning(seed=1), h.conditioning(seed=2), torch.zeros(1, 16, 3, 8, 8), steps=10)
    text = view(patched, latent, detail="engineering").args[1]
    assert "MoReg on, scale 0.2, reuse forecast (along the steps)" in text


def test_each_viewer_shows_the_run_that_produced_its_samples(runtime, wan):
    """Two samplers on one patched model: each viewer reports its own sampler's run, not the latest."""
    a = h.adacache(runtime, wan, preset="custom", custom_codebook="10:3")
    first = h.ksample(a, h.conditioning(), h.conditioning(seed=2), torch.zeros(1, 16, 3, 8, 8), steps=10)
    second = h.ksample(a, h.conditioning(), h.conditioning(seed=2), torch.zeros(1, 16, 3, 8, 8), steps=20)
    assert "model: 6 of 10 steps computed" in view(a, first).args[1]
    assert "model: 9 of 20 steps computed" in view(a, second).args[1]
    image, text = view(a, torch.zeros(1, 16, 3, 8, 8)).args  # samples no run of this model produced
    assert "none of its last 2 runs produced these samples" in text and "steps" not in text
    assert image.shape[-1] == 3 and image.std() > 0.01  # the message as a picture


def test_two_experts_are_found_through_the_latent_they_hand_on(runtime):
    import nodes

    high = h.adacache(runtime, h.load_model_patcher(h.random_wan_state_dict(seed=10)), preset="custom", custom_codebook="10:2")
    low = h.adacache(runtime, h.load_model_patcher(h.random_wan_state_dict(seed=11)), preset="custom", custom_codebook="10:3")
    sampler = nodes.KSamplerAdvanced()
    conds = h.conditioning(seed=1), h.conditioning(seed=2)
    h.ksample(high, *conds, torch.zeros(1, 16, 3, 8, 8), steps=4)  # a later, unrelated run of the high-noise expert
    mid = sampler.sample(high, "enable", 0, 12, 5.0, "euler", "simple", *conds, {"samples": torch.zeros(1, 16, 3, 8, 8)},
                         0, 6, "enable")[0]
    out = sampler.sample(low, "disable", 0, 12, 5.0, "euler", "simple", *conds, mid, 6, 12, "disable")[0]["samples"]
    h.ksample(high, *conds, torch.zeros(1, 16, 3, 8, 8), steps=8)
    image, text = view(high, out, model_2=low).args
    assert_chart(image, rows=2)  # one row per expert: cond and uncond computed the same steps
    assert text.count(" of 6 steps computed") == 2 and "model 1: " in text and "model 2: " in text


def test_an_interrupted_run_is_not_finished_and_not_shown(runtime, wan):
    import comfy.model_management
    import comfy.patcher_extension

    patched = h.adacache(runtime, wan, preset="custom", custom_codebook="10:3")
    done = h.ksample(patched, h.conditioning(), h.conditioning(seed=2), torch.zeros(1, 16, 3, 8, 8), steps=10)
    calls = []

    def interrupt_at_the_fourth_call(executor, *args, **kwargs):
        calls.append(1)
        if len(calls) == 4:
            raise comfy.model_management.InterruptProcessingException()
        return executor(*args, **kwargs)

    interrupted = patched.clone()
    interrupted.add_wrapper_with_key(comfy.patcher_extension.WrappersMP.APPLY_MODEL, "test-interrupt", interrupt_at_the_fourth_call)
    with pytest.raises(comfy.model_management.InterruptProcessingException):
        h.ksample(interrupted, h.conditioning(), h.conditioning(seed=2), torch.zeros(1, 16, 3, 8, 8), steps=10)
    run = h.session_of(patched).last_run
    assert run.finished is False and run.output_latent is None
    assert h.session_of(patched).runs[-2].finished is True
    text = view(patched, done).args[1]
    assert "model: 6 of 10 steps computed" in text  # the completed run that produced these samples
    text = view(patched, torch.ones(1, 16, 3, 8, 8)).args[1]
    assert "(its last run was interrupted)" in text


@pytest.mark.parametrize("steps", [1, 2, 200])
def test_extreme_step_counts(runtime, wan, steps, caplog):
    patched = h.adacache(runtime, wan)
    with caplog.at_level("WARNING", logger="adacache"):
        latent = h.ksample(patched, h.conditioning(), h.conditioning(seed=2), torch.zeros(1, 16, 1, 4, 4), steps=steps)
    image, text = view(patched, latent).args
    assert_chart(image)
    assert f"of {steps} steps computed" in text
    too_short = [r.getMessage() for r in caplog.records if "nothing to reuse" in r.getMessage()]
    if steps < 4:  # one clear line in the console and in the viewer (a 4-step LightX2V run gives 2 per expert)
        assert len(too_short) == 1 and f"note: {steps} step(s): the first and last two steps are always computed" in text
    else:
        assert not too_short


def test_unpatched_and_never_sampled_models_get_a_clear_message(runtime, wan):
    latent = torch.zeros(1, 16, 1, 4, 4)
    image, text = view(wan, latent).args
    assert "not patched by AdaCache Patch Model" in text
    assert image.shape[-1] == 3 and image.std() > 0.01
    fresh = h.adacache(runtime, wan)
    image, text = view(fresh, latent).args
    assert "not sampled yet" in text


def test_without_matplotlib_the_viewer_shows_a_message_card(runtime, wan, monkeypatch):
    import sys

    patched = h.adacache(runtime, wan, preset="custom", custom_codebook="10:3")
    latent = h.ksample(patched, h.conditioning(), h.conditioning(seed=2), torch.zeros(1, 16, 3, 8, 8), steps=10)
    for name in [m for m in sys.modules if m == "matplotlib" or m.startswith("matplotlib.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib now raises ImportError
    image, text = view(patched, latent).args
    assert "6 of 10 steps computed" in text
    assert image.shape == (1, 210, 1200, 3) and image.std() > 0.01  # a card with the message, not blank


def test_the_overview_has_a_headline_and_blue_computed_grey_reused_steps(runtime, wan):
    chart = runtime.pack.adacache_core.chart
    patched = h.adacache(runtime, wan, preset="custom", custom_codebook="10:3", moreg=h.moreg(motion_scale=0.2))
    latent = h.ksample(patched, h.conditioning(seed=1), h.conditioning(seed=2), torch.zeros(1, 16, 3, 8, 8), steps=10)
    trace = h.session_of(patched).last_run
    title, subtitle = chart.headline([("model", trace)])
    assert title == "6 of 10 steps computed: up to 1.67x faster"
    assert subtitle.startswith("reuse: hold   \u00b7   MoReg on   \u00b7   steps chosen by the paper's schedule (preset custom)   \u00b7   estimated")
    # cond and uncond computed the same steps: one row in the overview, one each in the engineering picture
    assert [label for label, _, _ in chart.strip_rows([("model", trace)], merge_equal=True)] == ["model"]
    assert [label for label, _, _ in chart.strip_rows([("model", trace)], merge_equal=False)] == ["uncond", "cond"]
    image = view(patched, latent).args[0]
    assert_chart(image)
    blue, grey = share_of_colour(image, chart.COMPUTED), share_of_colour(image, chart.REUSED)
    assert blue > 0.01 and grey > 0.005 and 1.2 < blue / grey < 2.5  # 6 computed cells to 4 reused
    assert share_of_colour(image, "#d1495b") == 0  # the red of the old chart, which read as an error


def test_branches_that_differ_get_a_row_each(runtime, wan):
    import dataclasses

    chart = runtime.pack.adacache_core.chart
    patched = h.adacache(runtime, wan, preset="custom", custom_codebook="10:3")
    h.ksample(patched, h.conditioning(seed=1), h.conditioning(seed=2), torch.zeros(1, 16, 3, 8, 8), steps=10)
    trace = h.session_of(patched).last_run
    reused = next(c for c in trace.calls if not c.computed)
    split = [dataclasses.replace(reused, branches=["cond"], computed=True), dataclasses.replace(reused, branches=["uncond"])]
    calls = [x for c in trace.calls for x in (split if c is reused else [c])]
    differing = dataclasses.replace(trace, calls=calls)  # as if cond had computed a step that uncond reused
    rows = chart.strip_rows([("model", differing)], merge_equal=True)
    assert [label for label, _, _ in rows] == ["uncond", "cond"]
    assert rows[1][2][reused.step] and not rows[0][2][reused.step]


def test_the_engineering_picture_adds_the_measurements(runtime, wan):
    chart = runtime.pack.adacache_core.chart
    patched = h.adacache(runtime, wan, preset="custom", custom_codebook="10:3", moreg=h.moreg(motion_scale=0.2))
    latent = h.ksample(patched, h.conditioning(seed=1), h.conditioning(seed=2), torch.zeros(1, 16, 3, 8, 8), steps=10)
    overview, text = view(patched, latent).args
    engineering, fuller_text = view(patched, latent, detail="engineering").args
    assert engineering.shape == (1, 720, 1200, 3) and engineering.std() > 0.05
    overview_lines, engineering_lines = (t.split("run data: ")[0].strip().splitlines() for t in (text, fuller_text))
    assert len(overview_lines) == 3 and len(engineering_lines) > 3  # the numbers behind the three lines
    assert "codebook used" in fuller_text and "codebook used" not in text
    assert share_of_colour(engineering, "#e76f51") > 0  # MoReg's multiplier, drawn only there
    assert share_of_colour(overview, "#e76f51") == 0
    assert chart.DETAILS == ("overview", "engineering")
