"""MoReg's settings (motion regularisation, paper section 3.2): what scales the distance with the video's motion."""
from __future__ import annotations

from dataclasses import dataclass

from .checks import WHOLE, SettingsError, check_fraction, check_number, is_whole, shown, text_input

MAX_FRAME_STRIDES = 8

# Allowed ranges of MoReg's numeric inputs (the node declares the same): within them the factor
# ((m / scale) ** power) / divisor stays finite, m being a motion score in [0, 1].
MOREG_RANGES = {"motion_scale": (0.001, 10.0), "motion_power": (0.1, 32.0), "motion_divisor": (0.01, 100.0),
                "gradient_weight": (0.0, 100.0)}
MOREG_INPUTS = {"motion_scale": "scale", "motion_power": "power", "motion_divisor": "divisor", "gradient_weight": "grad_mul"}
MAX_STRIDE = 999

# The paper's own MoReg windows, as 1-based step numbers (``moreg_steps`` in the official configs):
# (10, 90) of 100 steps, (4, 26) of 30. The default window fractions give exactly these there.
PAPER_MOREG_WINDOWS = {100: (10, 90), 30: (4, 26)}
DEFAULT_MOREG_WINDOW = (0.1, 0.9)


@dataclass(frozen=True)
class MoRegConfig:
    """Motion regularisation (paper section 3.2): high motion -> larger distance -> more compute.

    As ``compute_next_step`` of the official code: at every decision the distance is multiplied by
    ``factor + |grad_mul * (factor - previous factor) / steps between|``, where ``factor`` is
    ``((m / scale) ** power) / divisor`` inside the window (m: the probe residual's frame-to-frame
    motion score, averaged over the strides) and exactly 1.0 outside it; the previous factor starts
    at 1.0. See :meth:`active_at` for the window. With a ``calibration`` (calibration.py) the scale
    is not a constant: at each step it is the motion measured on this model at that noise level.
    """

    scale: float = 0.385
    power: float = 8.0
    divisor: float = 1.0
    grad_mul: float = 10.0
    strides: tuple[int, ...] = (1,)
    window: tuple[float, float] = DEFAULT_MOREG_WINDOW
    calibration: object | None = None  # a calibration.MotionCalibration (which builds on this module, not it on that)

    def __post_init__(self) -> None:
        for name, attribute in MOREG_INPUTS.items():
            check_number(name, getattr(self, attribute), *MOREG_RANGES[name])
        if not self.strides or len(self.strides) > MAX_FRAME_STRIDES or any(
                not is_whole(s, 1, MAX_STRIDE) for s in self.strides):
            raise SettingsError(f"frame_strides: {shown(self.strides)} must be 1 to {MAX_FRAME_STRIDES} whole numbers "
                                f"from 1 to {MAX_STRIDE}, e.g. '1' or '1, 2'")
        check_fraction("window_start", self.window[0])
        check_fraction("window_end", self.window[1])
        if self.window[0] > self.window[1]:
            raise SettingsError(f"window_start ({self.window[0]}) must not be after window_end ({self.window[1]})")
        if self.calibration is not None and self.calibration.strides != self.strides:
            raise SettingsError(f"frame_strides: the calibration was measured with frame_strides "
                                f"{list(self.calibration.strides)}, these settings use {list(self.strides)}; use the same")

    def scale_at(self, sigma: float) -> float:
        """The motion score that counts as normal (factor 1) at this noise level."""
        return self.scale if self.calibration is None else self.calibration.scale_at(sigma)

    def describe(self) -> dict:
        return {"scale": "calibrated" if self.calibration is not None else self.scale, "power": self.power,
                "divisor": self.divisor, "grad_mul": self.grad_mul, "strides": list(self.strides),
                "window": list(self.window),
                "calibration": None if self.calibration is None else self.calibration.describe()}

    def window_steps(self, steps: int) -> tuple[float, float]:
        """The window as 1-based step numbers (first, last), both included, as the official code counts.

        The default window at 30 and 100 steps is the paper's own (:data:`PAPER_MOREG_WINDOWS`);
        otherwise the fractions of the step count (0.1 and 0.9 of 100 are the paper's 10 and 90).
        """
        if tuple(self.window) == DEFAULT_MOREG_WINDOW and steps in PAPER_MOREG_WINDOWS:
            return PAPER_MOREG_WINDOWS[steps]
        eps = 1e-9  # 0.1 * 30 is 3.0000000000000004 in floating point
        return self.window[0] * steps - eps, self.window[1] * steps + eps

    def active_at(self, step: int, steps: int) -> bool:
        """Whether 0-based ``step`` of a ``steps``-step run is inside the window (step + 1 = ``fwd_id``)."""
        first, last = self.window_steps(steps)
        return first <= step + 1 <= last


def parse_strides(text: str) -> tuple[int, ...]:
    """'1, 2' -> (1, 2): ascending, duplicates dropped, at most :data:`MAX_FRAME_STRIDES` of them."""
    example = "1, 2"
    parts = [p.strip() for p in text_input("frame_strides", text, example).split(",") if p.strip()]
    if not parts or not all(WHOLE.fullmatch(p) and len(p) <= 3 for p in parts):
        raise SettingsError(f"frame_strides: cannot read {shown(text)}; write whole numbers from 1 to {MAX_STRIDE} "
                            f"like '1' or {example!r}")
    strides = tuple(sorted({int(p) for p in parts}))
    if strides[0] < 1 or len(strides) > MAX_FRAME_STRIDES:
        raise SettingsError(f"frame_strides: {shown(text)} must list 1 to {MAX_FRAME_STRIDES} different whole numbers "
                            f"from 1 to {MAX_STRIDE}, like '1' or {example!r}")
    return strides
