"""Core of the method on plain tensors: codebooks, distance, motion score, planner."""
import json

import pytest
import torch

from adacache_core import PRESETS, AdaCacheConfig, Codebook, MoRegConfig, SettingsError, parse_codebook, parse_probe_blocks, parse_strides
from adacache_core import measures, schedule
from adacache_core.planner import RunPlanner
from adacache_core.trace import RunTrace
from helpers import lengths, run_data_json

pytestmark = pytest.mark.once  # tests/conftest.py: the same on every ComfyUI


def test_lookup_is_strict_and_falls_back_to_last_length():
    cb = PRESETS["paper: fastest (fast, 30 steps)"]
    assert cb.lookup(0.0) == 6
    assert cb.lookup(0.08) == 5  # strict '<': a distance equal to a threshold goes to the next bucket
    assert cb.lookup(0.39) == 2
    assert cb.lookup(5.0) == 1


def test_rescaling_follows_the_step_count():
    cb = PRESETS["paper: fastest (fast, 30 steps)"]
    assert cb.rescaled(30) is cb
    cb60 = cb.rescaled(60)
    assert lengths(cb60) == (12, 10, 8, 6, 4, 2)
    assert cb60.thresholds == pytest.approx((0.04, 0.08, 0.12, 0.16, 0.20, 0.5))
    assert min(lengths(cb.rescaled(5))) == 1
    custom = parse_codebook("0.08:6, 1.0:1")
    assert custom.rescaled(100) is custom


@pytest.mark.parametrize("text, fragment", [
    ("", "empty"),
    ("0.1:2, nonsense", "cannot read 'nonsense'"),
    ("0.2:3, 0.1:2", "strictly ascending"),
    ("-0.1:2", "cannot read"),
    ("0.1:0", "length 0"),
    ("0.1:2.5", "cannot read"),
])
def test_bad_codebook_strings_are_refused_with_the_input_named(text, fragment):
    with pytest.raises(SettingsError) as e:
        parse_codebook(text)
    assert "custom_codebook" in str(e.value) and fragment in str(e.value)


def test_other_settings_validate_with_clear_messages():
    assert parse_probe_blocks("middle", 28) == (13,)  # the paper's probe: block 13 of 28
    assert parse_probe_blocks("3, 1", 8) == (1, 3)
    with pytest.raises(SettingsError, match="probe_blocks.*0 to 7"):
        parse_probe_blocks("8", 8)
    with pytest.raises(SettingsError, match="frame_strides"):
        parse_strides("0")
    with pytest.raises(SettingsError, match="start_percent"):
        AdaCacheConfig(probe_blocks=(0,), start_percent=0.8, end_percent=0.2)
    with pytest.raises(SettingsError, match="window_start"):
        MoRegConfig(window=(0.9, 0.1))


def test_a_settings_error_is_safe_to_log_whatever_it_quotes():
    """ComfyUI logs the message; a lone surrogate in it stopped the server's prompt worker (its log could not encode
    it inside the error handler), and control characters reach the console as they are."""
    message = str(SettingsError("plan: searched on \udcff with \x1b[2J, line\nnext"))
    assert message == "plan: searched on \\udcff with \\x1b[2J, line\nnext"
    message.encode("utf-8")  # no UnicodeEncodeError


def test_change_terms_match_hand_computed_values():
    prev = torch.tensor([[1.0, -2.0], [3.0, 0.0]])
    now = torch.tensor([[1.5, -2.0], [2.0, 1.0]])
    num, den = measures.change_terms(now, prev)
    assert num.item() == pytest.approx(0.5 + 1.0 + 1.0)
    assert den.item() == pytest.approx(6.0)


