"""Mutation check: do the tests catch the bugs they are meant to catch?

Each mutant below is one named, one-line bug in the pack's code (adacache_core, and the viewer's run
matching in nodes/viewer.py). It is applied to a temporary copy of the repository (an exact-text
replacement that must match exactly once) and the few test files that should catch it are run there
with ``pytest -x -q``. A mutant is killed when those tests fail; one that survives means a test no
longer checks what it claims to. The repository itself is never modified.

    .venv/bin/python tools/mutants.py            # every mutant (4 to 11 minutes on 2 CPU cores)
    .venv/bin/python tools/mutants.py --list     # names and the tests each runs
    .venv/bin/python tools/mutants.py forecast-backward-along-step reach-guard-dropped

Before the mutants, each distinct test selection runs once on the unmodified copy (``--no-baseline``
skips that): a selection that fails without any bug would count every mutant as killed. Exit status
0 only when every mutant was killed (and every baseline passed). Not run in CI (too slow); run it
before a change to adacache_core lands.
"""
from __future__ import annotations

import argparse
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SKIP = {".git", ".venv", "__pycache__", ".pytest_cache", "output"}
TIMEOUT_S = 1800


@dataclass(frozen=True)
class Mutant:
    name: str
    path: str  # relative to the repository root
    old: str  # exact text, found exactly once in the file
    new: str
    tests: tuple[str, ...]  # pytest arguments, relative to the repository root


FORECAST_TESTS = ("tests/test_patch_model.py", "-k", "forecast")
REUSE_BY_HAND = ("tests/test_patch_model.py", "-k", "hand_computed_forecast")
ORACLE = ("tests/test_official_oracle.py", "-k", "not recorded")
REPLAY = ("tests/test_plan_search.py", "-k", "replays")

