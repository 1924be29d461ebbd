"""The speed knob (target_speedup): its plan, the node's defaults, and its mechanics on real runs.

Quality along the knob is measured in benchmarks/bench_knob.py, not here; these tests check what
must hold whatever the model: the schedules nest, the knob lands on its compute, every step
computed gives the unpatched output bitwise, and a newly placed node runs the knob with forecast.
"""
import pytest
import torch

import helpers as h
from tools import comfy_runtime

STEPS = 30
SPEEDS = (1.25, 1.5, 1.75, 2.0, 2.5, 3.0, 3.5, 4.0)


@pytest.fixture(scope="module")
def core(runtime):
    return runtime.pack.adacache_core


@pytest.fixture(scope="module")
def tiny(runtime):
    import comfy.sd

    return comfy.sd.load_diffusion_model(str(comfy_runtime.TINY_MODEL_DIR / "tiny_wan21_motion.safetensors"))


def wan_sigmas(steps: int, shift: float = 8.0) -> list[float]:
    """Flow-matching sigmas with a shift, as ComfyUI's 'simple' scheduler gives Wan (shift 8)."""
    ts = [1 - i / steps for i in range(steps + 1)]
    return [shift * t / (1 + (shift - 1) * t) for t in ts]


def test_reuse_error_by_hand(core):
    knob = core.step_ranking.REAL_MODEL_RANKING
    assert knob.reuse_error(3, None, forecast=True) == 3.0  # nothing to forecast from: held, costed by its drift alone
    # reuse hold: the residual drifts (the reach) and bends away (hold_bend * k^2 / 2): 3 + 4.5, gap or not
    assert knob.hold_bend == 1.0
    assert knob.reuse_error(3, 2, forecast=False) == pytest.approx(7.5)
    assert knob.reuse_error(3, None, forecast=False) == pytest.approx(7.5)
    assert knob.reuse_error(6, 2, forecast=False) > 2 * knob.reuse_error(3, 2, forecast=False)
    # a line through the last two computed steps (2 apart) misses a bending curve by k^2 / 2, and its slope's
    # jitter adds slope_noise * k / gap (0.25 * k / 2)
    assert knob.slope_noise == 0.25
    assert knob.reuse_error(1, 2, forecast=True) == pytest.approx(0.625)
    assert knob.reuse_error(2, 2, forecast=True) == pytest.approx(2.25)
    assert knob.reuse_error(1, 1, forecast=True) == pytest.approx(0.75)  # the nearer pair: a noisier slope
    # beyond one gap the forecast holds: the miss at the reach, then hold_cost per further step
    assert knob.reuse_error(4, 2, forecast=True) == pytest.approx(2.25 + 2 * knob.hold_cost)


@pytest.mark.parametrize("forecast", [False, True])
@pytest.mark.parametrize("steps", [12, 30, 50])
def test_local_costing_equals_the_whole_schedule_error(core, steps, forecast):
    """drop_order costs each candidate on its neighbourhood; a full recount must pick the same steps."""
    knob, ranking = core.step_ranking, core.step_ranking.REAL_MODEL_RANKING
    sigmas, forced = wan_sigmas(steps), {0, steps - 2, steps - 1}
    weights = ranking.weights(sigmas, steps)

    def total(computed: set[int]) -> float:
        error, previous, last = 0.0, None, None
        for j in range(steps):
            if j in computed:
                previous, last = last, j
            else:
                error += weights[j] * ranking.reuse_error(j - last, None if previous is None else last - previous, forecast)
        return error

    kept, expected = set(range(steps)), []
    while kept - forced:
        costs = {s: total(kept - {s}) for s in sorted(kept - forced)}
        for s, cost in costs.items():  # the local estimate is the whole schedule's change, not only its ranking
            assert knob.drop_cost(sorted(kept), s, weights, forecast) == pytest.approx(cost - total(kept), rel=1e-9, abs=1e-9)
        drop = min(costs, key=lambda s: (costs[s], s))
        kept.discard(drop)
        expected.append(drop)
    assert knob.drop_order(sigmas, steps, forced, forecast) == expected


def planned(core, sigmas: list[float], forced: set[int], computed: int, forecast: bool, ranking=None) -> set[int]:
    """The steps the knob computes in a run of len(sigmas) - 1 steps allowed ``computed`` of them (no searched
    plan), ranked by ``ranking`` (the knob's by default)."""
    knob, steps = core.step_ranking, len(sigmas) - 1
    order = knob.drop_order(sigmas, steps, forced, forecast, ranking or knob.REAL_MODEL_RANKING)
    return knob.kept_steps(order, steps, forced, computed)


