"""The pack's schedule against the official code's (tests/official_adacache.py), decision by decision.

The official side takes its codebooks, MoReg constants and windows from official_adacache.py, where
they are written from the official code and configs (cited there), never from the pack's PRESETS.
(a) synthetic measurements at several step counts, with and without MoReg, one and two probes;
(b) the measurements the pack recorded in real runs of the trained tiny model, replayed.
"""
import random

import pytest
import torch

import helpers as h
from adacache_core import PRESETS, AdaCacheConfig, Codebook, MoRegConfig, schedule
from adacache_core.codebooks import resolve_codebook
from adacache_core.config import parse_probe_blocks
from adacache_core.moreg_settings import PAPER_MOREG_WINDOWS
from adacache_core.planner import RunPlanner
from adacache_core.trace import RunTrace
from official_adacache import (OFFICIAL_CODEBOOKS, OFFICIAL_MOGRAD_MUL, OFFICIAL_MOREG_HYP, OFFICIAL_MOREG_STEPS,
                               OFFICIAL_MOREG_STRIDES, OFFICIAL_PROBE_BLOCK, OfficialMoReg, official_forced_steps,
                               official_schedule)
from tools import comfy_runtime

STEP_COUNTS = (10, 30, 57, 100, 200)
OFFICIAL_100 = OFFICIAL_CODEBOOKS["100-step"][1]
# the pack's preset -> the official codebook it restates
PACK_PRESETS = {"paper: fastest (fast, 30 steps)": "30-step, fast", "paper: slowest (slow, 30 steps)": "30-step, slow",
                "paper: middle (100 steps)": "100-step"}


def f32(x: float) -> float:
    """The value as float32 holds it: the planner sums measurements as float32 tensors."""
    return torch.tensor(x, dtype=torch.float32).item()


def synthetic(steps: int, seed: int, probes: int):
    """Per-step change rates and motion scores that wander across the codebook bands and MoReg's scale."""
    rng = random.Random(seed)
    rate = [[rng.uniform(0.005, 0.14) for _ in range(steps)] for _ in range(probes)]
    motion = [[f32(rng.uniform(0.25, 0.5)) for _ in range(steps)] for _ in range(probes)]

    def measure(step: int, previous: int):
        return [f32(sum(r[previous:step])) for r in rate], [m[step] for m in motion]

    return measure


def pack_schedule(steps: int, codebook: Codebook, measure, moreg: MoRegConfig | None, probes: int):
    """Drive the pack's planner as the bridge does: one call per step, measurements on computed steps."""
    cfg = AdaCacheConfig(codebook=codebook, probe_blocks=tuple(range(probes)), moreg=moreg)
    sigmas = [1.0 - i / steps for i in range(steps + 1)]
    trace = RunTrace("m", "a", {}, steps, sigmas, [])
    planner = RunPlanner(cfg, sigmas, [True] * (steps + 1), trace)
    last = None
    for step in range(steps):
        if planner.enter(step):
            if last is not None:
                changes, motions = measure(step, last)
                for probe in range(probes):
                    planner.add_change(probe, torch.tensor(changes[probe]), torch.tensor(1.0))
                    planner.add_motion(probe, 1, torch.tensor(motions[probe]), torch.tensor(1.0))
            last = step
    planner.finish()
    return trace


def assert_same_decisions(trace: RunTrace, official) -> None:
    """Every decision agrees, except where the pack divides by the steps that really passed and the
    official code by the reuse length it chose: only at the forced last two steps, whose decisions
    change nothing (the last step is always computed; README, "Faithful to the official code")."""
    pack = [d for d in trace.decisions if d.distance is not None]
    assert [d.step for d in pack] == [d.step for d in official.decisions]
    for ours, theirs in zip(pack, official.decisions):
        if ours.gap != theirs.prev_rate:
            assert ours.step >= trace.steps - 2, ours.step
            continue
        assert ours.distance == pytest.approx(theirs.distance, rel=1e-9), ours.step
        assert ours.reuse_length == theirs.rate, ours.step
        if ours.moreg_factor is not None:
            assert ours.moreg_factor == pytest.approx(theirs.moreg, rel=1e-9), ours.step
            assert ours.moreg_gradient == pytest.approx(theirs.mograd, rel=1e-9, abs=1e-12), ours.step


def codebook_for(steps: int, preset: str) -> tuple[Codebook, dict]:
    """(the pack's codebook, the official one) for a run of ``steps``: at the step count a preset was set
    for, the pack's preset against the official codebook; elsewhere the official 100-step numbers as
    written (the pack rescales its presets there, the official code has no rule for it)."""
    reference_steps, official = OFFICIAL_CODEBOOKS[PACK_PRESETS[preset]]
    if steps == reference_steps:
        return resolve_codebook(preset), official
    return Codebook(tuple(OFFICIAL_100.items())), OFFICIAL_100


