"""Every supported DiT family, at a tiny size with ComfyUI's real classes, through the real KSampler."""

import inspect

import pytest
import torch

import families as F
import helpers as h


@pytest.fixture(scope="module", params=sorted(F.FAMILIES), ids=str)
def family(request, runtime):
    fam = F.FAMILIES[request.param]
    F.require(fam)
    model = F.build(fam)
    pos, neg = F.conditioning(fam, 1), F.conditioning(fam, 2)
    baseline = h.ksample(model, pos, neg, torch.zeros(fam.latent), steps=10)
    return request.param, fam, model, pos, neg, baseline


@pytest.mark.parametrize("settings", ["outside the window", "every step by the codebook, forecast",
                                      "every step by the codebook, forecast, MoReg"])
def test_nothing_reused_is_bitwise_equal(runtime, family, settings):
    """Where every step is computed, the output is the unpatched one bit for bit: also while the forecast
    forms its slopes and MoReg measures motion at every step (neither may touch the stream)."""
    name, fam, model, pos, neg, baseline = family
    patched = h.adacache(runtime, model, **{
        "outside the window": dict(end_percent=0.0),
        "every step by the codebook, forecast": dict(preset="custom", custom_codebook="1.0:1", reuse="forecast"),
        "every step by the codebook, forecast, MoReg": dict(preset="custom", custom_codebook="1.0:1", reuse="forecast",
                                                            moreg=h.moreg(window_start=0.0, window_end=1.0)),
    }[settings])
    assert h.session_of(patched).arch.name == (fam.architecture or name)
    assert torch.equal(h.ksample(patched, pos, neg, torch.zeros(fam.latent), steps=10), baseline)
    trace = h.session_of(patched).last_run
    assert trace.computed_steps() == list(range(10))
    if "MoReg" in settings and len(fam.latent) == 5:
        assert all(d.motion is not None for d in trace.decisions)  # MoReg really measured


def test_the_knob_at_1_is_unpatched_and_at_2_computes_half_the_steps_close_to_all(runtime, family):
    name, fam, model, pos, neg, baseline = family
    at_1 = h.adacache(runtime, model, target_speedup=1.0, reuse="forecast")
    assert torch.equal(h.ksample(at_1, pos, neg, torch.zeros(fam.latent), steps=10), baseline)
    at_2 = h.adacache(runtime, model, target_speedup=2.0, reuse="forecast")
    out = h.ksample(at_2, pos, neg, torch.zeros(fam.latent), steps=10)
    assert len(h.session_of(at_2).last_run.computed_steps()) == 5 and not torch.equal(out, baseline)
    # Near the 10-step output: as near as sampling 5 steps alone, within 2x (random weights give the cache little to
    # reuse: most families land closer than the 5 steps, Mochi and SD3 a little farther); a broken reuse lands far off
    fewer_steps = h.ksample(model, pos, neg, torch.zeros(fam.latent), steps=5)
    assert h.relative_error(out, baseline) < 2 * h.relative_error(fewer_steps, baseline)


@pytest.mark.parametrize("name", sorted(F.REFUSED_FAMILIES))
def test_a_refused_family_is_returned_unpatched_with_its_reason(runtime, name, caplog):
    import logging

    fam = F.REFUSED_FAMILIES[name]
    F.require(fam)
    model = F.build(fam)
    with caplog.at_level(logging.WARNING, logger="adacache"):
        assert h.adacache(runtime, model) is model
    reasons = [r.getMessage() for r in caplog.records if "returned unpatched" in r.getMessage()]
    assert len(reasons) == 1 and name in reasons[0]
    baseline = h.ksample(model, F.conditioning(fam, 1), F.conditioning(fam, 2), torch.zeros(fam.latent), steps=3)
    assert torch.isfinite(baseline).all()  # the model still samples as it was