@pytest.mark.parametrize("forecast", [False, True])
def test_schedules_nest_and_land_on_their_compute(core, forecast):
    knob = core.step_ranking
    sigmas, forced = wan_sigmas(STEPS), {0, STEPS - 2, STEPS - 1}
    previous = set(range(STEPS))
    for speed in SPEEDS:
        computed = planned(core, sigmas, forced, round(STEPS / speed), forecast)
        assert len(computed) == round(STEPS / speed)
        assert forced <= computed <= previous  # a faster setting computes a subset of a slower one's steps
        previous = computed


def test_by_step_sizes_the_large_steps_of_the_sampler_are_kept_longest(core):
    """With the step-size ranking (the knob's before the real-model fit), the reuse error is weighted by
    the sampler's step: with Wan's shift the steps grow toward the end."""
    sigmas, by_size = wan_sigmas(STEPS), core.step_ranking.STEP_SIZE_RANKING
    computed = planned(core, sigmas, {0, 28, 29}, 10, False, by_size)
    early, late = [s for s in computed if s < 15], [s for s in computed if s >= 15]
    assert len(late) > len(early)
    # with equal steps (no shift) the same budget spreads evenly
    even = planned(core, wan_sigmas(STEPS, shift=1.0), {0, 28, 29}, 10, False, by_size)
    assert abs(len([s for s in even if s < 15]) - len([s for s in even if s >= 15])) <= 2
    # and where the sampler's steps shrink toward the end (the shift inverted), the early steps are kept
    inverted = planned(core, wan_sigmas(STEPS, shift=1 / 8), {0, 28, 29}, 10, False, by_size)
    assert len([s for s in inverted if s < 15]) > len([s for s in inverted if s >= 15])


def test_hold_spreads_a_tight_budget(core):
    """With hold, a reuse of L steps costs about L^3 (not L^2), so at a third of Wan's 30 steps the knob computes a
    few steps through the middle of the run, not 7 first steps and one reuse of 15."""
    def longest_reuse(computed: set[int]) -> int:
        ordered = sorted(computed)
        return max(b - a - 1 for a, b in zip(ordered, ordered[1:]))

    computed = planned(core, wan_sigmas(30), {0, 28, 29}, 10, False)
    assert sorted(computed) == [0, 1, 2, 3, 4, 5, 14, 22, 28, 29]
    drift_only = planned(core, wan_sigmas(30), {0, 28, 29}, 10, False, core.step_ranking.StepRanking(hold_bend=0.0))
    assert (longest_reuse(computed), longest_reuse(drift_only)) == (8, 15)


REAL_WEIGHT_SCHEDULES = comfy_runtime.REPO_ROOT / "benchmarks" / "data" / "real_weight_schedules.json"


@pytest.mark.parametrize("forecast", [False, True])
@pytest.mark.parametrize("shift", [5.0, 8.0])
def test_the_knob_computes_the_first_steps_as_real_wan_schedules_do(core, shift, forecast):
    """On Wan's real 50-step sigmas, at LeMiCa's published budgets (2x to 3.57x), the knob computes at least 7 of
    the first 10 steps and its computed steps overlap the real-weight lists (Jaccard index; 0.12-0.29 before the fit)."""
    import json

    families = json.loads(REAL_WEIGHT_SCHEDULES.read_text())["families"]
    forced = {0, 48, 49}
    for family in ("wan2.1_t2v_1.3B", "wan2.1_t2v_14B"):
        overlaps = []
        for budget, published in families[family]["budgets"].items():
            computed = planned(core, wan_sigmas(50, shift), forced, int(budget), forecast)
            assert len(computed) == int(budget)
            assert len([s for s in computed if s < 10]) >= 7, (family, budget, sorted(computed))
            overlaps.append(len(computed & set(published)) / len(computed | set(published)))
        assert sum(overlaps) / len(overlaps) >= 0.43, (family, overlaps)  # 0.44-0.52 (hold), 0.51 (forecast)
        before = [planned(core, wan_sigmas(50, shift), forced, int(b), forecast, core.step_ranking.STEP_SIZE_RANKING)
                  for b in families[family]["budgets"]]
        assert min(len([s for s in k if s < 10]) for k in before) <= 3  # the fit is what protects them


def test_the_head_protection_by_hand(core):
    """The knob's step weights: head steps weigh head_weight + 1 times a later one, the sampler's step size aside."""
    ranking = core.step_ranking.StepRanking(head=0.5, head_softness=1e-6, head_weight=9.0, step_size_power=0.0)
    assert ranking.weights([1.0, 0.9, 0.5, 0.2, 0.0], 4) == pytest.approx([10.0, 10.0, 5.5, 1.0])  # 2/4 = the edge
    sized = core.step_ranking.StepRanking(head_weight=0.0, step_size_power=1.0)
    assert sized.weights([1.0, 0.9, 0.5, 0.2, 0.0], 4) == pytest.approx([0.1, 0.4, 0.3, 0.2])
    assert core.step_ranking.REAL_MODEL_RANKING == core.step_ranking.StepRanking()