def test_presets_and_constants_are_the_official_ones():
    """The pack's presets, MoReg defaults, windows, probe and forced steps, against the official code's."""
    for name, official_name in PACK_PRESETS.items():
        steps, official = OFFICIAL_CODEBOOKS[official_name]
        assert resolve_codebook(name).entries == tuple(official.items()), name
        assert resolve_codebook(name).reference_steps == steps, name
    assert sorted(cb.entries for cb in PRESETS.values()) == sorted(tuple(c.items()) for _, c in OFFICIAL_CODEBOOKS.values())
    cfg = MoRegConfig()
    assert (cfg.scale, cfg.power, cfg.divisor) == OFFICIAL_MOREG_HYP
    assert cfg.grad_mul == OFFICIAL_MOGRAD_MUL and cfg.strides == OFFICIAL_MOREG_STRIDES
    assert PAPER_MOREG_WINDOWS == OFFICIAL_MOREG_STEPS
    assert parse_probe_blocks("middle", 28) == (OFFICIAL_PROBE_BLOCK,)
    for steps in (4, 30, 100):
        assert set(schedule.forced_steps(steps)) == {s - 1 for s in official_forced_steps(steps)}


@pytest.mark.parametrize("steps, preset", [(s, "paper: middle (100 steps)") for s in STEP_COUNTS if s != 30]
                         + [(30, "paper: fastest (fast, 30 steps)"), (30, "paper: slowest (slow, 30 steps)")])
@pytest.mark.parametrize("with_moreg", [False, True])
@pytest.mark.parametrize("probes", [1, 2])
def test_synthetic_measurements_give_the_official_decisions(steps, preset, with_moreg, probes):
    codebook, official_codebook = codebook_for(steps, preset)
    for seed in range(5):
        measure = synthetic(steps, seed, probes)
        moreg = MoRegConfig() if with_moreg else None
        official = official_schedule(steps, official_codebook, measure, OfficialMoReg() if with_moreg else None, probes)
        trace = pack_schedule(steps, codebook, measure, moreg, probes)
        assert [d.step for d in trace.decisions] == official.computed, (seed, steps)
        assert_same_decisions(trace, official)


def test_moreg_window_is_the_papers_on_one_based_steps():
    cfg = MoRegConfig()
    assert [s for s in range(100) if cfg.active_at(s, 100)] == list(range(9, 90))  # fwd_id 10..90
    assert [s for s in range(30) if cfg.active_at(s, 30)] == list(range(3, 26))  # fwd_id 4..26
    assert [s for s in range(57) if cfg.active_at(s, 57)] == list(range(5, 51))  # 5.7 <= fwd_id <= 51.3
    custom = MoRegConfig(window=(0.2, 0.8))
    assert [s for s in range(30) if custom.active_at(s, 30)] == list(range(5, 24))  # 6..24


def test_gradient_acts_outside_the_window_too():
    """The first decision after the window closes is multiplied by 1 + |10 * (1 - last factor) / gap|."""
    steps = 100
    measure = synthetic(steps, 3, 1)
    trace = pack_schedule(steps, resolve_codebook("paper: middle (100 steps)"), measure, MoRegConfig(), 1)
    after = next(d for d in trace.decisions if d.distance is not None and d.step >= 90)
    before = [d for d in trace.decisions if d.distance is not None and d.step < after.step][-1]
    assert not after.moreg_active and after.moreg_factor == 1.0
    assert after.moreg_gradient == pytest.approx(10 * (1.0 - before.moreg_factor) / after.gap)
    assert after.distance == pytest.approx(after.change / after.gap * (1 + abs(after.moreg_gradient)))


# -- (b) real runs of the trained tiny model ---------------------------------------------------------

@pytest.fixture(scope="module")
def tiny(runtime):
    import comfy.sd

    return comfy.sd.load_diffusion_model(str(comfy_runtime.TINY_MODEL_DIR / "tiny_wan21_motion.safetensors"))


@pytest.mark.parametrize("preset, steps, scale, motion, seed", [
    ("paper: fastest (fast, 30 steps)", 30, None, "fast", 0),
    ("paper: fastest (fast, 30 steps)", 30, 0.385, "fast", 7),
    ("paper: fastest (fast, 30 steps)", 30, 0.15, "slow", 1),
    ("paper: slowest (slow, 30 steps)", 30, 0.15, "fast", 2),
    ("paper: middle (100 steps)", 100, 0.15, "orbit", 0),
])
def test_recorded_measurements_replay_to_the_same_schedule(runtime, tiny, preset, steps, scale, motion, seed):
    demo = runtime.pack.nodes.demo
    patched = h.adacache(runtime, tiny, preset=preset, moreg=None if scale is None else h.moreg(motion_scale=scale))
    h.ksample(patched, [[demo.load_prompt(motion), {}]], [[demo.load_prompt("empty"), {}]],
              torch.zeros(1, 16, 5, 8, 8), steps=steps, cfg=3.0, seed=seed)
    trace = h.session_of(patched).last_run
    recorded = {d.step: d for d in trace.decisions}

    def measure(step: int, previous: int):
        d = recorded[step]  # KeyError: the official code computed a step the pack did not
        assert d.gap == step - previous
        return [d.change], [d.motion]

    official = official_schedule(steps, OFFICIAL_CODEBOOKS[PACK_PRESETS[preset]][1], measure, None if scale is None else OfficialMoReg(scale=scale))
    assert trace.computed_steps() == official.computed
    assert_same_decisions(trace, official)
    assert len(official.computed) < steps  # something was reused: the replay compared real decisions