MUTANTS = (
    # -- what a reused step adds (span_memory.py, session.py, block_spans.py) -------------------------------------
    Mutant("forecast-backward", "adacache_core/span_memory.py",
           "reach = max(min(position - last_position, MAX_REACH * gap), 0.0)",
           "reach = -max(min(position - last_position, MAX_REACH * gap), 0.0)", FORECAST_TESTS),
    Mutant("forecast-slope-reversed", "adacache_core/span_memory.py",
           "slope = (residual.float() - previous[1].to(residual.device).float()) / gap",
           "slope = (previous[1].to(residual.device).float() - residual.float()) / gap", FORECAST_TESTS),
    Mutant("reach-guard-dropped", "adacache_core/span_memory.py",
           "reach = max(min(position - last_position, MAX_REACH * gap), 0.0)",
           "reach = max(position - last_position, 0.0)", FORECAST_TESTS),
    Mutant("line-through-first-step", "adacache_core/span_memory.py",
           "return step != 1", "return True", FORECAST_TESTS),
    Mutant("span-residual-added-twice", "adacache_core/block_spans.py",
           "parts.append(x + self.arch.from_tokens(residual, x, self.batch_axis))",
           "parts.append(x + 2 * self.arch.from_tokens(residual, x, self.batch_axis))", REUSE_BY_HAND),
    Mutant("span-residual-not-added", "adacache_core/block_spans.py",
           "parts.append(x + self.arch.from_tokens(residual, x, self.batch_axis))",
           "parts.append(x + 0 * self.arch.from_tokens(residual, x, self.batch_axis))", REUSE_BY_HAND),
    Mutant("span-remembers-the-stream-not-its-residual", "adacache_core/block_spans.py",
           "now - self.tokens(then), line=call.line)",
           "now, line=call.line)", REUSE_BY_HAND),
    Mutant("additions-between-blocks-counted-again", "adacache_core/block_spans.py",
           "if self.arch.adds_before_blocks:", "if False:",
           ("tests/test_architectures.py", "-k", "reuse_where and Cosmos")),
    # -- the decision rule (codebooks.py, moreg_settings.py, planner.py, measures.py) ----------------------------------------
    Mutant("codebook-threshold", "adacache_core/codebooks.py", "(0.09, 6)", "(0.10, 6)", ORACLE),
    Mutant("codebook-length", "adacache_core/codebooks.py", "(0.03, 12)", "(0.03, 11)", ORACLE),
    Mutant("codebook-lookup-not-strict", "adacache_core/codebooks.py",
           "if distance < threshold:", "if distance <= threshold:", ("tests/test_core.py",)),
    Mutant("distance-not-per-step", "adacache_core/planner.py",
           "distance = change / gap", "distance = change", ("tests/test_core.py",)),
    Mutant("moreg-window-last-step-excluded", "adacache_core/moreg_settings.py",
           "return first <= step + 1 <= last", "return first <= step + 1 < last", ORACLE),
    Mutant("moreg-window-zero-based", "adacache_core/moreg_settings.py",
           "return first <= step + 1 <= last", "return first <= step <= last", ORACLE),
    Mutant("moreg-gradient-not-per-step", "adacache_core/planner.py",
           "gradient = moreg.grad_mul * (factor - self._prev_factor) / gap",
           "gradient = moreg.grad_mul * (factor - self._prev_factor)", ORACLE),
    Mutant("motion-of-the-first-probe", "adacache_core/planner.py",
           "last_probe = motions[max(motions)] if motions else None",
           "last_probe = motions[min(motions)] if motions else None",
           ("tests/test_moreg_and_budget.py", "-k", "motion_score")),
    Mutant("motion-of-the-first-stride-only", "adacache_core/planner.py",
           "motion = sum(last_probe) / len(last_probe) if last_probe else None",
           "motion = last_probe[0] if last_probe else None",
           ("tests/test_moreg_and_budget.py", "-k", "motion_score")),
    Mutant("motion-normalised-by-one-frame", "adacache_core/measures.py",
           "terms.append((s, (l1(later - earlier), l1(later) + l1(earlier))))",
           "terms.append((s, (l1(later - earlier), l1(later))))", ("tests/test_core.py",)),
    # -- MoReg calibration (planner.py, calibration.py) ------------------------------------------------
    Mutant("calibration-scale-at-the-next-sigma", "adacache_core/planner.py",
           "record.moreg_scale = moreg.scale_at(record.sigma)",
           "record.moreg_scale = moreg.scale_at(self.sigmas[step + 1])",
           ("tests/test_calibration.py", "-k", "own_sigma")),
    Mutant("calibration-interpolates-backward", "adacache_core/calibration.py",
           "return ys[i] + t * (ys[i - 1] - ys[i])", "return ys[i - 1] + t * (ys[i] - ys[i - 1])",
           ("tests/test_calibration.py", "-k", "runs_mean")),
    # -- the image tokens of merged streams (architectures.py) -----------------------------------------
    Mutant("merged-stream-layouts-swapped", "adacache_core/architectures.py",
           'start = 0 if self.merged_stream == "img_first" else total - image_count',
           'start = 0 if self.merged_stream == "txt_first" else total - image_count',
           ("tests/test_architectures.py", "-k", "image_range or merged_stream")),
    Mutant("img-slice-ignored", "adacache_core/architectures.py",
           'where = options.get("img_slice")', "where = None",
           ("tests/test_architectures.py", "-k", "image_range")),
    # -- sequence parallel (sequence_parallel.py) ------------------------------------------------------
    Mutant("sp-reduction-drops-rank-0", "adacache_core/sequence_parallel.py",
           "stacked = self._where(torch.stack([t.float() for t in terms]))",
           "stacked = self._where(torch.stack([t.float() for t in terms]) * (self.rank != 0))",
           ("tests/test_sequence_parallel.py",)),
    # -- the speed knob (step_ranking.py) ----------------------------------------------------------------
    Mutant("speed-plan-ignores-step-sizes", "adacache_core/step_ranking.py",
           "return [abs(sigmas[j] - sigmas[j + 1]) if j + 1 < len(sigmas) else 0.0 for j in range(steps)]",
           "return [1.0 if j + 1 < len(sigmas) else 0.0 for j in range(steps)]",
           ("tests/test_speed_knob.py", "-k", "by_hand or large_steps")),
    Mutant("speed-plan-forgets-the-head", "adacache_core/step_ranking.py",
           "return 1.0 / (1.0 + math.exp(min((progress - self.head) / self.head_softness, 700.0)))",
           "return 0.0", ("tests/test_speed_knob.py", "-k", "by_hand or real_wan")),
    Mutant("speed-plan-forecast-staleness", "adacache_core/step_ranking.py",
           "return reach * reach / 2 + self.slope_noise * reach / gap", "return reach * reach + self.slope_noise * reach / gap",
           ("tests/test_speed_knob.py", "-k", "by_hand or large_steps")),
    Mutant("speed-plan-hold-forgets-the-bend", "adacache_core/step_ranking.py",
           "return reach + self.hold_bend * reach * reach / 2", "return float(reach)",
           ("tests/test_speed_knob.py", "-k", "spreads_a_tight_budget")),
    Mutant("speed-plan-window-misses-the-slope-step", "adacache_core/step_ranking.py",
           "window = kept[max(0, i - 2): i + 3]", "window = kept[max(0, i - 1): i + 3]",
           ("tests/test_speed_knob.py", "-k", "local_costing")),
    # -- texts from a user's input (checks.py, node_text.py) -------------------------------------------
    Mutant("settings-error-message-not-made-printable", "adacache_core/checks.py",
           "super().__init__(printable(message))", "super().__init__(message)",
           ("tests/test_core.py", "-k", "safe_to_log")),
    Mutant("plan-notes-take-unprintable-text", "adacache_core/node_text.py",
           "if not value.isprintable():", "if False:",
           ("tests/test_robustness.py", "-k", "bad_plan_texts or bad_calibration_texts")),
    # -- the searched plan (searched_plan.py, schedule.py) ----------------------------------------------
    Mutant("plan-search-drops-the-worst-step", "adacache_core/searched_plan.py",
           "drop = max(sorted(scores), key=scores.get)", "drop = min(sorted(scores), key=scores.get)",
           ("tests/test_plan_search.py", "-k", "scores_best or samples_closest")),
    Mutant("plan-search-tries-the-dearest-candidates", "adacache_core/searched_plan.py",
           "options = sorted(options, key=lambda s: (cost[s], s))[:candidates]",
           "options = sorted(options, key=lambda s: (cost[s], s))[-candidates:]",
           ("tests/test_plan_search.py", "-k", "candidates_the_estimate")),
    Mutant("plan-fits-any-noise-levels", "adacache_core/searched_plan.py",
           "if any(abs(a - b) > SIGMA_TOLERANCE", "if all(abs(a - b) > SIGMA_TOLERANCE",
           ("tests/test_plan_search.py", "-k", "fits_only or falls_back")),
    Mutant("plan-order-forgets-the-estimate", "adacache_core/searched_plan.py",
           "return [*self.drop_order, *(s for s in estimate if s not in searched)]",
           "return list(self.drop_order)", ("tests/test_plan_search.py", "-k", "fits_only")),
    Mutant("planner-ignores-the-searched-plan", "adacache_core/schedule.py",
           "order, chosen_by = searched.order_for(estimate), \"plan\"", "order, chosen_by = estimate, \"plan\"",
           ("tests/test_plan_search.py", "-k", "reproduces_its_quality")),
    # -- the plan on Raylight's workers (nodes/raylight.py, adacache_core/raylight_workers.py) -----------
    Mutant("raylight-plan-not-sent", "nodes/raylight.py", "node_label(cls), plan,", "node_label(cls), None,",
           ("tests/test_raylight.py", "-k", "follows_a_plan")),
    Mutant("raylight-plan-checked-by-the-worker-only", "adacache_core/raylight_workers.py",
           "        SearchedPlan.from_text(plan).check_model(", "        SearchedPlan.from_text(plan).steps and (",
           ("tests/test_raylight.py", "-k", "follows_a_plan")),
    # -- Plan Search's replay and the exact-steps schedule (replay.py, schedule.py) ------------------------
    Mutant("replay-keeps-an-empty-cache", "adacache_core/session.py",
           "run.span.restore(replay.recording.span_at[step])", "pass", REPLAY),
    Mutant("replay-one-step-too-far", "adacache_core/replay.py", "return step < self.until", "return step <= self.until",
           REPLAY),
    Mutant("exact-steps-keep-the-forced-ones", "adacache_core/schedule.py",
           "return FixedSteps(frozenset(config.exact_steps), steps", "return FixedSteps(frozenset(config.exact_steps) | forced, steps",
           ("tests/test_speed_knob.py", "-k", "exact_steps")),
    # -- the viewer's run matching (nodes/viewer.py) ---------------------------------------------------
    Mutant("viewer-shows-the-latest-run", "nodes/viewer.py",
           'trace.output_latent == target if wanted == "output"',
           'trace.output_latent is not None if wanted == "output"', ("tests/test_viewer.py",)),
)


