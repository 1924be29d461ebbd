"""The project's trained tiny Wan 2.1 model: loads through ComfyUI's loader and really learned motion."""
import json
import statistics

import pytest
import torch

from tools import comfy_runtime
from tools.tiny_video_data import MOTION_CLASSES, VideoSpec, latent_motion, sample_video

FIXTURE = comfy_runtime.FIXTURE_MODEL_DIR / "tiny_wan21_motion.safetensors"
SEEDS = (0, 1, 2)


@pytest.fixture(scope="module")
def tiny(runtime):
    import nodes

    return nodes.UNETLoader().load_unet(FIXTURE.name, "default")[0]


def sample(runtime, model, motion: str, seed: int, steps: int = 20, cfg: float = 3.0):
    import helpers as h

    demo = runtime.pack.nodes.demo
    pos, neg = [[demo.load_prompt(motion), {}]], [[demo.load_prompt("empty"), {}]]
    out = h.ksample(model, pos, neg, torch.zeros(1, 16, 9, 16, 16), steps=steps, seed=seed, cfg=cfg)
    return model.model.latent_format.process_in(out)  # back to the space the model was trained in


@pytest.fixture(scope="module")
def samples(runtime, tiny):
    return {(m, s): sample(runtime, tiny, m, s) for m in ("static", "slow", "fast") for s in SEEDS}


def test_fixture_is_small_and_described():
    assert FIXTURE.stat().st_size < 20 * 2**20
    meta = json.loads(FIXTURE.with_suffix(".json").read_text())
    assert set(meta["classes"]) == {c.name for c in MOTION_CLASSES}
    assert meta["model_config"]["dim"] % 128 == 0 and meta["model_config"]["text_dim"] == 4096
    assert meta["model_config"]["num_layers"] >= 6
    assert meta["loss_log"][-1]["loss"] < meta["loss_log"][0]["loss"] / 2


def test_loads_through_comfyui_as_wan21(tiny):
    assert type(tiny.model).__name__ == "WAN21"
    assert type(tiny.model.diffusion_model).__name__ == "WanModel"
    assert len(tiny.model.diffusion_model.blocks) == 8


def test_motion_follows_the_prompt(samples):
    motion = {m: [latent_motion(samples[m, s]) for s in SEEDS] for m in ("static", "slow", "fast")}
    # every seed orders the classes as trained, by a clear margin
    for s in range(len(SEEDS)):
        assert motion["static"][s] * 2 < motion["slow"][s], motion
        assert motion["slow"][s] * 1.2 < motion["fast"][s], motion
    assert statistics.mean(motion["fast"]) > 4 * statistics.mean(motion["static"]), motion


def test_samples_look_like_the_training_data_not_noise(samples):
    g = torch.Generator().manual_seed(0)
    data = torch.stack([sample_video(VideoSpec(), c, g) for c in MOTION_CLASSES for _ in range(4)])
    noise_motion = latent_motion(torch.randn(1, 16, 9, 16, 16))
    for x in samples.values():
        assert 0.6 * data.std() < x.std() < 2.0 * data.std()
        assert latent_motion(x) < noise_motion / 2
        per_frame_std = x.std(dim=(1, 3, 4))
        assert per_frame_std.min() > 0.5 * data.std()


def test_demo_nodes(runtime, samples):
    import nodes

    cond = nodes.NODE_CLASS_MAPPINGS["AdaCacheDemoPrompt"].execute(motion="fast").args[0]
    assert cond[0][0].shape == (1, 8, 4096)
    latent = samples["fast", 0]
    images = nodes.NODE_CLASS_MAPPINGS["AdaCacheDemoLatentPreview"].execute(samples={"samples": latent}, scale=4).args[0]
    assert images.shape == (9, 64, 64, 3)
    assert 0 <= images.min() and images.max() <= 1 and images.std() > 0.01
