"""`AdaCache Patch Model`: put it between the model loader and the sampler."""
from __future__ import annotations

from comfy_api.latest import io

from ..adacache_core import CUSTOM_PRESET, DEFAULT_PRESET, PRESETS, AdaCacheConfig, SettingsError
from ..adacache_core.architectures import supported_names
from ..adacache_core.config import (DEFAULT_PROBE_RESIDUAL, DEFAULT_REUSE, DEFAULT_SPEEDUP, MAX_SPEEDUP, PROBE_RESIDUALS,
                                   REUSE_MODES, SEQUENCE_PARALLEL_MODES, settings_from_inputs)
from ..adacache_core.comfy_bridge import patch_model
from .types import MoRegSettings

DEFAULT_CUSTOM_CODEBOOK = PRESETS[DEFAULT_PRESET].describe()


def probe_blocks_input() -> io.String.Input:
    """The probe block input, shared with AdaCache Calibrate (a calibration is only valid for its probe)."""
    return io.String.Input("probe_blocks", default="middle",
                           tooltip="Block(s) whose output change decides the schedule: 'middle' (as the paper) or 0-based numbers like "
                                   "'13' or '6, 20' (checked against the model's block count). Several probes average their changes; with MoReg "
                                   "the last probe's motion decides, as in the paper's code.")


def probe_residual_input() -> io.Combo.Input:
    """The probe residual input, shared with AdaCache Calibrate."""
    return io.Combo.Input("probe_residual", options=list(PROBE_RESIDUALS), default=DEFAULT_PROBE_RESIDUAL, optional=True,
                           tooltip="What the probe block's change is measured on. 'block' (default): the block's output minus "
                                   "its input; it gave more quality per computed step on both of the project's test models. "
                                   "'attention': the paper's own probe, the block's gated self-attention residual, on which "
                                   "the paper's codebooks were set (it changes more per step, so the same preset computes more); "
                                   "where the pack does not know the model's attention gate (only Wan, LTX-Video and PixArt "
                                   "are known) the block's residual is measured and the run data say so.")


class AdaCachePatchModel(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="AdaCachePatchModel",
            display_name="AdaCache Patch Model",
            category="AdaCache",
            description=(
                "Adaptive caching (AdaCache, arXiv 2411.02397) for video diffusion transformers: after each computed "
                "step it measures how much the video still changes and reuses the block outputs for more steps when "
                "it changes little. Put it between the model loader and the sampler."),
            inputs=[
                io.Model.Input("model", tooltip=f"The diffusion model to accelerate. Supported: {', '.join(supported_names())}. "
                                                "Other models pass through unpatched with a warning."),
                *settings_inputs(),
            ],
            outputs=[io.Model.Output(tooltip="The model with AdaCache; connect it to KSampler / SamplerCustomAdvanced.")],
            hidden=[io.Hidden.unique_id],
        )

    @classmethod
    def validate_inputs(cls, **inputs) -> bool | str:
        return check_settings(**inputs)

    @classmethod
    def execute(cls, model, preset: str, custom_codebook: str, probe_blocks: str, start_percent: float,
                end_percent: float, offload_cache: bool, moreg=None, target_speedup: float = DEFAULT_SPEEDUP,
                sequence_parallel: str = "auto", probe_residual: str = DEFAULT_PROBE_RESIDUAL,
                reuse: str = DEFAULT_REUSE) -> io.NodeOutput:
        def config_for(num_blocks: int) -> AdaCacheConfig:
            return settings_from_inputs(preset, custom_codebook, probe_blocks, start_percent, end_percent, offload_cache, moreg,
                                        num_blocks, target_speedup, sequence_parallel, probe_residual, reuse)

        patched, _ = patch_model(model, config_for, label=f"node {getattr(cls.hidden, 'unique_id', None) or '?'}")
        return io.NodeOutput(patched)


