"""Cache Schedule Viewer on recorded data of real runs."""
import json

import pytest
import torch

import helpers as h


@pytest.fixture(scope="module")
def wan(runtime):
    return h.load_model_patcher(h.random_wan_state_dict(seed=0))


def view(model, latent, model_2=None):
    import nodes

    viewer = nodes.NODE_CLASS_MAPPINGS["AdaCacheScheduleViewer"]
    return viewer.execute(model=model, samples={"samples": latent}, filename_prefix="adacache/test", model_2=model_2)


def assert_chart(image, size=(720, 1200)):
    assert image.shape == (1, *size, 3)
    assert image.std() > 0.05  # not blank


def test_summary_and_json_come_from_the_recorded_run(runtime, wan):
    patched = h.adacache(runtime, wan, preset="custom", custom_codebook="10:3")
    latent = h.ksample(patched, h.conditioning(seed=1), h.conditioning(seed=2), torch.zeros(1, 16, 3, 8, 8), steps=10)
    out = view(patched, latent)
    image, text = out.args
    assert_chart(image)
    run = h.session_of(patched).last_run
    assert "computed 6/10 steps (uncond 6/10, cond 6/10)" in text
    assert "ideal speedup 1.67x" in text
    assert "probe blocks [1] (attention residual)" in text  # the paper's probe, on the Wan family
    saved = text.rsplit("run data: ", 1)[1].strip()
    data = json.loads((runtime.output_dir / saved).read_text())
    assert data["model"]["summary"]["computed_steps"] == len(run.computed_steps()) == 6
    assert type(run).from_dict(data["model"]) == run  # the pack's own RunTrace class, as ComfyUI loaded it
    assert out.ui["text"] == (text,) and out.ui["images"]


def test_latest_of_several_runs_and_two_experts(runtime, wan):
    a = h.adacache(runtime, wan, preset="custom", custom_codebook="10:3")
    b = h.adacache(runtime, h.load_model_patcher(h.random_wan_state_dict(seed=3)), preset="custom", custom_codebook="10:2")
    h.ksample(a, h.conditioning(), h.conditioning(seed=2), torch.zeros(1, 16, 3, 8, 8), steps=10)
    latent = h.ksample(a, h.conditioning(), h.conditioning(seed=2), torch.zeros(1, 16, 3, 8, 8), steps=20)
    h.ksample(b, h.conditioning(), h.conditioning(seed=2), torch.zeros(1, 16, 3, 8, 8), steps=8)
    image, text = view(a, latent, model_2=b).args
    assert_chart(image)
    assert "model 1: Wan 2.1 / 2.2, 20 steps" in text and "model 2: Wan 2.1 / 2.2, 8 steps" in text


@pytest.mark.parametrize("steps", [1, 200])
def test_extreme_step_counts(runtime, wan, steps):
    patched = h.adacache(runtime, wan)
    latent = h.ksample(patched, h.conditioning(), h.conditioning(seed=2), torch.zeros(1, 16, 1, 4, 4), steps=steps)
    image, text = view(patched, latent).args
    assert_chart(image)
    assert f"{steps} steps" in text


def test_unpatched_and_never_sampled_models_get_a_clear_message(runtime, wan):
    latent = torch.zeros(1, 16, 1, 4, 4)
    image, text = view(wan, latent).args
    assert "not patched by AdaCache Patch Model" in text
    assert image.shape[-1] == 3 and image.std() > 0.01
    fresh = h.adacache(runtime, wan)
    image, text = view(fresh, latent).args
    assert "not sampled yet" in text
