"""MoReg calibration: what 'normal motion' is on this model, measured instead of tuned by hand.

Why: MoReg's factor is ``(motion / scale) ** power``. The paper set ``scale`` (0.385) on Open-Sora;
the motion score of another model sits elsewhere, so at the paper's scale every video of that model
gets about the same factor, and the schedule no longer follows the video. Worse, the score is not
constant over a run even for one video: early on the latent is mostly noise, whose frames differ
whatever the prompt, and the score falls as the noise goes; only in the second half do still and
moving videos separate.

So a calibration records, on the user's own model and prompt(s) with every step computed (the
output is exactly the unpatched one), the motion score at every noise level (sigma). A calibrated
MoReg uses that curve as its ``scale``: at each step the factor compares this video's motion with
the calibration runs' motion at the same noise level. Early in the run every video scores like the
calibration (factor about 1: the paper's codebook decides); later a video that moves more than the
calibration computes more, one that moves less reuses more. Nothing is tuned: the scale is a
measurement, the power, window and gradient stay the paper's.

A calibration is only meaningful for the probe it was measured with (the same block, residual and
frame strides on the same architecture); :meth:`MotionCalibration.check_matches` refuses others.
It travels as a short JSON text, so workflows carry and share it.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass

from . import node_text
from .checks import SettingsError, shown
from .config import PROBE_RESIDUALS
from .moreg_settings import MAX_FRAME_STRIDES, MAX_STRIDE, MOREG_RANGES
from .node_text import note, number, short, whole

FORMAT = "adacache-motion-calibration/1"
MAX_RUNS = 16  # runs merged into one calibration
MAX_POINTS = 1000  # measured steps per run
MAX_CALIBRATION_TEXT = 200_000  # characters: 16 runs of 1000 steps with full float precision fit


@dataclass(frozen=True)
class MotionCalibration:
    """Motion scores by noise level, measured with every step computed, on one probe of one model."""

    architecture: str
    blocks: int
    probe_blocks: tuple[int, ...]
    probe_residual: str
    strides: tuple[int, ...]
    runs: tuple[tuple[tuple[float, ...], tuple[float, ...]], ...]  # per run: (sigmas, motion scores), sigma descending

    def __post_init__(self) -> None:
        if not self.runs or len(self.runs) > MAX_RUNS:
            raise SettingsError(f"calibration: needs 1 to {MAX_RUNS} runs, got {len(self.runs)}")
        for sigmas, motions in self.runs:
            if not 1 <= len(sigmas) == len(motions) <= MAX_POINTS:
                raise SettingsError(f"calibration: each run needs 1 to {MAX_POINTS} (sigma, motion) pairs of equal length")
            if not all(isinstance(v, float) and math.isfinite(v) and v > 0 for v in (*sigmas, *motions)):
                raise SettingsError("calibration: sigmas and motion scores must be positive finite numbers")
            if any(a <= b for a, b in zip(sigmas, sigmas[1:])):
                raise SettingsError("calibration: each run's sigmas must be strictly descending")

    def scale_at(self, sigma: float) -> float:
        """MoReg's scale at this noise level: the calibration runs' mean motion score there.

        Each run is interpolated linearly in log(sigma) (held constant beyond its ends), so runs
        with another sampler, scheduler or step count still line up by noise level. Kept within
        the range :data:`MOREG_RANGES` allows for ``motion_scale``.
        """
        low, high = MOREG_RANGES["motion_scale"]
        x = math.log(max(sigma, 1e-12))
        value = sum(_interp(x, [math.log(s) for s in sigmas], motions) for sigmas, motions in self.runs) / len(self.runs)
        return min(max(value, low), high)

    def check_matches(self, architecture: str, blocks: int, probe_blocks: tuple[int, ...], probe_residual: str,
                      strides: tuple[int, ...]) -> None:
        """Refuse a run whose probe differs from the one calibrated: its motion scores are another quantity."""
        wanted = {"model": f"{architecture} with {blocks} blocks", "probe_blocks": list(probe_blocks),
                  "probe_residual": probe_residual, "frame_strides": list(strides)}
        have = {"model": f"{self.architecture} with {self.blocks} blocks", "probe_blocks": list(self.probe_blocks),
                "probe_residual": self.probe_residual, "frame_strides": list(self.strides)}
        for name, value in wanted.items():
            if value != have[name]:
                raise SettingsError(f"calibration: measured with {name} {have[name]}, but this run uses {value}; "
                                    f"calibrate again with AdaCache Calibrate on this model and these settings")

    def merged(self, other: "MotionCalibration") -> "MotionCalibration":
        """This calibration with ``other``'s runs added (same model and probe), e.g. for several prompts."""
        other.check_matches(self.architecture, self.blocks, self.probe_blocks, self.probe_residual, self.strides)
        return MotionCalibration(self.architecture, self.blocks, self.probe_blocks, self.probe_residual, self.strides,
                                 self.runs + other.runs)

    def describe(self) -> dict:
        """Short summary for the run data and the viewer."""
        return {"runs": len(self.runs), "model": f"{self.architecture} with {self.blocks} blocks",
                "probe_blocks": list(self.probe_blocks), "probe_residual": self.probe_residual,
                "frame_strides": list(self.strides)}

    def to_text(self) -> str:
        return json.dumps({"format": FORMAT, "architecture": self.architecture, "blocks": self.blocks,
                           "probe_blocks": list(self.probe_blocks), "probe_residual": self.probe_residual,
                           "frame_strides": list(self.strides),
                           "runs": [{"sigmas": [short(v) for v in s], "motion": [short(v) for v in m]} for s, m in self.runs]})

    @classmethod
    def from_text(cls, text) -> "MotionCalibration":
        """Parse what :meth:`to_text` wrote; anything else is refused with a message naming the problem."""
        return node_text.parse(text, "calibration", "AdaCache Calibrate", MAX_CALIBRATION_TEXT, cls._from_data)

    @classmethod
    def _from_data(cls, data: dict) -> "MotionCalibration":
        if data.get("format") != FORMAT:
            raise ValueError(f"format is not {FORMAT!r}")
        strides = tuple(whole(s, 1, MAX_STRIDE) for s in data["frame_strides"])
        if not 1 <= len(strides) <= MAX_FRAME_STRIDES:
            raise ValueError("frame_strides")
        residual = data["probe_residual"]
        if residual not in PROBE_RESIDUALS:
            raise ValueError(f"probe_residual {shown(residual)}")
        return cls(note(data["architecture"], "architecture", 100), whole(data["blocks"], 1, 10_000),
                   tuple(whole(b, 0, 9_999) for b in data["probe_blocks"]), residual, strides,
                   tuple((tuple(map(number, run["sigmas"])), tuple(map(number, run["motion"]))) for run in data["runs"]))


def _interp(x: float, xs: list[float], ys: tuple[float, ...]) -> float:
    """Piecewise-linear y at x; ``xs`` descending (log sigma of a run), held constant beyond the ends."""
    if x >= xs[0]:
        return ys[0]
    for i in range(1, len(xs)):
        if x >= xs[i]:
            t = (x - xs[i]) / (xs[i - 1] - xs[i])
            return ys[i] + t * (ys[i - 1] - ys[i])
    return ys[-1]


def measured(trace, config, architecture: str, blocks: int) -> MotionCalibration:
    """The calibration a finished run recorded: its motion scores, for the probe of ``config`` (the run's settings)."""
    points = [(d.sigma, d.motion) for d in trace.decisions if d.motion is not None and d.motion > 0 and d.sigma > 0]
    if not trace.finished or len(points) < 2:
        why = "; ".join(trace.notes) or "the run was interrupted or measured no motion"
        raise SettingsError(f"calibration: the run measured no motion to calibrate on ({why})")
    return MotionCalibration(architecture, blocks, config.probe_blocks, config.probe_residual, config.moreg.strides,
                             ((tuple(float(s) for s, _ in points), tuple(float(m) for _, m in points)),))
