"""Every supported DiT family, at a tiny size with ComfyUI's real classes, through the real KSampler."""

import pytest
import torch

import families as F
import helpers as h


@pytest.fixture(scope="module", params=sorted(F.FAMILIES), ids=str)
def family(request, runtime):
    fam = F.FAMILIES[request.param]
    model = F.build(fam)
    pos, neg = F.conditioning(fam, 1), F.conditioning(fam, 2)
    baseline = h.ksample(model, pos, neg, torch.zeros(fam.latent), steps=10)
    return request.param, fam, model, pos, neg, baseline


def test_nothing_reused_is_bitwise_equal(runtime, family):
    name, fam, model, pos, neg, baseline = family
    patched = h.adacache(runtime, model, end_percent=0.0)
    assert h.session_of(patched).arch.name == (fam.architecture or name)
    assert torch.equal(h.ksample(patched, pos, neg, torch.zeros(fam.latent), steps=10), baseline)


def _layer_runs(model, fam, run) -> int:
    """How many times the layers inside the first block ran during ``run()``.

    Counted inside the block, not on the block's own call: blocks hooked through their forward are
    still called on reused steps (the model's loop calls them); only their layers stay idle.
    """
    blocks = getattr(model.model.diffusion_model, fam.blocks)
    first_block = next(iter(blocks.values())) if isinstance(blocks, torch.nn.ModuleDict) else blocks[0]  # Cosmos 1: a dict
    runs = []
    handles = [m.register_forward_hook(lambda *a: runs.append(1)) for m in first_block.modules() if m is not first_block]
    try:
        run()
    finally:
        for handle in handles:
            handle.remove()
    return len(runs)


def test_forced_schedule_really_skips_the_blocks(runtime, family):
    name, fam, model, pos, neg, baseline = family
    patched = h.adacache(runtime, model, preset="custom", custom_codebook="10:3", probe_residual="attention")
    every_step = _layer_runs(model, fam, lambda: h.ksample(model, pos, neg, torch.zeros(fam.latent), steps=10))
    outs = []
    patched_runs = _layer_runs(model, fam, lambda: outs.append(h.ksample(patched, pos, neg, torch.zeros(fam.latent), steps=10)))
    trace = h.session_of(patched).last_run
    assert trace.computed_steps() == [0, 1, 4, 7, 8, 9]
    # the paper's probe where the table knows the attention gate; elsewhere the block's, and the run says so
    fallback_noted = any("probe_residual 'attention'" in note for note in trace.notes)
    if fam.after_attention:
        assert trace.probe_residual == "attention" and not fallback_noted
    else:
        assert trace.probe_residual == "block" and fallback_noted
    assert every_step > 0 and patched_runs * 10 == every_step * 6  # the layers ran on the 6 computed steps only
    out = outs[0]
    assert torch.isfinite(out).all() and not torch.equal(out, baseline)
    assert (out - baseline).abs().max() < baseline.abs().max()


@pytest.mark.parametrize("name", [n for n, f in F.FAMILIES.items() if f.after_attention])
def test_attention_probe_matches_a_hand_computation(runtime, name):
    """The gated self-attention residual the pack measures equals the one plain hooks see."""
    fam = F.FAMILIES[name]
    model = F.build(fam)
    patched = h.adacache(runtime, model, preset="custom", custom_codebook="10:3", probe_blocks="1", probe_residual="attention")
    block = getattr(model.model.diffusion_model, fam.blocks)[1]
    with h.ProbeResidualRecorder(block, getattr(block, fam.after_attention)) as recorder:
        h.ksample(patched, F.conditioning(fam, 1), F.conditioning(fam, 2), torch.zeros(fam.latent), steps=10)
    decisions = h.session_of(patched).last_run.decisions
    assert [d.step for d in decisions] == [0, 1, 4, 7, 8, 9]
    r0, r1, r4 = recorder.residuals[:3]
    assert decisions[1].change == pytest.approx(((r1 - r0).abs().sum() / r0.abs().sum()).item(), rel=1e-4)
    assert decisions[2].change == pytest.approx(((r4 - r1).abs().sum() / r1.abs().sum()).item(), rel=1e-4)


def test_moreg_sees_the_right_frame_grid(runtime, family):
    name, fam, model, pos, neg, _ = family
    moreg = h.moreg()
    patched = h.adacache(runtime, model, moreg=moreg, preset="custom", custom_codebook="10:3")
    h.ksample(patched, pos, neg, torch.zeros(fam.latent), steps=10)
    trace = h.session_of(patched).last_run
    if len(fam.latent) == 5:
        assert trace.token_grid[0] == fam.latent[2] // fam.frames_per_token
        assert all(d.motion is not None for d in trace.decisions)
    else:  # images: no frames, no motion score, schedule as without MoReg
        assert trace.token_grid is None and all(d.motion is None for d in trace.decisions)
        assert trace.computed_steps() == [0, 1, 4, 7, 8, 9]


