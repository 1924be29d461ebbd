"""AdaCache Plan Search: the greedy search, the plan text, and the plan driving AdaCache Patch Model's knob,
on ComfyUI's real runtime with the project's tiny model (a preview latent, a handful of steps)."""
import dataclasses
import json
import logging
import math
import re

import pytest
import torch

import helpers as h

LATENT = torch.zeros(1, 16, 5, 8, 8)
STEPS = 8  # optional steps 1..5: a search with every candidate is 5 + 4 + 3 + 2 + 1 runs


@pytest.fixture(scope="module")
def tiny(runtime):
    return h.load_tiny("motion")


def plan_search(model, positive, negative, seed=0, steps=STEPS, candidates=50, reuse="forecast", **overrides) -> str:
    """The `AdaCache Plan Search` node (the class ComfyUI registered): the plan text."""
    import nodes

    values = dict(seed=seed, steps=steps, cfg=5.0, sampler_name="euler", scheduler="simple", candidates=candidates,
                  reuse=reuse) | overrides
    return nodes.NODE_CLASS_MAPPINGS["AdaCachePlanSearch"].execute(
        model=model, positive=positive, negative=negative, latent_image={"samples": LATENT}, **values).args[0]


def planned_run(runtime, model, cond, empty, plan, speedup, steps=STEPS, scheduler="simple", reuse="forecast"):
    """(output, computed steps, notes) of AdaCache Patch Model with ``plan`` at ``speedup``, through KSampler."""
    patched = h.adacache(runtime, model, target_speedup=speedup, reuse=reuse, plan=plan)
    out = h.ksample(patched, cond, empty, LATENT, steps=steps, scheduler=scheduler)
    run = h.session_of(patched).last_run
    return out, run.computed_steps(), run.notes


# -- the search, framework-free -------------------------------------------------------------------------
def linear_sigmas(steps):
    """Evenly spaced sigmas from 1 to 0 (the estimate's step sizes all equal)."""
    return [1.0 - i / steps for i in range(steps)] + [0.0]


def test_search_gives_up_the_step_that_scores_best_not_the_one_the_estimate_likes(runtime):
    """With a score the estimate disagrees with, the search follows the score: each level drops the
    candidate whose run scores highest, and every set it scores is the previous level less one step."""
    from adacache_core.searched_plan import search_drop_order

    harm = {1: 9.0, 2: 1.0, 3: 7.0, 4: 3.0, 5: 5.0, 6: 2.0}  # step -> harm when reused (additive)
    scored = []

    def score(computed):
        scored.append(computed)
        return -sum(harm[s] for s in harm if s not in computed)

    found = search_drop_order(linear_sigmas(9), {0, 7, 8}, True, 0, score)
    assert [s for s, _ in found] == [2, 6, 4, 5, 3, 1]  # least harmful first
    assert [v for _, v in found] == [-1.0, -3.0, -6.0, -11.0, -18.0, -27.0]
    assert len(scored) == 6 + 5 + 4 + 3 + 2 + 1
    kept = set(range(9))
    for dropped, _ in found:  # nested: each level keeps every step of the one before but one
        level = [c for c in scored if len(c) == len(kept) - 1]
        assert all(c < kept for c in level) and len(level) == len(kept - {0, 7, 8})
        kept -= {dropped}


def test_search_tries_only_the_candidates_the_estimate_ranks_cheapest(runtime):
    from adacache_core import step_ranking
    from adacache_core.searched_plan import search_drop_order

    sigmas, forced = linear_sigmas(12), {0, 10, 11}
    weights = step_ranking.REAL_MODEL_RANKING.weights(sigmas, 12)
    levels = []

    def score(computed):
        levels.append(computed)
        return -float(max(set(range(12)) - computed))  # dropping late steps is worse

    found = search_drop_order(sigmas, forced, True, 2, score, min_computed=6)
    kept = list(range(12))
    for dropped, _ in found:
        tried = [sorted(set(kept) - c)[0] for c in levels[:2]]
        del levels[:2]
        cost = {s: step_ranking.drop_cost(kept, s, weights, True) for s in kept if s not in forced}
        assert sorted(tried) == sorted(sorted(cost, key=lambda s: (cost[s], s))[:2])
        assert dropped == min(tried)  # the one that scored best
        kept.remove(dropped)
    assert len(kept) == 6 and not levels


