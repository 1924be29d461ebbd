"""AdaCache Patch Model on ComfyUI's real Wan model classes (tiny, random weights), real samplers."""
import logging
import math

import pytest
import torch

import helpers as h

LATENT = (1, 16, 3, 8, 8)
NOTHING_REUSED = [dict(end_percent=0.0), dict(start_percent=0.5, end_percent=0.5),
                  dict(preset="custom", custom_codebook="1.0:1"), dict(preset="custom", custom_codebook="1.0:1", reuse="forecast"),
                  dict(preset="custom", custom_codebook="1.0:1", reuse="forecast", moreg="on at every step")]


@pytest.fixture(scope="module")
def wan(runtime):
    return h.load_model_patcher(h.random_wan_state_dict(seed=0))


@pytest.fixture(scope="module")
def conds():
    return h.conditioning(seed=1), h.conditioning(seed=2)


@pytest.fixture(scope="module")
def baseline(wan, conds):
    return h.ksample(wan, *conds, torch.zeros(LATENT), steps=10)


@pytest.mark.parametrize("settings", NOTHING_REUSED)
def test_nothing_reused_is_bitwise_equal_to_unpatched(runtime, wan, conds, baseline, settings):
    if "moreg" in settings:
        settings = settings | {"moreg": h.moreg(window_start=0.0, window_end=1.0)}
    patched = h.adacache(runtime, wan, **settings)
    out = h.ksample(patched, *conds, torch.zeros(LATENT), steps=10)
    assert torch.equal(out, baseline)
    trace = h.session_of(patched).last_run
    assert trace.computed_steps() == list(range(10))
    if "moreg" in settings:
        assert all(d.motion is not None for d in trace.decisions) and any(d.moreg_active for d in trace.decisions)


def test_taking_adacache_off_gives_the_unpatched_model_back_and_repatching_does_not_stack(runtime, wan, conds, baseline):
    """comfy_bridge.without_adacache, as the Raylight node uses it to re-patch a worker's model."""
    bridge = runtime.pack.adacache_core.comfy_bridge
    patched = h.adacache(runtime, wan, preset="custom", custom_codebook="10:3")
    reused = h.ksample(patched, *conds, torch.zeros(LATENT), steps=10)
    plain = bridge.without_adacache(patched)
    assert bridge.session_of(plain) is None and bridge.session_of(patched) is not None  # the patched one is untouched
    assert torch.equal(h.ksample(plain, *conds, torch.zeros(LATENT), steps=10), baseline)
    again = h.adacache(runtime, bridge.without_adacache(h.adacache(runtime, wan, preset="paper: slowest (slow, 30 steps)")),
                       preset="custom", custom_codebook="10:3")
    hook = again.model_options["transformer_options"]["patches_replace"]["dit"][("double_block", 0)]
    assert hook.previous is None  # one AdaCache hook, not two chained
    assert torch.equal(h.ksample(again, *conds, torch.zeros(LATENT), steps=10), reused)
    assert bridge.without_adacache(wan) is wan


def test_forced_codebook_gives_the_expected_pattern_and_skips_the_blocks(runtime, wan, conds, baseline):
    patched = h.adacache(runtime, wan, preset="custom", custom_codebook="10:3")
    with h.BlockCounter(wan) as counter:
        out = h.ksample(patched, *conds, torch.zeros(LATENT), steps=10)
    run = h.session_of(patched).last_run
    assert run.computed_steps() == [0, 1, 4, 7, 8, 9]
    assert counter.count == 6 * len(counter.blocks)  # cond+uncond batched: one call per step
    assert [c.computed for c in run.calls] == [s in (0, 1, 4, 7, 8, 9) for s in range(10)]
    assert not torch.equal(out, baseline)
    assert torch.isfinite(out).all()
    # closer to the 10-step output than sampling the 6 computed steps alone (measured: about 5x closer)
    assert h.relative_error(out, baseline) < h.relative_error(h.ksample(wan, *conds, torch.zeros(LATENT), steps=6), baseline)


