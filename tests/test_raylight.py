"""AdaCache under Raylight, the multi-GPU engine ComfyUI users run, on CPU with Raylight's own code.

Two ranks (gloo) run Raylight's USP sequence parallel (``raylight_harness.py``: Raylight c049571 from
../shared/third_party/raylight, xFuser 0.4.5, yunchang, Ulysses degree 2) on tiny Wan, HunyuanVideo
and Chroma models with AdaCache installed the way the Raylight node installs it on a worker. Each
must take the decisions of one process on the whole sequence and give its output, with one
all_reduce per computed step that measured something and none on reused steps.

Skipped (with the reason) where ../shared or the packages are missing; under CI=true that fails.
"""
import importlib.util
import json
import os

import pytest

import helpers as h
import raylight_harness as rh

IN_CI = os.environ.get("CI", "").lower() not in ("", "0", "false", "no")
TIMEOUT_S = 420  # ComfyUI boots in two processes on two busy cores; three models sampled twice on rank 0
# measured on this 2-core machine: at most 1.5e-5 (Wan), 3.3e-6 (HunyuanVideo), 6.7e-6 (Chroma) of
# outputs up to 24 in size; the change rates agree to 1e-5 relative (float summation order)
OUTPUT_TOLERANCE = 1e-4
CHANGE_TOLERANCE = 1e-4


def missing() -> str | None:
    if not (rh.RAYLIGHT / "src" / "raylight").is_dir():
        return f"Raylight's sources are not at {rh.RAYLIGHT} (../shared/third_party/raylight)"
    absent = [name for name in ("ray", "xfuser", "yunchang") if importlib.util.find_spec(name) is None]
    if absent:
        return f"not installed: {', '.join(absent)} (tools/setup_env.sh installs them)"
    return None


def require_raylight() -> None:
    reason = missing()
    if reason:
        if IN_CI:
            pytest.fail(reason)
        pytest.skip(reason)


@pytest.fixture(scope="module")
def ranks(tmp_path_factory) -> list[dict]:
    require_raylight()
    outs = h.launch_ranks(rh.HERE / "raylight_harness.py", 2, lambda rank, out: list(rh.CASES), tmp_path_factory.mktemp("raylight"),
                          TIMEOUT_S, out_name="rank{}.json")
    return [json.loads(o.read_text()) for o in outs]


@pytest.mark.parametrize("name", list(rh.CASES))
def test_raylight_ranks_take_the_decisions_of_one_process(ranks, name):
    single = ranks[0][name]["single"]
    assert 0 < len(single["computed"]) < rh.STEPS, "the codebook must really reuse steps on this model"
    for rank, result in enumerate(r[name]["sharded"] for r in ranks):
        assert result["computed"] == single["computed"], f"rank {rank}"
        assert [d[:2] for d in result["decisions"]] == [d[:2] for d in single["decisions"]], f"rank {rank}"
        for ours, theirs in zip(result["decisions"], single["decisions"]):
            for a, b in zip(ours[2:], theirs[2:]):  # change, motion, distance
                assert (a is None) == (b is None)
                if a is not None:
                    assert abs(a - b) <= CHANGE_TOLERANCE * max(abs(b), 1e-6), (rank, ours, theirs)
        assert max(abs(a - b) for a, b in zip(result["latent"], single["latent"])) < OUTPUT_TOLERANCE
        assert any(n.startswith("sequence parallel: decisions measured over 2 ranks") for n in result["notes"])


@pytest.mark.parametrize("name", list(rh.CASES))
def test_one_all_reduce_per_measured_step_and_one_length_exchange_per_list(ranks, name):
    for result in (r[name]["sharded"] for r in ranks):
        measured = [d for d in result["decisions"] if d[2] is not None or d[3] is not None]
        assert result["all_reduce"] == len(measured)  # reused steps measure nothing and send nothing
        probes = rh.CASES[name][3]
        lists = 2 if "," in probes else 1  # the test cases put one probe in each list, or the middle one in the first
        assert result["all_gather_lengths"] == lists
        moreg = rh.CASES[name][2] is not None
        probe_count = probes.count(",") + 1
        assert result["all_gather_heads"] == (probe_count * len(result["computed"]) if moreg else 0)