def test_ltx2_caches_the_audio_with_the_video(runtime):
    """LTX-2 with a video and an audio latent, as its workflows sample it (a nested latent the sampler packs): at
    knob 1 the unpatched output bit for bit; at 2 the blocks run on half the steps for both parts, each part lands
    nearer the full run than five steps alone, and MoReg's frame grid comes from the video part."""
    import comfy.nested_tensor

    fam = F.FAMILIES["LTX-2"]
    F.require(fam)
    model = F.build(fam)
    pos, neg = F.conditioning(fam, 1), F.conditioning(fam, 2)

    def sample(m, steps=10):
        latent = comfy.nested_tensor.NestedTensor((torch.zeros(fam.latent), torch.zeros(1, 8, 6, 16)))  # audio: 6 frames
        return h.ksample(m, pos, neg, latent, steps=steps).unbind()

    video, audio = sample(model)
    assert audio.shape == (1, 8, 6, 16) and audio.abs().sum() > 0
    at_1 = h.adacache(runtime, model, target_speedup=1.0, reuse="forecast")
    assert all(torch.equal(a, b) for a, b in zip(sample(at_1), (video, audio)))
    at_2 = h.adacache(runtime, model, target_speedup=2.0, reuse="forecast",
                      moreg=h.moreg(window_start=0.0, window_end=1.0))
    runs = _layer_runs(model, fam, lambda: sample(at_2))
    assert runs * 2 == _layer_runs(model, fam, lambda: sample(model))
    trace = h.session_of(at_2).last_run
    assert len(trace.computed_steps()) == 5 and trace.token_grid == [2, 4, 4]
    cached, fewer = sample(at_2), sample(model, steps=5)
    for part, full in enumerate((video, audio)):
        assert h.relative_error(cached[part], full) < h.relative_error(fewer[part], full), part
    # the viewer finds the run that made nested samples: their fingerprint joins the parts'
    fingerprint = runtime.pack.adacache_core.trace.latent_fingerprint
    nested = comfy.nested_tensor.NestedTensor(cached)
    assert h.session_of(at_2).last_run.output_latent == fingerprint(nested) == "+".join(map(fingerprint, cached))


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
    # the cache earns its place: closer to the 10-step output than sampling the 6 computed steps alone
    # (measured: 2.2x closer for Hunyuan-DiT, 3x to 1000x for the others)
    fewer_steps = h.ksample(model, pos, neg, torch.zeros(fam.latent), steps=6)
    assert h.relative_error(out, baseline) < h.relative_error(fewer_steps, baseline)


@pytest.mark.parametrize("name", [n for n, f in F.FAMILIES.items() if f.after_attention])
def test_attention_probe_matches_a_hand_computation(runtime, name):
    """The gated self-attention residual the pack measures equals the one plain hooks see."""
    fam = F.FAMILIES[name]
    F.require(fam)
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


def test_image_range_of_each_stream_layout_by_hand():
    """Where the image tokens sit in a block list's stream of 30 tokens holding 16 image tokens."""
    from adacache_core.architectures import ARCHITECTURES

    rows = {a.name: a for a in ARCHITECTURES}
    img_first, txt_first, single = rows["HunyuanVideo"], rows["Flux 1 / Flux 2"], rows["Wan 2.1 / 2.2"]
    assert (img_first.merged_stream, txt_first.merged_stream, single.merged_stream) == ("img_first", "txt_first", None)
    for row in (img_first, txt_first, single):
        assert row.image_range(0, 16, 16, {}) == (0, 16)  # the first list's stream is the image alone
    assert img_first.image_range(1, 30, 16, {}) == (0, 16)  # [image, text]
    assert txt_first.image_range(1, 30, 16, {}) == (14, 30)  # [text, image]
    for row in (img_first, txt_first):  # newer ComfyUI says where the image starts: that wins over the row
        assert row.image_range(1, 30, 16, {"img_slice": [7, 23]}) == (7, 23)
    assert img_first.image_range(1, 10, 16, {}) == (0, 10)  # a shard shorter than the image: cut at its end


# Merged-stream families: (single-stream block list, probe block number = its first block, how the
# stream is put together in ComfyUI's forward, image tokens of the family's latent)
# The order as ComfyUI 0.3.75 concatenates; newer ComfyUI concatenates HunyuanVideo's (txt, img) and says where the
# image starts in transformer_options["img_slice"] (merged_layout)
MERGED = {
    "HunyuanVideo": ("single_blocks", 2, "img_first", 3 * 4 * 4),  # torch.cat((img, txt)); 3x8x8 latent, 1x2x2 patches
    "Flux": ("single_blocks", 2, "txt_first", 4 * 4),  # torch.cat((txt, img)); 8x8 latent, 2x2 patches
    "AuraFlow": ("single_layers", 2, "txt_first", 4 * 4),  # torch.cat([registers + text, x])
}