def ti2v_5b_with_an_image_mask():
    """A tiny Wan 2.2 TI2V 5B and a latent whose first frame is kept: timesteps per frame, so the
    blocks get one modulation per frame (4-dim timestep embeddings)."""
    model = h.load_model_patcher(h.random_wan_state_dict(seed=6, in_dim=48, out_dim=48))
    mask = torch.ones(1, 1, 3, 8, 8)
    mask[:, :, 0] = 0.0
    return model, {"samples": torch.zeros(1, 48, 3, 8, 8), "noise_mask": mask}


@pytest.mark.parametrize("model_kind, probe_residual", [("t2v", "block"), ("t2v", "attention"), ("ti2v_5b", "attention")])
def test_recorded_distance_matches_a_hand_computation(runtime, wan, conds, model_kind, probe_residual):
    import nodes

    model, latent = (wan, {"samples": torch.zeros(LATENT)}) if model_kind == "t2v" else ti2v_5b_with_an_image_mask()
    patched = h.adacache(runtime, model, preset="custom", custom_codebook="10:3", probe_blocks="2", probe_residual=probe_residual)
    block = model.model.diffusion_model.blocks[2]
    with h.ProbeResidualRecorder(block, block.norm3 if probe_residual == "attention" else None) as recorder:
        nodes.KSampler().sample(patched, 0, 10, 5.0, "euler", "simple", *conds, latent, denoise=1.0)
    trace = h.session_of(patched).last_run
    assert trace.probe_residual == probe_residual
    decisions = trace.decisions
    assert [d.step for d in decisions] == [0, 1, 4, 7, 8, 9]
    r0, r1, r4 = recorder.residuals[:3]
    expected = ((r1 - r0).abs().sum() / r0.abs().sum()).item()
    assert decisions[1].change == pytest.approx(expected, rel=1e-4)
    expected4 = ((r4 - r1).abs().sum() / r1.abs().sum()).item()
    assert decisions[2].gap == 3
    assert decisions[2].distance == pytest.approx(expected4 / 3, rel=1e-4)


def test_no_state_leaks_between_runs_models_and_the_unpatched_model(runtime, wan, conds, baseline):
    a = h.adacache(runtime, wan, preset="custom", custom_codebook="10:3")
    b = h.adacache(runtime, wan, preset="custom", custom_codebook="10:2")
    first = h.ksample(a, *conds, torch.zeros(LATENT), steps=10)
    trace_a = h.session_of(a).last_run
    out_b = h.ksample(b, *conds, torch.zeros(LATENT), steps=10)
    again = h.ksample(a, *conds, torch.zeros(LATENT), steps=10)
    assert torch.equal(first, again)
    assert h.session_of(a).last_run.computed_steps() == trace_a.computed_steps()
    assert h.session_of(a) is not h.session_of(b)
    assert h.session_of(b).last_run.computed_steps() == [0, 1, 3, 5, 7, 8, 9]
    assert not torch.equal(out_b, first)
    assert torch.equal(h.ksample(wan, *conds, torch.zeros(LATENT), steps=10), baseline)
    assert h.session_of(wan) is None and "dit" not in wan.model_options["transformer_options"].get("patches_replace", {})