# -- the plan text --------------------------------------------------------------------------------------
def a_plan(**overrides):
    from adacache_core.searched_plan import SearchedPlan

    values = dict(architecture="Wan 2.1", blocks=8, reuse="forecast", sigmas=tuple(linear_sigmas(6)),
                  drop_order=(2, 3, 1), psnr=(math.inf, 40.5, 31.25), searched_on="6 steps") | overrides
    return SearchedPlan(**values)


def test_plan_text_round_trips_and_bad_texts_name_the_plan(runtime):
    from adacache_core import SettingsError
    from adacache_core.searched_plan import SearchedPlan

    plan = a_plan()
    again = SearchedPlan.from_text(plan.to_text())  # sigmas kept to six digits, the rest as it was
    assert again.to_text() == plan.to_text() and again.mismatch(list(plan.sigmas), "forecast") is None
    assert (again.drop_order, again.psnr, again.searched_on) == (plan.drop_order, plan.psnr, plan.searched_on)
    good = json.loads(plan.to_text())
    for bad, why in [("", "empty"), ("{", "not a plan"), (json.dumps(good | {"format": "x"}), "format"),
                     (json.dumps(good | {"drop_order": [2, 2]}), "distinct"),
                     (json.dumps(good | {"drop_order": [6]}), "from 0 to 5"),
                     (json.dumps(good | {"reuse": "keep"}), "reuse 'keep'"),
                     (json.dumps(good | {"sigmas": [1.0]}), "sigmas"),
                     (json.dumps(good | {"psnr": [1, 2, 3, 4]}), "more PSNR"),
                     (json.dumps(good | {"blocks": True}), "whole number"), ('{"a": NaN}', "not a number"), (5, "int")]:
        with pytest.raises(SettingsError, match="plan") as e:
            SearchedPlan.from_text(bad)
        assert why in str(e.value)


def test_a_plan_fits_only_runs_with_its_sigmas_and_reuse(runtime):
    plan = a_plan()
    sigmas = list(plan.sigmas)
    assert plan.mismatch(sigmas, "forecast") is None
    assert plan.mismatch([s * (1 + 5e-5) for s in sigmas], "forecast") is None  # six significant digits kept
    assert "hold" in plan.mismatch(sigmas, "hold")
    assert "6 steps" in plan.mismatch(sigmas[:-1], "forecast")
    assert "noise levels" in plan.mismatch([sigmas[0], 0.9, *sigmas[2:]], "forecast")
    # steps the search did not reach follow the estimate's order
    assert plan.order_for([4, 1, 3, 2]) == [2, 3, 1, 4]


# -- on the tiny model ------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def searched(tiny):
    """A plan searched on two prompts (the fastest and the stillest class)."""
    base, conds, empty = tiny
    return json.loads(plan_search(base, conds["fast"], empty, second_positive=conds["static"]))


def mean_psnr(runtime, tiny, plan, speedup):
    """(mean PSNR over the two searched prompts against their unpatched runs, computed steps of each)."""
    from tools.quality import psnr

    base, conds, empty = tiny
    values, computed = [], []
    for cls in ("fast", "static"):
        out, steps, notes = planned_run(runtime, base, conds[cls], empty, plan, speedup)
        values.append(psnr(out, h.ksample(base, conds[cls], empty, LATENT, steps=STEPS)))
        computed.append(steps)
        assert any("AdaCache Plan Search found" in n for n in notes)
    return sum(values) / 2, computed