def test_motion_terms_on_static_and_shifted_tokens():
    frames, hw, c = 3, 4, 2
    frame = torch.arange(hw * c, dtype=torch.float32).reshape(1, hw, c) + 1
    static = frame.repeat(1, frames, 1)
    (stride, (num, den)), = measures.motion_terms(static, frames, (1,))
    assert stride == 1
    assert num.item() == 0.0
    moving = torch.cat([frame + 2 * f for f in range(frames)], dim=1)
    (_, (num, den)), = measures.motion_terms(moving, frames, (1,))
    later, earlier = moving.reshape(1, frames, hw, c)[:, 1:], moving.reshape(1, frames, hw, c)[:, :-1]
    assert num.item() == pytest.approx((later - earlier).abs().sum().item())
    assert den.item() == pytest.approx(later.abs().sum().item() + earlier.abs().sum().item())
    assert measures.motion_terms(moving, frames, (5,)) == []  # stride beyond the clip adds nothing
    assert [s for s, _ in measures.motion_terms(moving, frames, (5, 1, 2))] == [1, 2]  # labelled by their own stride


def test_moreg_factor_is_the_papers_mapping():
    cfg = MoRegConfig()
    assert measures.moreg_factor(0.385, cfg, cfg.scale) == pytest.approx(1.0)
    assert measures.moreg_factor(0.77, cfg, cfg.scale) == pytest.approx(2.0 ** 8)


def _plan(codebook, steps, change_per_step, cacheable=None, moreg=None, motion=None):
    """Drive a planner as the bridge does: one call per step, measurements on computed steps."""
    cfg = AdaCacheConfig(codebook=codebook, probe_blocks=(0,), moreg=moreg)
    sigmas = [1.0 - i / steps for i in range(steps + 1)]
    trace = RunTrace("m", "a", {}, steps, sigmas, [])
    planner = RunPlanner(cfg, sigmas, cacheable or [True] * (steps + 1), trace)
    computed, last = [], None
    for step in range(steps):
        assert planner.step_of(sigmas[step]) == step
        if planner.enter(step):
            computed.append(step)
            if last is not None:
                planner.add_change(0, torch.tensor(change_per_step * (step - last)), torch.tensor(1.0))
            if motion is not None:
                planner.add_motion(0, 1, torch.tensor(motion), torch.tensor(1.0))
            last = step
    planner.finish()
    return computed, trace


def test_planner_follows_the_codebook_and_forces_first_and_last_two():
    computed, trace = _plan(Codebook(((1.0, 4),)), 12, change_per_step=0.1)
    # step 0 (forced), step 1 (no distance yet), then every 4th, plus the forced last two
    assert computed == [0, 1, 5, 9, 10, 11]
    assert trace.decisions[2].distance == pytest.approx(0.1)  # change over 4 steps / 4
    computed, _ = _plan(Codebook(((0.05, 4), (1.0, 2))), 12, change_per_step=0.1)
    assert computed == [0, 1, 3, 5, 7, 9, 10, 11]


def test_planner_computes_every_step_outside_the_window_and_for_tiny_runs():
    computed, _ = _plan(Codebook(((1.0, 4),)), 12, 0.1, cacheable=[False] * 13)
    assert computed == list(range(12))
    assert _plan(Codebook(((1.0, 4),)), 1, 0.1)[0] == [0]
    assert _plan(Codebook(((1.0, 4),)), 3, 0.1)[0] == [0, 1, 2]


def test_moreg_multiplies_the_distance_inside_its_window():
    cb = Codebook(((0.05, 4), (1.0, 1)))
    still, _ = _plan(cb, 20, 0.02, moreg=MoRegConfig(), motion=0.3)
    moving, trace = _plan(cb, 20, 0.02, moreg=MoRegConfig(), motion=0.6)
    assert len(moving) > len(still)
    active = [d for d in trace.decisions if d.moreg_active and d.distance is not None]
    assert active and all(d.moreg_factor == pytest.approx((0.6 / 0.385) ** 8) for d in active)
    unchanged, _ = _plan(cb, 20, 0.02, moreg=MoRegConfig(window=(0.0, 0.0)), motion=0.6)
    plain, _ = _plan(cb, 20, 0.02)
    assert unchanged == plain


