"""The pack does what it did before the schedule module and the split of the bridge and the settings (issue #44).

tests/data/behaviour.json was written by tools/record_behaviour.py: the knob at six speeds in both reuse modes, the
three presets with and without MoReg, a custom codebook, start/end percent, a plan from Plan Search at three speeds,
CFG 1, heun, 3, 7 and 30 steps. The same runs now must compute the same calls, take the same decisions, write the same
notes and give the same samples. First recorded running the pack of commit 67b715c (the last before the refactor);
recorded again when reuse hold's knob ranking gained its bend (step_ranking.StepRanking.hold_bend), which changed the
"knob 3x hold" run and no other (compared with 67b715c's recording, in git history).
"""
import json
import math
from pathlib import Path

import pytest

pytestmark = pytest.mark.once  # the recording is of the pinned ComfyUI's sampling

RECORDED = Path(__file__).resolve().parent / "data" / "behaviour.json"


def same_numbers(a, b) -> bool:
    """Equal, floats to 1e-9 relative (the sums of a latent are not bitwise the same on every CPU); lists elementwise."""
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(same_numbers(x, y) for x, y in zip(a, b))
    if isinstance(a, float) and isinstance(b, float):
        return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12)
    return a == b


def test_every_recorded_run_computes_decides_and_samples_as_before(runtime):
    from tools import pack_calls, record_behaviour

    before = json.loads(RECORDED.read_text())
    now = record_behaviour.record(pack_calls)
    assert list(now) == list(before)
    for name, run in before.items():
        for key in ("calls", "notes", "chosen_by", "budget", "decisions", "samples"):
            assert same_numbers(now[name][key], run[key]), (name, key, now[name][key], run[key])


def test_the_comparison_sees_a_changed_decision():
    """The check above can fail: a reuse length one longer, or samples a hair apart, are not the same."""
    run = json.loads(RECORDED.read_text())["knob 2x forecast"]
    longer = [[*d[:3], d[3] + 1, *d[4:]] for d in run["decisions"]]
    assert same_numbers(run["decisions"], run["decisions"]) and not same_numbers(longer, run["decisions"])
    assert not same_numbers([run["samples"][0] * (1 + 1e-7), run["samples"][1]], run["samples"])