@pytest.mark.parametrize("reuse", ["hold", "forecast"])
def test_a_run_that_replays_the_start_of_an_earlier_one_is_the_full_run_bit_for_bit(runtime, tiny, reuse):
    """Plan Search's shortcut (adacache_core/replay.py): a candidate that gives up step d takes back the model
    outputs of the run it differs from for the steps before d, and the cache's state at d. Its output is that of a
    run sampled from scratch, bit for bit, and its blocks run only from step d on."""
    base, conds, empty = tiny
    patched = h.adacache(runtime, base, target_speedup=1.0, reuse=reuse)
    session = h.session_of(patched)
    session.record = True
    kept = frozenset(range(STEPS)) - {2}
    session.compute_exactly(kept)
    h.ksample(patched, conds["fast"], empty, LATENT, steps=STEPS)
    earlier = session.last_recording
    assert earlier.computed == kept
    for dropped in (1, 3, 5):
        computed = kept - {dropped}
        session.compute_exactly(computed)
        with h.BlockCounter(base) as from_scratch:
            full = h.ksample(patched, conds["fast"], empty, LATENT, steps=STEPS)
        session.compute_exactly(computed, earlier, dropped)
        with h.BlockCounter(base) as replaying:
            replayed = h.ksample(patched, conds["fast"], empty, LATENT, steps=STEPS)
        assert torch.equal(replayed, full)
        assert session.last_run.computed_steps() == sorted(computed) and session.last_recording.computed == computed
        blocks = len(base.model.diffusion_model.blocks)
        assert from_scratch.count == len(computed) * blocks
        assert replaying.count == len([s for s in computed if s >= dropped]) * blocks
    # the replayed run's own recording (all but 2 and 5) serves the next level as a full run's would
    deeper = kept - {5, 4}
    session.compute_exactly(deeper)
    full = h.ksample(patched, conds["fast"], empty, LATENT, steps=STEPS)
    session.compute_exactly(deeper, _recording_of(session, patched, conds, empty, kept - {5}, earlier, 5), 4)
    assert torch.equal(h.ksample(patched, conds["fast"], empty, LATENT, steps=STEPS), full)


def _recording_of(session, patched, conds, empty, computed, earlier, until):
    """The recording of a run of ``computed`` that itself replayed ``earlier`` up to ``until``."""
    session.compute_exactly(computed, earlier, until)
    h.ksample(patched, conds["fast"], empty, LATENT, steps=STEPS)
    return session.last_recording


def test_search_drops_first_the_step_whose_loss_samples_closest(runtime, tiny, searched):
    """Brute force on the real model: of all single drops, the plan's first scores best on the two prompts, with the
    PSNR it reports; every optional step is ranked; the forced ones (first and last two) never are."""
    from adacache_core.searched_plan import SearchedPlan

    plan = SearchedPlan.from_text(json.dumps(searched))
    single = {}
    for s in range(1, STEPS - 2):
        # the plan with step s given up first: at a budget of STEPS - 1 the knob computes all but s
        only = dataclasses.replace(plan, drop_order=(s, *(d for d in range(STEPS) if d != s)), psnr=()).to_text()
        single[s], computed = mean_psnr(runtime, tiny, only, STEPS / (STEPS - 1))
        assert all(s not in steps and len(steps) == STEPS - 1 for steps in computed)
    assert searched["drop_order"][0] == max(single, key=single.get)
    assert searched["psnr"][0] == pytest.approx(single[searched["drop_order"][0]], abs=1e-3)
    assert sorted(searched["drop_order"]) == [1, 2, 3, 4, 5]
    assert searched["architecture"].startswith("Wan") and searched["blocks"] == 8 and searched["reuse"] == "forecast"
    assert "2 prompt(s)" in searched["searched_on"] and "latent 5x8x8" in searched["searched_on"]