def test_step_of_maps_intermediate_sigmas_to_the_earlier_step():
    sigmas = [1.0, 0.8, 0.5, 0.2, 0.0]
    planner = RunPlanner(AdaCacheConfig(probe_blocks=(0,)), sigmas, [True] * 5, RunTrace("m", "a", {}, 4, sigmas, []))
    assert [planner.step_of(s) for s in (1.0, 0.9, 0.8, 0.65, 0.5, 0.2, 0.1)] == [0, 0, 1, 1, 2, 3, 3]


def test_trace_round_trips_through_json():
    _, trace = _plan(Codebook(((1.0, 3),)), 10, 0.1)
    again = RunTrace.from_dict(json.loads(run_data_json(trace)))
    assert again == trace


def _plan_budget(target, steps, changes, cacheable=None):
    cfg = AdaCacheConfig(probe_blocks=(0,), target_speedup=target)
    sigmas = [1.0 - i / steps for i in range(steps + 1)]
    trace = RunTrace("m", "a", {}, steps, sigmas, [])
    planner = RunPlanner(cfg, sigmas, cacheable or [True] * (steps + 1), trace)
    computed, last = [], None
    for step in range(steps):
        if planner.enter(step):
            computed.append(step)
            if last is not None:
                planner.add_change(0, torch.tensor(sum(changes[last:step])), torch.tensor(1.0))
            last = step
    planner.finish()
    return computed, trace.budget


def test_the_run_data_say_why_a_step_was_computed_whatever_the_schedule():
    """The first and the last two steps, and those outside start/end_percent, are computed by every schedule but an
    exact set; the trace names each with its reason."""
    steps, sigmas = 10, [1.0 - i / 10 for i in range(11)]
    cacheable = [i >= 3 for i in range(11)]  # steps 0-2 outside the window
    for cfg in (AdaCacheConfig(probe_blocks=(0,)), AdaCacheConfig(probe_blocks=(0,), target_speedup=3.0)):
        trace = RunTrace("m", "a", {}, steps, sigmas, [])
        planner = RunPlanner(cfg, sigmas, cacheable, trace)
        assert trace.forced_by_reason() == {schedule.FIRST_AND_LAST: [0, 8, 9], schedule.OUTSIDE_WINDOW: [1, 2]}
        assert all(planner.enter(step) for step in (0, 1, 2, 8, 9))
    exact = AdaCacheConfig(probe_blocks=(0,), exact_steps=frozenset({0, 5}))
    trace = RunTrace("m", "a", {}, steps, sigmas, [])
    planner = RunPlanner(exact, sigmas, cacheable, trace)
    assert trace.forced == {} and [s for s in range(steps) if planner.enter(s)] == [0, 5]


@pytest.mark.parametrize("steps", [10, 30, 57, 200])
@pytest.mark.parametrize("target", [1.5, 2.0, 3.0, 4.0])
def test_speed_budget_is_met_within_one_step(steps, target):
    g = torch.Generator().manual_seed(steps)
    changes = (torch.rand(steps, generator=g) * 0.2).tolist()
    computed, budget = _plan_budget(target, steps, changes)
    assert budget == max(3, round(steps / target))
    assert abs(len(computed) - budget) <= 1
    assert {0, steps - 2, steps - 1} <= set(computed)


def test_speed_knob_plans_its_steps_whatever_is_measured():
    """The knob's steps are planned before the run (step_ranking.py): the measured change does not move them."""
    steps = 40
    calm_then_busy = [0.01] * 20 + [0.3] * 20
    computed, budget = _plan_budget(2.5, steps, calm_then_busy)
    assert len(computed) == budget
    busy_then_calm, _ = _plan_budget(2.5, steps, calm_then_busy[::-1])
    assert busy_then_calm == computed