def copy_repo(destination: Path) -> Path:
    """The repository's files (no .git, no virtual environment, no caches) under ``destination``, beside a
    link to the checkout's ../shared (where it has one): the Raylight tests need its sources and would skip."""
    root = destination / REPO.name
    shutil.copytree(REPO, root, ignore=lambda folder, names: [n for n in names if n in SKIP or n.endswith(".pyc")])
    shared = REPO.parent / "shared"
    if shared.is_dir():
        (destination / "shared").symlink_to(shared.resolve(), target_is_directory=True)
    return root


def run_tests(root: Path, tests: tuple[str, ...]) -> tuple[int, float, str]:
    """(pytest's exit status, seconds, last lines of its output) for ``tests`` in the copy at ``root``."""
    env = os.environ | {"PYTHONDONTWRITEBYTECODE": "1"}  # a mutated file must never meet a stale .pyc
    started = time.perf_counter()
    try:
        done = subprocess.run([sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", *tests], cwd=root,
                              env=env, capture_output=True, text=True, errors="replace", timeout=TIMEOUT_S)
        status, output = done.returncode, done.stdout + done.stderr
    except subprocess.TimeoutExpired as e:
        status, output = -1, f"timed out after {TIMEOUT_S} s: {e}"
    return status, time.perf_counter() - started, "\n".join(output.strip().splitlines()[-15:])


def apply(root: Path, mutant: Mutant) -> str:
    """Put the mutant into the copy; returns the file's original text (to restore it)."""
    path = root / mutant.path
    text = path.read_text()
    count = text.count(mutant.old)
    if count != 1:
        raise SystemExit(f"mutant {mutant.name}: {mutant.old!r} occurs {count} times in {mutant.path}, not once")
    path.write_text(text.replace(mutant.old, mutant.new))
    return text


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("names", nargs="*", help="run only these mutants (default: all)")
    parser.add_argument("--list", action="store_true", help="list the mutants and their tests, run nothing")
    parser.add_argument("--no-baseline", action="store_true", help="skip the run of each test selection without a mutant")
    args = parser.parse_args(argv)
    known = {m.name: m for m in MUTANTS}
    unknown = [n for n in args.names if n not in known]
    if unknown:
        parser.error(f"unknown mutant(s) {unknown}; --list shows them")
    chosen = [known[n] for n in args.names] if args.names else list(MUTANTS)
    if args.list:
        for m in chosen:
            print(f"{m.name:45s} {m.path:35s} {shlex.join(m.tests)}")
        return 0

    started = time.perf_counter()
    failed = False
    with tempfile.TemporaryDirectory(prefix="adacache-mutants-") as tmp:
        root = copy_repo(Path(tmp))
        for m in chosen:  # every mutant must apply before anything runs
            (root / m.path).write_text(apply(root, m))
        if not args.no_baseline:
            for tests in dict.fromkeys(m.tests for m in chosen):
                status, seconds, tail = run_tests(root, tests)
                print(f"baseline {shlex.join(tests)}: {'passed' if status == 0 else 'FAILED'} ({seconds:.0f} s)", flush=True)
                if status != 0:
                    print(tail)
                    failed = True
            if failed:
                print("the tests fail without any mutant: fix them first")
                return 1
        rows = []
        for m in chosen:
            original = apply(root, m)
            try:
                status, seconds, tail = run_tests(root, m.tests)
            finally:
                (root / m.path).write_text(original)
            verdict = {0: "SURVIVED", 1: "killed"}.get(status, f"ERROR (pytest exit {status})")
            rows.append((m.name, shlex.join(m.tests), verdict, seconds))
            print(f"  {m.name}: {verdict} ({seconds:.0f} s)", flush=True)
            if status not in (0, 1):
                print(tail)
    width = max(len(r[0]) for r in rows)
    tests_width = max(len(r[1]) for r in rows)
    print(f"\n{'mutant':{width}s}  {'tests':{tests_width}s}  {'result':10s}  seconds")
    for name, tests, verdict, seconds in rows:
        print(f"{name:{width}s}  {tests:{tests_width}s}  {verdict:10s}  {seconds:7.0f}")
    survivors = [r for r in rows if r[2] != "killed"]
    print(f"\n{len(rows) - len(survivors)} of {len(rows)} mutants killed in {time.perf_counter() - started:.0f} s")
    return 1 if survivors else 0


if __name__ == "__main__":
    sys.exit(main())