def check_settings(**inputs) -> bool | str:
    """Refuse bad settings when the prompt is queued, before anything runs.

    Only widget values arrive here (linked inputs do not). The model is not known yet, so probe
    blocks are checked for their form here and against the model's real block count in execute.
    """
    values = {"preset": DEFAULT_PRESET, "custom_codebook": DEFAULT_CUSTOM_CODEBOOK, "probe_blocks": "middle",
              "start_percent": 0.0, "end_percent": 1.0, "target_speedup": DEFAULT_SPEEDUP,
              "sequence_parallel": "auto", "probe_residual": DEFAULT_PROBE_RESIDUAL,
              "reuse": DEFAULT_REUSE} | {k: v for k, v in inputs.items() if v is not None}
    try:
        settings_from_inputs(values["preset"], values["custom_codebook"], values["probe_blocks"], values["start_percent"],
                             values["end_percent"], False, None, num_blocks=None, target_speedup=values["target_speedup"],
                             sequence_parallel=values["sequence_parallel"], probe_residual=values["probe_residual"],
                             reuse=values["reuse"])
    except SettingsError as e:
        return str(e)
    return True


def settings_inputs() -> list:
    """AdaCache Patch Model's settings (every input but the model), shared with its Raylight variant."""
    return [
        io.Combo.Input("preset", options=[*PRESETS, CUSTOM_PRESET], default=DEFAULT_PRESET,
                       tooltip="Only when target_speedup is 0: the paper's adaptive codebook decides how long to reuse. "
                               "'fast' reuses longest, 'slow' least; 'custom' uses custom_codebook."),
        io.String.Input("custom_codebook", default=DEFAULT_CUSTOM_CODEBOOK,
                        tooltip="Only for preset 'custom': 'threshold:reuse_steps' pairs, thresholds ascending. After a computed "
                                "step whose change rate is below a threshold, the next reuse_steps-1 steps reuse the cache. "
                                "Bigger reuse numbers or thresholds = faster, lower fidelity. At most 32 pairs (1000 characters)."),
        probe_blocks_input(),
        io.Float.Input("start_percent", default=0.0, min=0.0, max=1.0, step=0.01,
                       tooltip="Caching may start at this point of the schedule (0 = first step). Earlier steps are always computed."),
        io.Float.Input("end_percent", default=1.0, min=0.0, max=1.0, step=0.01,
                       tooltip="Caching stops at this point of the schedule (1 = last step). Later steps are always computed. "
                               "start = end turns caching off."),
        io.Boolean.Input("offload_cache", default=False,
                         tooltip="Keep cached residuals in system RAM instead of VRAM: saves VRAM (about one hidden state per block list and "
                                 "branch), costs a copy per reused step."),
        io.Float.Input("target_speedup", default=DEFAULT_SPEEDUP, min=0.0, max=MAX_SPEEDUP, step=0.25, optional=True,
                       tooltip="The speed knob: 2 runs the model on half the steps. Up = faster, down = more faithful. "
                               "1 or less: every step runs, as without AdaCache. 0: off, the preset decides."),
        MoRegSettings.Input("moreg", optional=True,
                            tooltip="Optional MoReg Settings: motion-aware caching, which computes more steps when the video moves."),
        io.Combo.Input("sequence_parallel", options=list(SEQUENCE_PARALLEL_MODES), default="auto", optional=True,
                       tooltip="Only for multi-GPU sequence parallel (tokens split across GPUs, e.g. Raylight / xDiT): "
                               "every GPU must take the same cache decisions, so the measurements are summed over "
                               "the GPUs (one tiny exchange per computed step). 'auto' does so under Raylight / xFuser, "
                               "and when torch.distributed is running and this GPU holds only part of the video's tokens; 'always' whenever "
                               "torch.distributed runs with several processes (image models, or when one GPU may "
                               "hold every token); 'off' never. On one GPU all three are the same."),
        probe_residual_input(),
        io.Combo.Input("reuse", options=list(REUSE_MODES), default=DEFAULT_REUSE, optional=True,
                       tooltip="What a skipped step uses instead of the model. 'forecast' (default): the last change, "
                               "continued; sharper at the same speed, one more hidden state of memory. 'hold': the last change as it was (the paper)."),
    ]