def test_step_sizes_by_hand(core):
    """The weight of a step's reuse error is how far the sampler moves at that step, in sigma."""
    assert core.step_ranking.step_sizes([1.0, 0.7, 0.2, 0.0], 3) == pytest.approx([0.3, 0.5, 0.2])


def test_a_newly_placed_node_runs_the_knob_with_forecast(runtime):
    import nodes

    schema = nodes.NODE_CLASS_MAPPINGS["AdaCachePatchModel"].define_schema()
    defaults = {i.id: i.default for i in schema.inputs if getattr(i, "default", None) is not None}
    assert defaults["target_speedup"] == 2.0
    assert defaults["reuse"] == "forecast"


@pytest.mark.parametrize("speed", [1.5, 3.0])
def test_the_knob_plans_the_same_steps_for_any_video(runtime, tiny, speed):
    """On real runs: the computed steps are the plan, whatever the prompt, and land on steps / speed."""
    demo = runtime.pack.nodes.demo
    runs = {}
    for motion in ("static", "fast"):
        patched = h.adacache(runtime, tiny, target_speedup=speed, reuse="forecast")
        h.ksample(patched, [[demo.load_prompt(motion), {}]], [[demo.load_prompt("empty"), {}]],
                  torch.zeros(1, 16, 3, 8, 8), steps=STEPS, seed=0)
        runs[motion] = h.session_of(patched).last_run
    assert runs["static"].computed_steps() == runs["fast"].computed_steps()
    assert len(runs["fast"].computed_steps()) == round(STEPS / speed)
    assert any("speed knob" in note for note in runs["fast"].notes)


@pytest.mark.parametrize("reuse", ["hold", "forecast"])
@pytest.mark.parametrize("speed", [1.0, 0.5])
def test_speed_one_or_less_computes_every_step_bitwise(runtime, tiny, reuse, speed):
    """The widget goes below 1: no speed-up asked, so every step is computed, as without AdaCache."""
    demo = runtime.pack.nodes.demo
    pos, neg = [[demo.load_prompt("fast"), {}]], [[demo.load_prompt("empty"), {}]]
    latent = torch.zeros(1, 16, 3, 8, 8)
    ref = h.ksample(tiny, pos, neg, latent, steps=10, seed=3)
    patched = h.adacache(runtime, tiny, target_speedup=speed, reuse=reuse)
    out = h.ksample(patched, pos, neg, latent, steps=10, seed=3)
    run = h.session_of(patched).last_run
    assert run.computed_steps() == list(range(10)) and run.budget == 10
    assert torch.equal(out, ref)


@pytest.mark.parametrize("reuse", ["hold", "forecast"])
def test_exact_steps_sample_as_the_knob_that_computes_the_same_steps(runtime, tiny, reuse):
    """The exact-steps schedule (Plan Search's trial runs, the benchmarks) is one more way to choose steps, not
    another way to reuse: the set the knob planned, given exactly, gives the knob's output bit for bit; a set the
    knob would never plan (every other step, one of the steps it always computes left out) runs as asked, and the
    run says what chose its steps."""
    demo = runtime.pack.nodes.demo
    pos, neg = [[demo.load_prompt("fast"), {}]], [[demo.load_prompt("empty"), {}]]
    latent = torch.zeros(1, 16, 3, 8, 8)
    knob = h.adacache(runtime, tiny, target_speedup=2.5, reuse=reuse)
    by_knob = h.ksample(knob, pos, neg, latent, steps=STEPS, seed=3)
    planned = frozenset(h.session_of(knob).last_run.computed_steps())
    exact = h.adacache(runtime, tiny, target_speedup=2.5, reuse=reuse)
    h.session_of(exact).compute_exactly(planned)
    assert torch.equal(h.ksample(exact, pos, neg, latent, steps=STEPS, seed=3), by_knob)
    alternate = frozenset({0, *range(1, STEPS - 2, 2), STEPS - 1})  # every other step, and not the forced STEPS - 2
    h.session_of(exact).compute_exactly(alternate)
    h.ksample(exact, pos, neg, latent, steps=STEPS, seed=3)
    run = h.session_of(exact).last_run
    assert set(run.computed_steps()) == alternate and run.budget == len(alternate)
    assert run.steps_chosen_by().startswith("a fixed set of steps")
    h.session_of(exact).compute_exactly(None)  # back to the knob
    h.ksample(exact, pos, neg, latent, steps=STEPS, seed=3)
    assert frozenset(h.session_of(exact).last_run.computed_steps()) == planned
