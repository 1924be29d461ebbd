"""Wan variants beyond T2V/I2V: VACE hints and Animate faces (side blocks added between the main
blocks), HuMo audio (inside the blocks) and Fun camera (added before them).

On computed steps the side blocks run and what they add is part of the cached span residual; on
reused steps they are silenced through their forward, so their compute is saved too.
"""
import logging
from contextlib import contextmanager

import pytest
import torch

import helpers as h

LATENT = (1, 16, 3, 8, 8)


@pytest.fixture(scope="module")
def conds():
    return h.conditioning(seed=1), h.conditioning(seed=2)


@contextmanager
def count_runs(module, runs: list):
    """Counts the real executions of ``module``'s forward (its own hooks fire only when it runs)."""
    handle = module.register_forward_hook(lambda *a: runs.append(1))
    try:
        yield runs
    finally:
        handle.remove()


def _vace(runtime, vace_layers: int):
    model = h.load_model_patcher(h.random_wan_state_dict(seed=7, model_class="VaceWanModel", model_type="vace",
                                                         vace_layers=vace_layers, vace_in_dim=96))
    assert type(model.model.diffusion_model).__name__ == "VaceWanModel"
    return model


def test_vace_hints_are_cached_with_the_span_and_their_blocks_skipped(runtime, conds):
    vace = _vace(runtime, vace_layers=2)
    base = h.ksample(vace, *conds, torch.zeros(LATENT), steps=10)
    assert torch.equal(h.ksample(h.adacache(runtime, vace, end_percent=0.0), *conds, torch.zeros(LATENT), steps=10), base)
    patched = h.adacache(runtime, vace, preset="custom", custom_codebook="10:3")
    with count_runs(vace.model.diffusion_model.vace_blocks[0].after_proj, []) as hint_runs:
        out = h.ksample(patched, *conds, torch.zeros(LATENT), steps=10)
    assert h.session_of(patched).last_run.computed_steps() == [0, 1, 4, 7, 8, 9]
    assert len(hint_runs) == 6  # the hint block ran on computed steps only
    assert all("forward" not in b.__dict__ for b in vace.model.diffusion_model.vace_blocks)
    assert torch.isfinite(out).all() and not torch.equal(out, base)
    # closer to the 10-step output than sampling the 6 computed steps alone
    assert h.relative_error(out, base) < h.relative_error(h.ksample(vace, *conds, torch.zeros(LATENT), steps=6), base)

    # hints are not counted twice on reused steps: where nothing changes, reuse reproduces computing
    sigmas = h.sigmas_a_hair_apart(vace, steps=7)
    computed = h.stay_put_outputs(vace, *conds, torch.zeros(LATENT), sigmas)
    h.assert_reuse_reproduces(h.stay_put_outputs(patched, *conds, torch.zeros(LATENT), sigmas), computed, reused=(2, 3))


def test_vace_with_a_hint_after_the_last_block_is_refused(runtime, caplog):
    vace = _vace(runtime, vace_layers=4)  # one hint block per main block: the last hint lands after the span
    with caplog.at_level(logging.WARNING, logger="adacache"):
        assert h.adacache(runtime, vace) is vace
    assert any("after the last block of a block list" in r.getMessage() for r in caplog.records)


# Wan Animate: the face motion encoder is fixed-size (512x512 face crops, ~1.8 s a frame on two CPU
# cores), so these runs use one face frame, CFG 1 (one branch) and 6 steps.
ANIMATE_STEPS = 6


@pytest.fixture(scope="module")
def animate(runtime):
    model = h.load_model_patcher(h.random_wan_state_dict(seed=7, model_class="AnimateWanModel", model_type="animate",
                                                         num_layers=10))
    assert type(model.model.diffusion_model).__name__ == "AnimateWanModel"
    g = torch.Generator().manual_seed(3)
    face = torch.rand(1, 3, 1, 512, 512, generator=g) * 2 - 1  # as WanAnimateToVideo passes face_video
    pose = torch.randn(1, 16, 2, 8, 8, generator=g)  # pose latents, added to frames 1.. before the blocks
    extra = {"face_video_pixels": face, "pose_video_latent": pose}
    positive, negative = ([[c[0][0], dict(extra)]] for c in (h.conditioning(seed=1), h.conditioning(seed=2)))
    return model, positive, negative


def _sample(model, positive, negative):
    return h.ksample(model, positive, negative, torch.zeros(LATENT), steps=ANIMATE_STEPS, cfg=1.0)


def test_animate_face_blocks_are_cached_with_the_span_and_skipped(runtime, animate):
    """Animate adds a face block's output to x after blocks 0 and 5 (of 10): bitwise equal when
    nothing is reused; on reused steps neither the main blocks nor the face blocks run."""
    model, positive, negative = animate
    diffusion_model = model.model.diffusion_model
    face_layer = diffusion_model.face_adapter.fuser_blocks[1].linear2
    with count_runs(face_layer, []) as every_step:
        base = _sample(model, positive, negative)
    assert len(every_step) == ANIMATE_STEPS  # the face path really runs
    assert torch.equal(_sample(h.adacache(runtime, model, end_percent=0.0), positive, negative), base)

    patched = h.adacache(runtime, model, preset="custom", custom_codebook="10:3")
    session = h.session_of(patched)
    assert session.arch.name == "Wan Animate"
    assert session.arch.side_blocks[0].after_blocks(diffusion_model) == {0, 5}
    with count_runs(face_layer, []) as face_runs, count_runs(diffusion_model.blocks[3].ffn, []) as block_runs:
        out = _sample(patched, positive, negative)
    trace = session.last_run
    assert trace.computed_steps() == [0, 1, 4, 5]
    assert len(face_runs) == 4 and len(block_runs) == 4  # ran on the computed steps only
    assert trace.token_grid == [3, 4, 4]  # the latent's frames (reference frame first), 2x2 patches
    assert all("forward" not in b.__dict__ for b in diffusion_model.face_adapter.fuser_blocks)
    assert torch.isfinite(out).all() and not torch.equal(out, base)
    # closer to the 6-step output than sampling the 4 computed steps alone
    fewer_steps = h.ksample(model, positive, negative, torch.zeros(LATENT), steps=4, cfg=1.0)
    assert h.relative_error(out, base) < h.relative_error(fewer_steps, base)