def test_batched_and_separate_cond_uncond_take_the_same_decisions(runtime, wan, conds, monkeypatch):
    # the random model's block residual (the default probe) changes by 0.02-0.07 per step: 0.035 splits
    # its decisions into reuse lengths 1 and 3 (0.0322 and 0.0395 nearest to it)
    patched = h.adacache(runtime, wan, preset="custom", custom_codebook="0.035:3, 10.0:1")
    batched = h.ksample(patched, *conds, torch.zeros(LATENT), steps=12)
    run_batched = h.session_of(patched).last_run
    # ComfyUI runs cond and uncond separately when free memory is short: report none free.
    import comfy.model_management

    real = comfy.model_management.get_free_memory
    monkeypatch.setattr(comfy.model_management, "get_free_memory",
                        lambda dev=None, torch_free_too=False: real(dev, True) if torch_free_too else 0)
    separate = h.ksample(patched, *conds, torch.zeros(LATENT), steps=12)
    run_separate = h.session_of(patched).last_run
    assert {tuple(c.branches) for c in run_batched.calls} == {("uncond", "cond")}
    assert {tuple(c.branches) for c in run_separate.calls} == {("cond",), ("uncond",)}
    assert run_separate.computed_steps("cond") == run_separate.computed_steps("uncond") == run_batched.computed_steps()
    assert len(run_batched.computed_steps()) < 12
    assert {d.reuse_length for d in run_batched.decisions if d.distance is not None and d.step < 10} == {1, 3}
    assert [(d.step, d.next_step) for d in run_batched.decisions] == [(d.step, d.next_step) for d in run_separate.decisions]
    for d1, d2 in zip(run_batched.decisions[1:], run_separate.decisions[1:]):
        assert d1.distance == pytest.approx(d2.distance, rel=1e-4)
    torch.testing.assert_close(separate, batched, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("steps", [1, 2, 200])
def test_any_step_count_runs(runtime, wan, conds, steps):
    patched = h.adacache(runtime, wan)
    out = h.ksample(patched, *conds, torch.zeros(1, 16, 1, 4, 4), steps=steps)
    run = h.session_of(patched).last_run
    assert torch.isfinite(out).all() and run.steps == steps and run.finished
    assert len(run.visited_steps()) == steps
    if steps < 4:
        assert run.computed_steps() == list(range(steps)) and run.notes
    else:
        assert len(run.computed_steps()) < steps / 3  # the fast preset rescaled to 200 steps reuses a lot


@pytest.mark.parametrize("cfg, reuse", [(1.0, "hold"), (5.0, "forecast")])
def test_a_batch_of_two_gives_each_video_as_sampled_alone(runtime, wan, cfg, reuse):
    """Two videos in one batch (different noise) come out as each comes out sampled alone from the same
    noise: no video's cached residual reaches the other. A forced codebook, so that the batch and each
    video alone keep the same steps (a batch decides on the whole batch, as the paper's code does)."""
    patched = h.adacache(runtime, wan, preset="custom", custom_codebook="10:3", reuse=reuse)
    noise = torch.randn(2, *LATENT[1:], generator=torch.Generator().manual_seed(5))
    batch, alone = h.sample_one_by_one(patched, h.conditioning(seed=3), h.conditioning(seed=4), noise, steps=10, cfg=cfg)
    runs = list(h.session_of(patched).runs)[-3:]  # the batch's run, then each video's
    assert {tuple(c.branches) for c in runs[0].calls} == ({("cond",)} if cfg == 1.0 else {("uncond", "cond")})
    assert [r.computed_steps() for r in runs] == [[0, 1, 4, 7, 8, 9]] * 3
    assert batch.shape[0] == 2 and not torch.allclose(alone[0], alone[1], atol=1e-2)  # two different videos
    torch.testing.assert_close(batch, torch.cat(alone), rtol=1e-4, atol=1e-4)


def test_two_expert_graph_with_ksampler_advanced(runtime, conds):
    import nodes

    high = h.adacache(runtime, h.load_model_patcher(h.random_wan_state_dict(seed=10)), preset="custom", custom_codebook="10:2")
    low = h.adacache(runtime, h.load_model_patcher(h.random_wan_state_dict(seed=11)), preset="custom", custom_codebook="10:3")
    sampler = nodes.KSamplerAdvanced()
    latent = {"samples": torch.zeros(LATENT)}
    mid = sampler.sample(high, "enable", 0, 12, 5.0, "euler", "simple", *conds, latent, 0, 6, "enable")[0]
    out = sampler.sample(low, "disable", 0, 12, 5.0, "euler", "simple", *conds, mid, 6, 12, "disable")[0]["samples"]
    run_high, run_low = h.session_of(high).last_run, h.session_of(low).last_run
    assert torch.isfinite(out).all()
    assert run_high.steps == 6 and run_low.steps == 6
    assert run_high.computed_steps() == [0, 1, 3, 4, 5]
    assert run_low.computed_steps() == [0, 1, 4, 5]
    assert run_high.sigmas[-1] == pytest.approx(run_low.sigmas[0])


def test_sampler_custom_advanced(runtime, wan, conds):
    import nodes

    patched = h.adacache(runtime, wan, preset="custom", custom_codebook="10:3")
    m = nodes.NODE_CLASS_MAPPINGS
    guider = m["CFGGuider"].execute(patched, *conds, 5.0).args[0]
    sampler = m["KSamplerSelect"].execute("euler").args[0]
    sigmas = m["BasicScheduler"].execute(patched, "simple", 10, 1.0).args[0]
    noise = m["RandomNoise"].execute(0).args[0]
    out = m["SamplerCustomAdvanced"].execute(noise, guider, sampler, sigmas, {"samples": torch.zeros(LATENT)}).args[0]
    assert torch.isfinite(out["samples"]).all()
    assert h.session_of(patched).last_run.computed_steps() == [0, 1, 4, 7, 8, 9]


@pytest.mark.parametrize("variant", ["i2v", "ti2v_5b"])
def test_wan_i2v_and_ti2v_5b(runtime, variant):
    if variant == "i2v":
        sd = h.random_wan_state_dict(seed=5, model_type="i2v", in_dim=36)
        channels, extra = 16, {"concat_latent_image": torch.randn(1, 16, 3, 8, 8)}
    else:
        sd = h.random_wan_state_dict(seed=6, in_dim=48, out_dim=48)
        channels, extra = 48, {}
    model = h.load_model_patcher(sd)
    pos = [[h.conditioning(seed=1)[0][0], extra]]
    neg = [[h.conditioning(seed=2)[0][0], extra]]
    latent = torch.zeros(1, channels, 3, 8, 8)
    base = h.ksample(model, pos, neg, latent, steps=8)
    assert torch.equal(h.ksample(h.adacache(runtime, model, end_percent=0.0), pos, neg, latent, steps=8), base)
    patched = h.adacache(runtime, model, preset="custom", custom_codebook="10:3")
    out = h.ksample(patched, pos, neg, latent, steps=8)
    assert torch.isfinite(out).all() and not torch.equal(out, base)
    assert h.session_of(patched).last_run.computed_steps() == [0, 1, 4, 6, 7]


@pytest.mark.parametrize("reuse", ["hold", "forecast"])
def test_offload_cache_gives_the_same_result(runtime, wan, conds, reuse):
    settings = dict(preset="custom", custom_codebook="10:3", reuse=reuse)
    on_device = h.ksample(h.adacache(runtime, wan, **settings), *conds, torch.zeros(LATENT), steps=10)
    offloaded = h.ksample(h.adacache(runtime, wan, offload_cache=True, **settings), *conds, torch.zeros(LATENT), steps=10)
    assert torch.equal(on_device, offloaded)


def test_cache_holds_one_hidden_state_per_branch_layout_and_probe_not_per_block(runtime, wan, conds):
    patched = h.adacache(runtime, wan, preset="custom", custom_codebook="10:3", probe_blocks="1")
    h.ksample(patched, *conds, torch.zeros(LATENT), steps=10)
    trace = h.session_of(patched).last_run
    tokens = math.prod(trace.token_grid)
    hidden_state = 2 * tokens * 128 * 4  # cond and uncond batched, dim 128, float32
    assert trace.cache_bytes == 2 * hidden_state  # the span's summed residual and the probe's, for 4 blocks
    assert trace.summary()["cache_mb"] == trace.cache_bytes / 2**20

    forecast = h.adacache(runtime, wan, preset="custom", custom_codebook="10:3", probe_blocks="1", reuse="forecast")
    h.ksample(forecast, *conds, torch.zeros(LATENT), steps=10)
    assert h.session_of(forecast).last_run.cache_bytes == 3 * hidden_state  # plus the span residual's slope


def test_span_memory_forecasts_forward_within_one_gap():
    """Reused steps add the last computed residual plus its slope (from the last two computed steps) times
    the steps past the last computed one, never reaching further than the last gap; held: the last residual.
    Residuals 1 then 3 at steps 4 and 6: slope +1 per step; recalled 3 + reach, the reach capped at 2 (a
    forecast run backward would give 2, 1, 1)."""
    from adacache_core.span_memory import SpanMemory

    (p0, p1), expected = (4.0, 6.0), [(6.0, 3.0), (7.0, 4.0), (8.0, 5.0), (11.0, 5.0)]
    memory = SpanMemory(forecast=True, store=lambda t: t)
    r0, r1 = torch.full((1, 4, 8), 1.0), torch.full((1, 4, 8), 3.0)
    memory.remember("k", p0, r0)
    memory.remember("k", p1, r1)
    for position, value in expected:
        torch.testing.assert_close(memory.recall("k", position, "cpu", torch.float32), torch.full((1, 4, 8), value))
    held = SpanMemory(forecast=False, store=lambda t: t)
    held.remember("k", p0, r0)
    held.remember("k", p1, r1)
    assert torch.equal(held.recall("k", expected[-1][0], "cpu", torch.float32), r1)
    assert held.nbytes() == r1.nbytes and memory.nbytes() == 2 * r1.nbytes


# Sigmas with uneven gaps: the forecast goes along the steps, not the noise level. Codebook 10:3 on
# 9 steps computes 0, 1, 4 and the forced 7, 8; steps 2, 3 and 5, 6 are reused.
UNEVEN_SIGMAS = [0.9, 0.8, 0.7, 0.6, 0.5, 0.45, 0.3, 0.2, 0.1, 0.0]
# What reused steps 5 and 6 add, as multiples of the slope (r4 - r1) on top of r4: gap 3, reach 1 and 2
# (along sigma it would be 1/6, 2/3)
REUSED_SLOPES = {"hold": (0.0, 0.0), "forecast": (1 / 3, 2 / 3)}


@pytest.mark.parametrize("reuse", REUSED_SLOPES)
def test_reused_steps_add_the_hand_computed_forecast_on_a_real_model(runtime, wan, conds, reuse):
    """On the same latent at sigmas far apart (a sampler that never moves, so the blocks' input is the same
    at every step and only the timestep changes their residual), the stream leaving the last block on a
    reused step is the blocks' input plus r4 + k * (r4 - r1), r1 and r4 being the span residuals of the
    computed steps 1 and 4 as plain hooks see them, k as in REUSED_SLOPES. Steps 2 and 3 hold r1 in every
    mode: no forecast line runs through the first step (span_memory.forms_line), whose residual comes from
    pure noise."""
    pack = runtime.pack.adacache_core
    settings = dict(preset="custom", custom_codebook="10:3", target_speedup=0.0, reuse=reuse)

    def config_for(num_blocks):
        return pack.config.settings_from_inputs(**settings, probe_blocks="middle", start_percent=0.0, end_percent=1.0,
                                                offload_cache=False, moreg=None, num_blocks=num_blocks)

    patched, session = pack.comfy_bridge.patch_model(wan, config_for)
    diffusion_model = wan.model.diffusion_model
    block_inputs, stream_out = [], []
    handles = [diffusion_model.blocks[0].register_forward_pre_hook(lambda m, a: block_inputs.append(a[0].clone())),
               diffusion_model.head.register_forward_pre_hook(lambda m, a: stream_out.append(a[0].clone()))]
    try:
        h.stay_put_outputs(patched, *conds, torch.zeros(LATENT), torch.tensor(UNEVEN_SIGMAS))
    finally:
        for handle in handles:
            handle.remove()
    trace = session.last_run
    assert trace.computed_steps() == [0, 1, 4, 7, 8]
    assert trace.settings["reuse"] == reuse
    x = block_inputs[0]
    assert all(torch.equal(b, x) for b in block_inputs)  # the sampler stayed put: the same input at every step
    r0, r1, r4 = stream_out[0] - x, stream_out[1] - x, stream_out[4] - x
    slope = r4 - r1
    tolerance = 1e-5 * stream_out[4].abs().max()
    assert slope.abs().max() > 1000 * tolerance and (r1 - r0).abs().max() > 1000 * tolerance  # the forecast matters
    for step in (2, 3):
        torch.testing.assert_close(stream_out[step], x + r1, rtol=0, atol=tolerance.item(), msg=f"step {step}")
    for step, k in zip((5, 6), REUSED_SLOPES[reuse]):
        torch.testing.assert_close(stream_out[step], x + r4 + k * slope, rtol=0, atol=tolerance.item(), msg=f"step {step}")


def test_forecast_runs_through_the_node_with_the_speed_knob_and_moreg(runtime, wan, conds):
    hold = h.ksample(h.adacache(runtime, wan, preset="custom", custom_codebook="10:3"), *conds, torch.zeros(LATENT), steps=10)
    patched = h.adacache(runtime, wan, preset="custom", custom_codebook="10:3", reuse="forecast")
    forecast = h.ksample(patched, *conds, torch.zeros(LATENT), steps=10)
    trace = h.session_of(patched).last_run
    assert trace.settings["reuse"] == "forecast"
    assert trace.computed_steps() == [0, 1, 4, 7, 8, 9]
    assert not torch.equal(hold, forecast)

    # with the speed budget and MoReg: the budget holds, the forecast is used on its reused steps
    budgeted = h.adacache(runtime, wan, target_speedup=2.0, moreg=h.moreg(), reuse="forecast")
    h.ksample(budgeted, *conds, torch.zeros(LATENT), steps=10)
    trace = h.session_of(budgeted).last_run
    assert abs(len(trace.computed_steps()) - 5) <= 1 and trace.settings["reuse"] == "forecast"


def test_unsupported_model_is_returned_unpatched_with_one_warning(runtime, caplog):
    # Wan S2V adds audio to the stream between its blocks, outside any block a hook could reach.
    # (The only test that builds one: the warning is once per process.)
    s2v = h.load_model_patcher(h.random_wan_state_dict(seed=3, model_class="WanModel_S2V", model_type="s2v"))
    assert type(s2v.model.diffusion_model).__name__ == "WanModel_S2V"
    with caplog.at_level(logging.WARNING, logger="adacache"):
        first = h.adacache(runtime, s2v)
        second = h.adacache(runtime, s2v)
    assert first is s2v and second is s2v
    assert "adacache" not in s2v.model_options.get("transformer_options", {})
    warnings = [r for r in caplog.records if "WanModel_S2V" in r.getMessage() and "returned unpatched" in r.getMessage()]
    assert len(warnings) == 1 and "Wan S2V" in warnings[0].getMessage() and "Supported:" in warnings[0].getMessage()


def test_bad_settings_are_refused_before_sampling(runtime, wan):
    import nodes

    node = nodes.NODE_CLASS_MAPPINGS["AdaCachePatchModel"]
    assert "custom_codebook" in node.validate_inputs(preset="custom", custom_codebook="0.2:3, 0.1:2")
    assert "preset" in node.validate_inputs(preset="turbo")
    assert "start_percent" in node.validate_inputs(start_percent=0.9, end_percent=0.1)
    assert node.validate_inputs(preset="custom", custom_codebook="0.1:2, 1:1", probe_blocks="1,2") is True
    with pytest.raises(ValueError, match="probe_blocks.*0 to 3"):
        h.adacache(runtime, wan, probe_blocks="9")


def test_a_later_clone_of_the_patched_model_keeps_caching(runtime, wan, conds):
    """Nodes after AdaCache (ModelSamplingSD3, LoRA loaders, a multi-GPU engine) clone the model,
    which deep-copies model_options but not the wrappers: hooks and wrappers must keep one session."""
    patched = h.adacache(runtime, wan, preset="custom", custom_codebook="10:3")
    direct = h.ksample(patched, *conds, torch.zeros(LATENT), steps=10)
    session = h.session_of(patched)
    computed = session.last_run.computed_steps()
    clone = patched.clone()
    assert h.session_of(clone) is session
    with h.BlockCounter(wan) as counter:
        out = h.ksample(clone, *conds, torch.zeros(LATENT), steps=10)
    assert session.last_run.computed_steps() == computed and len(computed) < 10
    assert counter.count == len(computed) * len(wan.model.diffusion_model.blocks)
    assert torch.equal(out, direct)