def test_patch_model_with_the_plan_computes_its_steps_and_reproduces_its_quality(runtime, tiny, searched):
    """Along the knob the run computes what the plan kept at that level, nested, with the PSNR the search
    measured; asking for every step gives the unpatched output bit for bit."""
    base, conds, empty = tiny
    text = json.dumps(searched)
    out, computed, notes = planned_run(runtime, base, conds["fast"], empty, text, 1.0)
    assert torch.equal(out, h.ksample(base, conds["fast"], empty, LATENT, steps=STEPS)) and computed == list(range(STEPS))
    previous = set(range(STEPS))
    for level in range(1, len(searched["drop_order"]) + 1):
        value, (computed, other) = mean_psnr(runtime, tiny, text, STEPS / (STEPS - level))
        assert set(computed) == set(other) == set(range(STEPS)) - set(searched["drop_order"][:level])
        assert set(computed) < previous
        assert value == pytest.approx(searched["psnr"][level - 1], abs=1e-3)
        previous = set(computed)


def test_plan_for_other_steps_or_scheduler_falls_back_to_the_estimate_with_one_warning(runtime, tiny, searched, caplog):
    base, conds, empty = tiny
    text = json.dumps(searched)
    for steps, scheduler in ((STEPS + 2, "simple"), (STEPS, "karras")):
        with caplog.at_level(logging.WARNING, logger="adacache"):
            out, computed, notes = planned_run(runtime, base, conds["static"], empty, text, 2.0, steps=steps,
                                               scheduler=scheduler)
        unplanned, computed_without, _ = planned_run(runtime, base, conds["static"], empty, None, 2.0, steps=steps,
                                                     scheduler=scheduler)
        assert computed == computed_without and torch.equal(out, unplanned)
        assert any("not used" in n for n in notes)
        with caplog.at_level(logging.WARNING, logger="adacache"):  # again: the run data say it, the console once
            _, _, again = planned_run(runtime, base, conds["static"], empty, text, 2.0, steps=steps, scheduler=scheduler)
        assert any("not used" in n for n in again)
        assert caplog.text.count("AdaCache Plan Search is not used") == 1
        caplog.clear()


def test_patch_model_refuses_a_plan_it_cannot_follow_before_sampling(runtime, tiny, searched):
    """The pack's SettingsError (a ValueError; the pack's modules load under ComfyUI's name for them)."""
    base, _, _ = tiny
    text = json.dumps(searched)
    with pytest.raises(ValueError, match="plan: it was searched with reuse 'forecast'.*'hold'"):
        h.adacache(runtime, base, target_speedup=2.0, reuse="hold", plan=text)
    with pytest.raises(ValueError, match="plan: .*target_speedup is 0"):
        h.adacache(runtime, base, target_speedup=0.0, reuse="forecast", plan=text)
    other = h.load_model_patcher(h.random_wan_state_dict(num_layers=4))
    with pytest.raises(ValueError, match="plan: searched on Wan.* 8 blocks.* 4 blocks"):
        h.adacache(runtime, other, target_speedup=2.0, reuse="forecast", plan=text)
    with pytest.raises(ValueError, match="plan: the text is empty"):
        h.adacache(runtime, base, target_speedup=2.0, reuse="forecast", plan=" ")


def test_plan_search_refuses_bad_counts_and_unsupported_models(runtime, tiny):
    import nodes

    node = nodes.NODE_CLASS_MAPPINGS["AdaCachePlanSearch"]
    assert "steps: must be a whole number from 4 to 100" in node.validate_inputs(steps=3)
    assert "candidates: must be a whole number from 1 to 50" in node.validate_inputs(candidates=0)
    assert node.validate_inputs(steps=30, candidates=6) is True
    base, conds, empty = tiny
    with pytest.raises(ValueError, match="steps"):
        plan_search(base, conds["fast"], empty, steps=2)
    unsupported = h.load_model_patcher(h.random_wan_state_dict())  # a supported one, its diffusion model swapped
    unsupported.model.diffusion_model = torch.nn.Linear(1, 1)
    with pytest.raises(ValueError, match="model: AdaCache Plan Search .* not supported"):
        plan_search(unsupported, conds["fast"], empty)


