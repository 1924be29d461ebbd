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
                           tooltip="Which block's change decides when to compute: 'middle' (as the paper) or block numbers "
                                   "from 0, like '13' or '6, 20'. Leave it unless you experiment.")


def probe_residual_input() -> io.Combo.Input:
    """The probe residual input, shared with AdaCache Calibrate."""
    return io.Combo.Input("probe_residual", options=list(PROBE_RESIDUALS), default=DEFAULT_PROBE_RESIDUAL, optional=True,
                           tooltip="What the probe watches: 'block' (default), the whole block; 'attention', the paper's own "
                                   "probe (Wan, LTX-Video, PixArt), which computes more steps with the same preset.")


class AdaCachePatchModel(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="AdaCachePatchModel",
            display_name="AdaCache Patch Model",
            category="AdaCache",
            description=(
                "Speeds up video diffusion transformers by reusing the model's work on some sampling steps "
                "(AdaCache, arXiv 2411.02397). Put it between the model loader (and LoRAs) and the sampler.\n\n"
                "target_speedup is the speed knob: 2 computes about half of the steps, planned from the sampler's "
                "step sizes; 0 turns the knob off and the preset's codebook decides after each computed step how "
                "long to reuse (the paper's adaptive schedule, where MoReg Settings act). 'reuse: forecast' "
                "continues the last change on a skipped step; 'hold' keeps it as it was.\n\n"
                f"Supported models: {', '.join(supported_names())}. Other models pass through unpatched with a "
                "warning that says why. Details: docs/how_it_works.md."),
            inputs=[
                io.Model.Input("model", tooltip="The model to speed up, from the loader (after LoRAs). An unsupported model "
                                                "passes through unchanged, with a warning saying why."),
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
                       tooltip="Only when target_speedup is 0: how long the paper's schedule reuses, from fastest to "
                               "slowest (most faithful); 'custom' uses custom_codebook."),
        io.String.Input("custom_codebook", default=DEFAULT_CUSTOM_CODEBOOK,
                        tooltip="Only for preset 'custom': 'threshold:steps' pairs, thresholds ascending. Bigger numbers "
                                "reuse longer: faster, less faithful."),
        probe_blocks_input(),
        io.Float.Input("start_percent", default=0.0, min=0.0, max=1.0, step=0.01,
                       tooltip="Reuse may start at this point of the sampling (0 = first step). Raise it to compute all "
                               "early steps, which set the layout."),
        io.Float.Input("end_percent", default=1.0, min=0.0, max=1.0, step=0.01,
                       tooltip="Reuse stops at this point (1 = last step). Lower it to compute the final detail steps. "
                               "Equal to start_percent: AdaCache off."),
        io.Boolean.Input("offload_cache", default=False,
                         tooltip="On: keep the cache in system RAM instead of VRAM. Saves a little VRAM, costs a copy on "
                                 "each reused step."),
        io.Float.Input("target_speedup", default=DEFAULT_SPEEDUP, min=0.0, max=MAX_SPEEDUP, step=0.25, optional=True,
                       tooltip="The speed knob: 2 runs the model on half the steps. Up = faster, down = more faithful. "
                               "1 or less: every step runs, as without AdaCache. 0: off, the preset decides."),
        MoRegSettings.Input("moreg", optional=True,
                            tooltip="Optional MoReg Settings: computes more steps when the video moves. Acts only with "
                                    "target_speedup 0."),
        io.Combo.Input("sequence_parallel", options=list(SEQUENCE_PARALLEL_MODES), default="auto", optional=True,
                       tooltip="Only for one video split over several GPUs (Raylight, xDiT): keeps all GPUs' decisions "
                               "the same. Leave it on 'auto'; 'always' for image models. On one GPU it does nothing."),
        probe_residual_input(),
        io.Combo.Input("reuse", options=list(REUSE_MODES), default=DEFAULT_REUSE, optional=True,
                       tooltip="What a skipped step uses: 'forecast' (default) continues the last change, sharper at the "
                               "same speed; 'hold' keeps it as it was (the paper), a little less memory."),
    ]