def test_additions_between_blocks_turn_reuse_off_for_that_run(runtime):
    """A model patch that adds between Qwen-Image's blocks (as DiffSynth controlnets do) would be
    counted twice on top of a cached residual: such runs compute every step, and say so."""
    fam = F.FAMILIES["Qwen-Image"]
    model = F.build(fam)
    pos, neg = F.conditioning(fam, 1), F.conditioning(fam, 2)
    hint = torch.randn(1, 16, 64, generator=torch.Generator().manual_seed(0)) * 0.1

    def add_hint(args):  # adds to the image stream after every block, outside the block hook
        return {"img": args["img"] + hint.to(args["img"]), "txt": args["txt"]}

    hinted = model.clone()
    hinted.set_model_patch(add_hint, "double_block")
    baseline = h.ksample(hinted, pos, neg, torch.zeros(fam.latent), steps=10)
    patched = h.adacache(runtime, hinted, preset="custom", custom_codebook="10:3")
    out = h.ksample(patched, pos, neg, torch.zeros(fam.latent), steps=10)
    trace = h.session_of(patched).last_run
    assert trace.computed_steps() == list(range(10))
    assert any("every step of this run was computed" in n for n in trace.notes)
    assert torch.equal(out, baseline)


def test_forward_hooks_last_one_sampling_call_and_chain_what_was_there(runtime):
    """Models hooked through their blocks' forward (here Lumina 2): the override exists only while
    the patched model samples, calls through a forward override that another pack installed
    earlier, puts it back afterwards, and leaves no trace when sampling fails part way."""
    fam = F.FAMILIES["Lumina 2 / Z-Image"]
    model = F.build(fam)
    pos, neg = F.conditioning(fam, 1), F.conditioning(fam, 2)
    baseline = h.ksample(model, pos, neg, torch.zeros(fam.latent), steps=10)
    layers = model.model.diffusion_model.layers
    patched = h.adacache(runtime, model, preset="custom", custom_codebook="10:3")

    calls = []
    original = layers[0].forward

    def other_packs_override(*args, **kwargs):
        calls.append(1)
        if fail_at is not None and len(calls) == fail_at:
            raise RuntimeError("interrupted")
        return original(*args, **kwargs)

    layers[0].forward = other_packs_override
    fail_at = None
    out = h.ksample(patched, pos, neg, torch.zeros(fam.latent), steps=10)
    assert h.session_of(patched).last_run.computed_steps() == [0, 1, 4, 7, 8, 9]
    assert len(calls) == 6  # called through on computed steps only
    assert layers[0].__dict__["forward"] is other_packs_override
    assert all("forward" not in layer.__dict__ for layer in layers[1:])

    calls.clear()
    fail_at = 3
    with pytest.raises(RuntimeError, match="interrupted"):
        h.ksample(patched, pos, neg, torch.zeros(fam.latent), steps=10)
    assert layers[0].__dict__["forward"] is other_packs_override
    assert all("forward" not in layer.__dict__ for layer in layers[1:])

    del layers[0].forward
    assert torch.equal(h.ksample(model, pos, neg, torch.zeros(fam.latent), steps=10), baseline)
    assert not torch.equal(out, baseline)


@pytest.mark.parametrize("reuse", ["hold", "forecast"])
def test_reuse_where_nothing_changed_reproduces_the_computed_output(runtime, family, reuse):
    """On the same latent at sigmas a hair apart, a reused step (first block's input plus the cached
    residual, held or forecast) must give what computing it gives: catches a residual put back in the
    wrong layout or place, additions between blocks (position embeddings) counted twice, or a forecast
    that runs away."""
    name, fam, model, pos, neg, _ = family
    sigmas = h.sigmas_a_hair_apart(model, steps=7)
    computed = h.stay_put_outputs(model, pos, neg, torch.zeros(fam.latent), sigmas)
    patched = h.adacache(runtime, model, preset="custom", custom_codebook="10:3", reuse=reuse)
    outputs = h.stay_put_outputs(patched, pos, neg, torch.zeros(fam.latent), sigmas)
    assert h.session_of(patched).last_run.computed_steps() == [0, 1, 4, 5, 6]
    h.assert_reuse_reproduces(outputs, computed, reused=(2, 3))