def test_plan_search_in_the_demo_workflow_through_the_execution_engine(runtime, caplog):
    """The demo workflow with a Plan Search feeding Patch Model's plan, queued as ComfyUI queues it: the run
    the viewer saves was planned from the searched plan (6 steps, a small latent, 2 candidates per step).
    The search shows one progress bar for all its runs, and one console line per level, not per run."""
    from tools import comfy_exec, comfy_runtime
    from tools.workflow import ui_to_api

    prompt = ui_to_api(json.loads((comfy_runtime.REPO_ROOT / "workflows" / "adacache_demo_tiny_model.json").read_text()))
    ids = {node["class_type"]: node_id for node_id, node in prompt.items()}
    for node in prompt.values():  # the AdaCache sampler and the uncached one the demo compares with
        if node["class_type"] == "KSampler":
            node["inputs"]["steps"] = 6
    sampler = prompt[ids["KSampler"]]["inputs"]
    prompt[ids["EmptyHunyuanLatentVideo"]]["inputs"].update(width=32, height=32, length=9)
    prompt[ids["AdaCacheScheduleViewer"]]["inputs"]["filename_prefix"] = "plan_search_test/run"
    prompt["900"] = {"class_type": "AdaCachePlanSearch", "inputs": {
        "model": [ids["UNETLoader"], 0], "positive": sampler["positive"], "negative": sampler["negative"],
        "latent_image": sampler["latent_image"], "seed": 0, "steps": 6, "cfg": sampler["cfg"], "sampler_name": "euler",
        "scheduler": "simple", "reuse": "forecast", "candidates": 2}}
    prompt[ids["AdaCachePatchModel"]]["inputs"]["plan"] = ["900", 0]
    import comfy.utils
    from comfy_execution.utils import get_executing_context

    bar, hook = [], comfy.utils.PROGRESS_BAR_HOOK

    def record(value, total, preview, prompt_id=None, node_id=None):  # as a server's hook sees progress
        if (node_id or get_executing_context().node_id) == "900":
            bar.append((value, total))

    comfy.utils.set_progress_bar_global_hook(record)
    try:
        with caplog.at_level(logging.INFO, logger="adacache"):
            comfy_exec.execute(prompt)
    finally:
        comfy.utils.set_progress_bar_global_hook(hook)
    # 1 reference + 2 + 2 + 1 candidate runs (3 optional steps of 6) = 6 runs of 6 steps, on one bar that never restarts
    assert {total for _, total in bar} == {36} and [v for v, _ in bar] == sorted(v for v, _ in bar) and bar[-1][0] == 36
    search_lines = [r.getMessage() for r in caplog.records if "Plan Search" in r.getMessage()]
    *levels, done = search_lines  # one line per level, then one with the totals
    assert len(levels) == 3 and "3 of 6 runs, about" in levels[0] and "6 of 6 runs" in levels[-1]
    taken_back = int(re.search(r"done, 6 runs in .*; (\d+) model calls taken back", done).group(1))
    assert taken_back > 0  # the candidates replayed the runs they differ from up to the step they give up
    per_run = [r for r in caplog.records if "[plan search" in r.getMessage() and "computed" in r.getMessage()]
    assert not per_run  # silent during the search: they read like results
    (saved,) = (runtime.output_dir / "plan_search_test").glob("run_*.json")
    (run,) = json.loads(saved.read_text()).values()
    assert any("from the plan AdaCache Plan Search found (6 steps euler/simple" in note for note in run["notes"])
    assert run["settings"]["plan"]["steps"] == 6 and run["summary"]["computed_steps"] == 3  # 2x of 6 steps