def test_animate_moreg_scores_motion_on_its_frames(runtime, animate):
    model, positive, negative = animate
    moreg = h.moreg(window_start=0.0, window_end=1.0)
    patched = h.adacache(runtime, model, moreg=moreg)
    _sample(patched, positive, negative)
    trace = h.session_of(patched).last_run
    assert trace.token_grid == [3, 4, 4]
    assert all(d.motion is not None for d in trace.decisions)
    assert not any("MoReg off" in n for n in trace.notes)


# Wan variants whose extra inputs act before or inside the blocks: plain rows of the Wan table.
# (model class, model settings, extra conditioning: name -> shape, as their ComfyUI nodes build it)
WAN_WITH_EXTRA_INPUTS = {
    # HuMo's blocks take the audio (whisper features per latent frame) themselves.
    "HuMo": ("HumoWanModel", dict(model_type="humo"), {"audio_embed": (1, LATENT[2], 8, 5, 1280)}),
    # Wan 2.2 Fun camera adds its camera embedding (Plücker rays per pixel) to x before the blocks.
    "Fun camera": ("CameraWanModel", dict(model_type="camera_2.2", in_dim=36),
                   {"camera_conditions": (1, 24, LATENT[2], 64, 64)}),
}


def _wan_with_extra_inputs(name: str):
    model_class, settings, extra = WAN_WITH_EXTRA_INPUTS[name]
    model = h.load_model_patcher(h.random_wan_state_dict(seed=5, model_class=model_class, **settings))
    assert type(model.model.diffusion_model).__name__ == model_class
    g = torch.Generator().manual_seed(4)
    inputs = {key: torch.randn(shape, generator=g) for key, shape in extra.items()}
    positive = [[h.conditioning(seed=1)[0][0], inputs]]
    negative = [[h.conditioning(seed=2)[0][0], {key: value * 0 for key, value in inputs.items()}]]
    return model, positive, negative


@pytest.mark.parametrize("name", sorted(WAN_WITH_EXTRA_INPUTS))
def test_wan_variants_with_extra_inputs_are_cached_like_wan(runtime, name):
    """Bitwise equal when nothing is reused, the blocks run on computed steps only, and reuse
    reproduces computing where nothing changed, with the variant's extra input in play."""
    model, positive, negative = _wan_with_extra_inputs(name)
    base = h.ksample(model, positive, negative, torch.zeros(LATENT), steps=10)
    plain = [[c[0][0], {}] for c in (positive, negative)]
    assert not torch.equal(h.ksample(model, [plain[0]], [plain[1]], torch.zeros(LATENT), steps=10), base)  # the input counts
    assert torch.equal(h.ksample(h.adacache(runtime, model, end_percent=0.0), positive, negative, torch.zeros(LATENT), steps=10), base)

    patched = h.adacache(runtime, model, preset="custom", custom_codebook="10:3")
    with count_runs(model.model.diffusion_model.blocks[2].ffn, []) as block_runs:
        out = h.ksample(patched, positive, negative, torch.zeros(LATENT), steps=10)
    trace = h.session_of(patched).last_run
    assert trace.architecture == "Wan 2.1 / 2.2" and trace.computed_steps() == [0, 1, 4, 7, 8, 9]
    assert len(block_runs) == 6 and trace.token_grid == [3, 4, 4]
    assert torch.isfinite(out).all() and not torch.equal(out, base)

    sigmas = h.sigmas_a_hair_apart(model, steps=7)
    computed = h.stay_put_outputs(model, positive, negative, torch.zeros(LATENT), sigmas)
    h.assert_reuse_reproduces(h.stay_put_outputs(patched, positive, negative, torch.zeros(LATENT), sigmas), computed, reused=(2, 3))


def test_humo_with_a_reference_image_turns_moreg_off_with_a_note(runtime):
    """HuMo appends the reference image's tokens after the video's: they do not form the video grid."""
    model, positive, negative = _wan_with_extra_inputs("HuMo")
    reference = torch.randn(1, 16, 1, 8, 8, generator=torch.Generator().manual_seed(6))
    positive, negative = ([[c[0][0], c[0][1] | {"reference_latents": [reference]}]] for c in (positive, negative))
    moreg = h.moreg(window_start=0.0, window_end=1.0)
    patched = h.adacache(runtime, model, moreg=moreg)
    out = h.ksample(patched, positive, negative, torch.zeros(LATENT), steps=10)
    trace = h.session_of(patched).last_run
    assert torch.isfinite(out).all()
    assert any(n.startswith("MoReg off: 64 tokens do not form the 3x4x4 video grid") for n in trace.notes)
