"""The project's trained tiny Wan 2.1 models: load through ComfyUI's loader and really learned motion.

``motion`` is the model the pack is tuned on; ``heldout`` (trained apart, other size and data) is
the one nobody tunes on. Both are checked the same way.
"""
import json
import statistics

import pytest
import torch

import helpers as h
from tools import comfy_runtime
from tools.tiny_video_data import HELDOUT_CLASSES, MOTION_CLASSES, VideoSpec, latent_motion, sample_video

pytestmark = pytest.mark.once  # tests/conftest.py: the same on every ComfyUI

SEEDS = (0, 1, 2)
# per model: its data, classes, block count, and how clearly its samples move as trained (frame-to-frame
# change: slow over still per seed, fastest over still on average; measured here, CFG 3, seeds 0-2:
# motion 0.10-0.12 < 0.37-0.40 < 0.55-0.66; held-out 0.16-0.17 < 0.20 < 0.42-0.51, its slow class
# crawling at 0.4 latent pixels per frame)
SPECS = {"motion": (VideoSpec(), MOTION_CLASSES, 8, 2.0, 4.0),
         "heldout": (VideoSpec(blobs=3, classes=HELDOUT_CLASSES, texture="waves"), HELDOUT_CLASSES, 6, 1.1, 2.5)}


def fixture(name: str):
    return comfy_runtime.TINY_MODEL_DIR / f"{h.TINY_MODELS[name][0]}.safetensors"


@pytest.fixture(scope="module", params=sorted(SPECS))
def tiny(runtime, request):
    import nodes

    model = nodes.UNETLoader().load_unet(fixture(request.param).name, "default")[0]  # as a user's graph loads it
    _, conds, empty = h.load_tiny(request.param)
    samples = {}
    for cls in h.TINY_MODELS[request.param][1]:
        for seed in SEEDS:
            out = h.ksample(model, conds[cls], empty, torch.zeros(1, 16, 9, 16, 16), steps=20, seed=seed, cfg=3.0)
            samples[cls, seed] = model.model.latent_format.process_in(out)  # back to the space the model was trained in
    return request.param, model, samples


def test_fixture_is_small_and_described(tiny):
    name = tiny[0]
    assert fixture(name).stat().st_size < 20 * 2**20
    meta = json.loads(fixture(name).with_suffix(".json").read_text())
    assert set(meta["classes"]) == {c.name for c in SPECS[name][1]} == set(h.TINY_MODELS[name][1])
    assert meta["model_config"]["dim"] % 128 == 0 and meta["model_config"]["text_dim"] == 4096
    assert meta["model_config"]["num_layers"] >= 6
    assert meta["loss_log"][-1]["loss"] < meta["loss_log"][0]["loss"] / 2


def test_loads_through_comfyui_as_wan21(tiny):
    name, model, _ = tiny
    assert type(model.model).__name__ == "WAN21"
    assert type(model.model.diffusion_model).__name__ == "WanModel"
    assert len(model.model.diffusion_model.blocks) == SPECS[name][2]


def test_motion_follows_the_prompt(tiny):
    name, _, samples = tiny
    classes = h.TINY_MODELS[name][1]  # stillest to fastest
    slow_over_still, fastest_over_still = SPECS[name][3:]
    motion = {c: [latent_motion(samples[c, s]) for s in SEEDS] for c in classes}
    # every seed orders the still, slow and fastest classes as trained, by a clear margin
    for s in range(len(SEEDS)):
        assert motion["static"][s] * slow_over_still < motion["slow"][s], motion
        assert motion["slow"][s] * 1.2 < motion[classes[-1]][s], motion
    assert statistics.mean(motion[classes[-1]]) > fastest_over_still * statistics.mean(motion["static"]), motion


def test_samples_look_like_the_training_data_not_noise(tiny):
    name, _, samples = tiny
    spec, classes = SPECS[name][:2]
    g = torch.Generator().manual_seed(0)
    data = torch.stack([sample_video(spec, c, g) for c in classes for _ in range(4)])
    noise_motion = latent_motion(torch.randn(1, 16, 9, 16, 16))
    for x in samples.values():
        assert 0.6 * data.std() < x.std() < 2.0 * data.std()
        assert latent_motion(x) < noise_motion / 2
        per_frame_std = x.std(dim=(1, 3, 4))
        assert per_frame_std.min() > 0.5 * data.std()


def test_demo_nodes(tiny):
    import nodes

    cond = nodes.NODE_CLASS_MAPPINGS["AdaCacheDemoPrompt"].execute(motion="fast").args[0]
    assert cond[0][0].shape == (1, 8, 4096)
    name, _, samples = tiny
    latent = samples[h.TINY_MODELS[name][1][-1], 0]
    images = nodes.NODE_CLASS_MAPPINGS["AdaCacheDemoLatentPreview"].execute(samples={"samples": latent}, scale=4).args[0]
    assert images.shape == (9, 64, 64, 3)
    assert 0 <= images.min() and images.max() <= 1 and images.std() > 0.01