@pytest.mark.parametrize("name", MERGED)
def test_probe_in_a_merged_stream_measures_the_image_tokens_by_hand(runtime, name, monkeypatch):
    """A probe in the text+image stream measures exactly the image tokens of the block's residual, sliced
    by hand from what plain hooks see; its recorded change is theirs. (A spy on the pack's change_terms,
    calling through, shows which tokens it was given: relative changes of text and image tokens of a
    random model are too alike to tell the slices apart by the ratio alone.)"""
    attribute, probe, layout, image = MERGED[name]
    fam = F.FAMILIES[name]
    model = F.build(fam)
    if "img_slice" in inspect.getsource(type(model.model.diffusion_model)):  # newer ComfyUI: text first, image sliced
        layout = "txt_first"
    measures = runtime.pack.adacache_core.measures
    measured = []
    real_change_terms = measures.change_terms
    monkeypatch.setattr(measures, "change_terms", lambda now, prev: measured.append((now, prev)) or real_change_terms(now, prev))
    patched = h.adacache(runtime, model, preset="custom", custom_codebook="10:3", probe_blocks=str(probe))
    block = getattr(model.model.diffusion_model, attribute)[0]
    g = torch.Generator().manual_seed(3)
    # 40 text tokens, more than the image's: a slice from the wrong end holds mostly text
    pos, neg = ([[torch.randn(1, 40, fam.context[1], generator=g), c[0][1]]] for c in (F.conditioning(fam, 1), F.conditioning(fam, 2)))
    with h.ProbeResidualRecorder(block) as recorder:
        h.ksample(patched, pos, neg, torch.zeros(fam.latent), steps=10)
    decisions = h.session_of(patched).last_run.decisions
    assert [d.step for d in decisions] == [0, 1, 4, 7, 8, 9] and len(recorder.residuals) == 6
    r0, r1, r4 = recorder.residuals[:3]
    assert r0.shape[1] >= image + 40  # the text tokens are merged in

    image_part = (lambda r: r[:, :image]) if layout == "img_first" else (lambda r: r[:, -image:])
    other_end = (lambda r: r[:, -image:]) if layout == "img_first" else (lambda r: r[:, :image])
    assert not torch.allclose(image_part(r1), other_end(r1))
    (now, prev), (now4, prev4) = measured[:2]  # steps 1 and 4 against the step before (0 and 1)
    for got, want in ((now, r1), (prev, r0), (now4, r4), (prev4, r1)):
        torch.testing.assert_close(got, image_part(want), rtol=0, atol=1e-6)

    def change(now, prev):
        return ((image_part(now) - image_part(prev)).abs().sum() / image_part(prev).abs().sum()).item()

    assert decisions[1].change == pytest.approx(change(r1, r0), rel=1e-4)
    assert decisions[2].distance == pytest.approx(change(r4, r1) / 3, rel=1e-4)


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
    assert trace.forced_by_reason()[runtime.pack.adacache_core.session.CONTROLS] == [2, 3, 5, 6]  # the schedule's gaps
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
    wrong layout or place, or additions between blocks (position embeddings) counted twice. The
    forecast's extrapolation is checked by hand in test_patch_model.py (here the residual barely moves)."""
    name, fam, model, pos, neg, _ = family
    sigmas = h.sigmas_a_hair_apart(model, steps=7)
    computed = h.stay_put_outputs(model, pos, neg, torch.zeros(fam.latent), sigmas)
    patched = h.adacache(runtime, model, preset="custom", custom_codebook="10:3", reuse=reuse)
    outputs = h.stay_put_outputs(patched, pos, neg, torch.zeros(fam.latent), sigmas)
    assert h.session_of(patched).last_run.computed_steps() == [0, 1, 4, 5, 6]
    h.assert_reuse_reproduces(outputs, computed, reused=(2, 3))
