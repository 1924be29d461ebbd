"""`MoReg Settings`: the paper's motion regularisation, plugged into AdaCache Patch Model."""
from __future__ import annotations

from comfy_api.latest import io

from ..adacache_core import MoRegConfig, SettingsError, parse_strides
from ..adacache_core.calibration import MotionCalibration
from ..adacache_core.moreg_settings import MAX_FRAME_STRIDES, MAX_STRIDE, MOREG_INPUTS, MOREG_RANGES
from .types import MoRegSettings

_DEFAULT = MoRegConfig()
# Each input's default, from MoRegConfig's own (the paper's values)
DEFAULTS = {**{name: getattr(_DEFAULT, attribute) for name, attribute in MOREG_INPUTS.items()},
            "frame_strides": ",".join(map(str, _DEFAULT.strides)), "window_start": _DEFAULT.window[0],
            "window_end": _DEFAULT.window[1]}


def _bounds(name: str) -> dict:
    """The input's declared min/max: the ranges the settings check, in one place (moreg_settings.MOREG_RANGES)."""
    low, high = MOREG_RANGES[name]
    return {"min": low, "max": high}


def _config(motion_scale, motion_power, motion_divisor, gradient_weight, frame_strides, window_start, window_end,
            calibration: str | None = None) -> MoRegConfig:
    return MoRegConfig(scale=motion_scale, power=motion_power, divisor=motion_divisor, grad_mul=gradient_weight,
                       strides=parse_strides(frame_strides), window=(window_start, window_end),
                       calibration=None if calibration is None else MotionCalibration.from_text(calibration))


def frame_strides_input() -> io.String.Input:
    """The frame strides input, shared with AdaCache Calibrate (a calibration is only valid for its strides)."""
    return io.String.Input("frame_strides", default=DEFAULTS["frame_strides"],
                           tooltip="Which frames are compared to measure motion: '1' (neighbours) or e.g. '1, 2'. Larger "
                                   f"numbers notice slower motion. Up to {MAX_FRAME_STRIDES} numbers from 1 to {MAX_STRIDE}.")


class MoRegSettingsNode(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="AdaCacheMoRegSettings",
            display_name="MoReg Settings",
            category="AdaCache",
            description=("Motion regularisation (AdaCache paper, section 3.2): measures how much the video moves between "
                         "frames and makes moving videos compute more steps, so motion is not smeared. Defaults are the paper's. "
                         "It acts when AdaCache Patch Model's target_speedup is 0 (the preset's adaptive schedule).\n\n"
                         "motion_scale is the motion score that counts as normal; the paper's 0.385 was set on Open-Sora. "
                         "The viewer's run data show each computed step's motion score: set the scale near your model's "
                         "typical score, or connect AdaCache Calibrate's calibration (then the scale is not used). The window "
                         "is counted from step 1: at 30 and 100 steps the default is the paper's own, steps 4-26 and 10-90. "
                         "Frame strides at or beyond the clip's latent frame count are skipped (the run data say when none "
                         "is left). Details: docs/how_it_works.md."),
            inputs=[
                io.Float.Input("motion_scale", default=DEFAULTS["motion_scale"], **_bounds("motion_scale"), step=0.001,
                               tooltip="How much motion counts as normal. Lower = more videos count as moving (more steps "
                                       "computed); higher = more reuse. Not used when a calibration is connected."),
                io.Float.Input("motion_power", default=DEFAULTS["motion_power"], **_bounds("motion_power"), step=0.1,
                               tooltip="How strongly motion above or below normal changes the schedule. Higher = a bigger "
                                       "difference between still and moving videos."),
                io.Float.Input("motion_divisor", default=DEFAULTS["motion_divisor"], **_bounds("motion_divisor"), step=0.01,
                               tooltip="Raise it to reuse more overall (faster), lower it to compute more."),
                io.Float.Input("gradient_weight", default=DEFAULTS["gradient_weight"], **_bounds("gradient_weight"), step=0.1,
                               tooltip="How quickly a change in motion brings a computed step. Higher = react sooner; 0 = "
                                       "ignore changes in motion."),
                frame_strides_input(),
                io.Float.Input("window_start", default=DEFAULTS["window_start"], min=0.0, max=1.0, step=0.01,
                               tooltip="MoReg acts from this fraction of the steps on (paper: 0.1). Before it, motion is "
                                       "not taken into account."),
                io.Float.Input("window_end", default=DEFAULTS["window_end"], min=0.0, max=1.0, step=0.01,
                               tooltip="MoReg acts until this fraction of the steps (paper: 0.9). Both window values 0: "
                                       "MoReg off."),
                io.String.Input("calibration", optional=True, force_input=True,
                                tooltip="Optional: AdaCache Calibrate's output. Replaces motion_scale by what this model showed, "
                                        "so no hand-tuning; frame_strides must be the calibrated ones."),
            ],
            outputs=[MoRegSettings.Output(tooltip="Connect to the 'moreg' input of AdaCache Patch Model.")],
        )

    @classmethod
    def validate_inputs(cls, **inputs) -> bool | str:
        defaults = DEFAULTS | {"calibration": None}
        try:
            _config(**(defaults | {k: v for k, v in inputs.items() if k in defaults and v is not None}))
        except SettingsError as e:
            return str(e)
        return True

    @classmethod
    def execute(cls, **kwargs) -> io.NodeOutput:
        return io.NodeOutput(_config(**kwargs))
