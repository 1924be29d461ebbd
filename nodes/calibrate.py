"""`AdaCache Calibrate`: measure what normal motion is on this model, so MoReg needs no hand-tuned scale."""
from __future__ import annotations

import comfy.samplers
from comfy_api.latest import io

from ..adacache_core import AdaCacheConfig, Codebook, MoRegConfig, SettingsError, parse_probe_blocks, parse_strides
from ..adacache_core.calibration import MAX_RUNS, MotionCalibration, measured
from ..adacache_core.comfy_bridge import patch_model
from ..adacache_core.checks import is_whole, shown
from ..adacache_core.config import PATCH_SETTINGS
from .moreg import frame_strides_input
from .patch_model import setting_input
from .types import check_sampling_choices, node_label

MIN_CALIBRATION_STEPS, MAX_CALIBRATION_STEPS = 2, 10000  # a calibration needs motion measured at two noise levels at least


class AdaCacheCalibrate(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="AdaCacheCalibrate",
            display_name="AdaCache Calibrate",
            category="AdaCache",
            description=(
                "Samples like KSampler with every step computed (the output is exactly the unpatched model's) and "
                "records this model's motion score at every noise level. Connect 'calibration' to MoReg Settings: "
                "videos that move more than the calibration prompt(s) then compute more steps, stiller ones reuse "
                "more. Chain several of these nodes (calibration into earlier_calibration) to calibrate on several prompts."),
            inputs=[
                io.Model.Input("model", tooltip="The model you will patch with AdaCache (unpatched here)."),
                io.Conditioning.Input("positive", tooltip="A typical prompt of yours: motion is judged relative to it."),
                io.Conditioning.Input("negative", tooltip="The negative prompt you use (for CFG)."),
                io.Latent.Input("latent_image", tooltip="A video latent (at least two latent frames) of the size you will generate."),
                io.Int.Input("seed", default=0, min=0, max=0xffffffffffffffff, control_after_generate=True,
                             tooltip="Keep it fixed: ComfyUI then reuses the calibration until another input changes."),
                io.Int.Input("steps", default=30, min=MIN_CALIBRATION_STEPS, max=MAX_CALIBRATION_STEPS,
                             tooltip="As in your sampler. The calibration is stored by noise level, so runs with "
                                     "other step counts or schedulers still use it."),
                io.Float.Input("cfg", default=5.0, min=0.0, max=100.0, step=0.1, round=0.01, tooltip="As in your sampler."),
                io.Combo.Input("sampler_name", options=comfy.samplers.KSampler.SAMPLERS, tooltip="As in your sampler."),
                io.Combo.Input("scheduler", options=comfy.samplers.KSampler.SCHEDULERS, tooltip="As in your sampler."),
                setting_input("probe_blocks", optional=False),  # required since the first release
                setting_input("probe_residual"),
                frame_strides_input(),
                io.String.Input("earlier_calibration", optional=True, force_input=True,
                                tooltip="Optional: an earlier calibration of the same model and probe; this run is added to it."),
            ],
            outputs=[io.Latent.Output("samples", tooltip="The sampled latent, identical to an unpatched KSampler's."),
                     io.String.Output("calibration", tooltip="Connect to the 'calibration' input of MoReg Settings.")],
            hidden=[io.Hidden.unique_id],
        )

    @classmethod
    def validate_inputs(cls, steps: int | None = None, earlier_calibration: str | None = None,
                        sampler_name: str | None = None, scheduler: str | None = None) -> bool | str:
        """At queue time, where these are typed in (linked ones arrive as None here, and are checked in execute)."""
        try:
            checked_inputs(MIN_CALIBRATION_STEPS if steps is None else steps, earlier_calibration)
            check_sampling_choices(sampler_name, scheduler)
        except SettingsError as e:
            return str(e)
        return True

    @classmethod
    def execute(cls, model, positive, negative, latent_image, seed: int, steps: int, cfg: float, sampler_name: str,
                scheduler: str, probe_blocks: str, frame_strides: str,
                probe_residual: str = PATCH_SETTINGS["probe_residual"].default, earlier_calibration: str | None = None) -> io.NodeOutput:
        strides = parse_strides(frame_strides)
        earlier = checked_inputs(steps, earlier_calibration)
        check_sampling_choices(sampler_name, scheduler)
        latent = latent_image["samples"]
        if latent.ndim != 5 or latent.shape[2] <= strides[0]:
            frames = latent.shape[2] if latent.ndim == 5 else 1
            raise SettingsError(f"latent_image: motion is measured between latent frames at frame_strides {list(strides)}; "
                                f"this latent has {frames} frame(s). Use a video latent with more frames.")
        patched, session = patch_model(
            model, lambda num_blocks: measuring_config(parse_probe_blocks(probe_blocks, num_blocks), probe_residual, strides),
            label=node_label(cls, "calibration node"))
        if session is None:
            raise SettingsError("model: AdaCache Calibrate measures through AdaCache's hooks and this model is not "
                                "supported (see the warning above); connect a model AdaCache Patch Model supports")
        if earlier is not None:
            earlier.check_matches(session.arch.name, session.num_blocks, session.config.probe_blocks, probe_residual, strides)
        import nodes as comfy_nodes  # ComfyUI's own nodes.py: sample exactly as KSampler does

        samples = comfy_nodes.common_ksampler(patched, seed, steps, cfg, sampler_name, scheduler, positive, negative,
                                              latent_image)[0]
        result = measured(session.last_run, session.config, session.arch.name, session.num_blocks)
        return io.NodeOutput(samples, (earlier.merged(result) if earlier else result).to_text())


def measuring_config(probe_blocks: tuple[int, ...], probe_residual: str, strides: tuple[int, ...]) -> AdaCacheConfig:
    """Settings of a calibration run: every step computed (output exactly the unpatched one), motion measured."""
    return AdaCacheConfig(codebook=Codebook(((1.0, 1),)), preset="calibration (every step computed)",
                          probe_blocks=probe_blocks, probe_residual=probe_residual, moreg=MoRegConfig(strides=strides))


def checked_inputs(steps: int, earlier_calibration: str | None) -> MotionCalibration | None:
    """The earlier calibration, parsed; refuses what could only fail after sampling (the step count, a full chain)."""
    if not is_whole(steps, MIN_CALIBRATION_STEPS, MAX_CALIBRATION_STEPS):
        raise SettingsError(f"steps: a calibration measures the motion at each step and needs {MIN_CALIBRATION_STEPS} "
                            f"to {MAX_CALIBRATION_STEPS} steps, got {shown(steps)}")
    if earlier_calibration is None:
        return None
    try:
        earlier = MotionCalibration.from_text(earlier_calibration)
    except SettingsError as e:  # its messages name 'calibration'; here the input is earlier_calibration
        raise SettingsError(f"earlier_{e}") from None
    if len(earlier.runs) >= MAX_RUNS:
        raise SettingsError(f"earlier_calibration: it holds {len(earlier.runs)} runs, the most one calibration merges; "
                            "connect it to MoReg Settings as it is, or start another chain")
    return earlier
