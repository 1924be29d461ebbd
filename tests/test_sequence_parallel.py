"""Sequence parallel: ranks holding shards of the tokens take the decisions of one process on all of them.

Real ranks (CPU, gloo), each booting ComfyUI and sampling the same tiny real Wan model with the
AdaCache node (MoReg on, a codebook that really reuses steps) through KSampler, with the tokens
sharded by the miniature SP engine of ``sp_harness.py``. Reference: this process, no
``torch.distributed``, the full tokens.
"""
import json

import pytest
import torch

import helpers as h
import sp_harness as sh

TIMEOUT_S = 240  # booting ComfyUI in 3 processes on 2 busy cores can take a minute; gloo itself times out at 60 s
WORLD = 3
PAIR = [0, 1]  # two-rank plans run on this subgroup, registered with sequence_parallel.use_group (explicit)
PLANS = {
    # three ranks on the default group: detected automatically
    "3 ranks, uneven": {"sizes": [27, 27, 26]},
    "3 ranks, tiny shards": {"sizes": [1, 2, 77]},
    "3 ranks, an empty shard": {"sizes": [40, 0, 40]},
    # two ranks on a subgroup: configured explicitly
    "2 ranks, cut mid-frame": {"sizes": [37, 43], "ranks": PAIR},
    "2 ranks, one token on a rank": {"sizes": [79, 1], "ranks": PAIR},
    "2 ranks, every token on one rank (always)": {"sizes": [80, 0], "ranks": PAIR, "settings": {"sequence_parallel": "always"}},
    # the forecast is per rank: the same exchanges, the single-process result
    "3 ranks, uneven, forecast": {"sizes": [27, 27, 26], "settings": {"reuse": "forecast"}},
}
MOTION_CHECKS = {  # Group.motion_terms alone, on a 5-frame sequence of 6 tokens per frame, strides 1, 2, 4
    "motion terms, 3 ranks, float32, an empty shard": {"sizes": [1, 0, 29], "motion_check": "float32"},
    "motion terms, 3 ranks, bfloat16": {"sizes": [5, 7, 18], "motion_check": "bfloat16"},
    "motion terms, 2 ranks, float32": {"sizes": [13, 17], "ranks": PAIR, "motion_check": "float32"},
}


def launch(world: int, plans: dict, tmp_path) -> list[dict]:
    """Run ``world`` ranks of sp_harness.py; fail clearly (with their logs) on error or deadlock."""
    outs = h.launch_ranks(sh.HERE / "sp_harness.py", world, lambda rank, out: [json.dumps(plans)], tmp_path, TIMEOUT_S,
                          out_name="rank{}.pt")
    return [torch.load(o, weights_only=False) for o in outs]


@pytest.fixture(scope="module")
def reference(runtime):
    """Per reuse mode, one process on the full tokens, with the collectives made to fail: it must not call any."""
    def refuse(*args, **kwargs):
        raise AssertionError("a single process made a torch.distributed call")

    assert not torch.distributed.is_initialized()
    mp = pytest.MonkeyPatch()
    for name in ("all_reduce", "all_gather", "get_world_size", "get_rank", "get_backend"):
        mp.setattr(torch.distributed, name, refuse)
    try:
        return {reuse: sh.summary(*sh.sample(runtime, sh.base_model(), reuse=reuse)) for reuse in ("hold", "forecast")}
    finally:
        mp.undo()


@pytest.fixture(scope="module")
def ranks(tmp_path_factory) -> list[dict]:
    return launch(WORLD, PLANS | MOTION_CHECKS, tmp_path_factory.mktemp("ranks"))


@pytest.mark.parametrize("name", PLANS)
def test_sharded_ranks_take_the_decisions_of_one_process(ranks, reference, name):
    plan = PLANS[name]
    members = plan.get("ranks", range(WORLD))
    results = [ranks[r][name] for r in members]
    mode = plan.get("settings", {}).get("reuse", "hold")
    if mode != "hold":  # the forecast really changes what reused steps add
        assert not torch.equal(reference[mode]["latent"], reference["hold"]["latent"])
    reference = reference[mode]
    assert len(reference["computed"]) < sh.STEPS and any(d[1] > 1 for d in reference["decisions"])  # steps are reused
    assert any(d[4] is not None for d in reference["decisions"])  # MoReg measured
    for rank, got in enumerate(results):
        where = f"{name}: rank {rank}"
        assert got["computed"] == reference["computed"], where
        assert [d[:3] for d in got["decisions"]] == [d[:3] for d in reference["decisions"]], where
        for mine, ref in zip(got["decisions"], reference["decisions"]):
            for a, b in zip(mine[3:], ref[3:]):  # change, motion, distance
                assert (a is None and b is None) or a == pytest.approx(b, rel=1e-4), where
        assert any(f"over {len(results)} ranks" in n for n in got["notes"]), (where, got["notes"])
        # one all_reduce per computed step (its decision) and one head exchange per computed call
        # (cond and uncond run batched: one call per step, one probe block); none on reused steps
        assert got["collectives"] == {"all_reduce": len(got["computed"]), "all_gather_bytes": len(got["computed"])}, where
        torch.testing.assert_close(got["latent"], reference["latent"], rtol=1e-4, atol=1e-4, msg=where)
        assert torch.equal(got["latent"], results[0]["latent"]), where


@pytest.mark.parametrize("name", MOTION_CHECKS)
def test_sharded_motion_terms_sum_to_the_full_sequence_terms(ranks, name):
    from adacache_core import measures

    plan = MOTION_CHECKS[name]
    tokens = torch.randn(2, 30, 8, generator=torch.Generator().manual_seed(len(plan["sizes"]))).to(getattr(torch, plan["motion_check"]))
    want = [float(t) for _, pair in measures.motion_terms(tokens, 5, (1, 2, 4)) for t in pair]
    for r in plan.get("ranks", range(WORLD)):
        assert ranks[r][name] == pytest.approx(want, rel=1e-5), (name, r)


def test_the_node_refuses_an_unknown_mode(runtime):
    import nodes

    node = nodes.NODE_CLASS_MAPPINGS["AdaCachePatchModel"]
    assert node.validate_inputs(sequence_parallel="auto") is True
    assert "sequence_parallel" in node.validate_inputs(sequence_parallel="sideways")
