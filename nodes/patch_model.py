"""`AdaCache Patch Model`: put it between the model loader and the sampler."""
from __future__ import annotations

from comfy_api.latest import io

from ..adacache_core import AdaCacheConfig, SettingsError
from ..adacache_core.architectures import supported_names
from ..adacache_core.config import PATCH_SETTINGS, settings_from_inputs
from ..adacache_core.comfy_bridge import patch_model
from ..adacache_core.searched_plan import SearchedPlan
from .types import MoRegSettings, node_label

# How each setting of config.PATCH_SETTINGS shows on the node, in the node's order: the speed knob first, then
# the paper's settings, which act only at knob 0 (their labels say so). Each entry: the tooltip, for numbers the
# widget's step, the label where it differs from the name. Workflows saved in the order before keep their values
# (saved_widget_values, and web/saved_workflows.js in the front end).
WIDGETS = {
    "target_speedup": dict(step=0.25,
                           tooltip="The speed knob: 2 runs the model on half the steps. Up = faster, down = more faithful. "
                                   "1 or less: every step runs, as without AdaCache. 0: off, the preset decides."),
    "reuse": dict(
                  tooltip="What a skipped step uses: 'forecast' (default) continues the last change, sharper; "
                          "'hold' keeps it as it was (the paper): softer, but steadier as you turn the speed down."),
    "preset": dict(tooltip="Only when target_speedup is 0: how long the paper's schedule reuses, from fastest to "
                           "slowest (most faithful); 'custom' uses custom_codebook."),
    "custom_codebook": dict(tooltip="Only for preset 'custom': 'threshold:steps' pairs, thresholds ascending. Bigger numbers "
                                    "reuse longer: faster, less faithful."),
    "probe_blocks": dict(tooltip="Which block's change decides when to compute: 'middle' (as the paper) or block numbers "
                                 "from 0, like '13' or '6, 20'. Leave it unless you experiment."),
    "probe_residual": dict(
                           tooltip="What the probe watches: 'block' (default), the whole block; 'attention', the paper's own "
                                   "probe (Wan, LTX-Video, PixArt), which computes more steps with the same preset."),
    "start_percent": dict(step=0.01, tooltip="Reuse may start at this point of the sampling (0 = first step). Raise it to "
                                             "compute all early steps, which set the layout."),
    "end_percent": dict(step=0.01, tooltip="Reuse stops at this point (1 = last step). Lower it to compute the final detail "
                                           "steps. Equal to start_percent: AdaCache off."),
    "offload_cache": dict(tooltip="On: keep the cache in system RAM instead of VRAM. Saves a little VRAM, costs a copy on "
                                  "each reused step."),
    "sequence_parallel": dict(
                              tooltip="Only for one video split over several GPUs (Raylight, xDiT): keeps all GPUs' decisions "
                                      "the same. Leave it on 'auto'; 'always' for image models. On one GPU it does nothing."),
}
# The widget order of workflows saved before the knob came first (their first value is the preset's name).
WIDGET_ORDER_BEFORE_KNOB_FIRST = ("preset", "custom_codebook", "probe_blocks", "start_percent", "end_percent",
                                  "offload_cache", "target_speedup", "sequence_parallel", "probe_residual", "reuse")
# The paper's adaptive schedule's settings: they choose steps only with the knob at 0, and their labels say so.
KNOB_0_ONLY = ("preset", "custom_codebook", "probe_blocks", "probe_residual")
MOREG_INPUT_AFTER = "preset"  # the MoReg Settings socket sits after this widget (it acts at knob 0 too)


def saved_widget_values(values: list) -> list:
    """A saved Patch Model's widget values in today's order (what web/saved_workflows.js does in the front end).

    Workflows saved before the knob came first start with the preset's name; the values are moved to
    their settings' new places, and a setting the file predates takes its default, as it did on load before.
    """
    if not values or not isinstance(values[0], str):
        return values
    saved = dict(zip(WIDGET_ORDER_BEFORE_KNOB_FIRST, values))
    return [saved[name] if name in saved else PATCH_SETTINGS[name].default for name in WIDGETS]


def setting_input(name: str, optional: bool = True, label: str | None = None):
    """The node input of one Patch Model setting: type, default and range from config.PATCH_SETTINGS.

    Optional, so that the node's widgets keep the order of WIDGETS (the front end puts required widgets
    before optional ones) and an input left out of an API prompt takes its default.
    Shared with AdaCache Calibrate (probe_blocks, probe_residual: a calibration is only valid for its probe).
    """
    setting, widget = PATCH_SETTINGS[name], WIDGETS[name] | {"optional": optional, "display_name": label}
    if setting.options is not None:
        return io.Combo.Input(name, options=list(setting.options), default=setting.default, **widget)
    if setting.bounds is not None:
        low, high = setting.bounds
        return io.Float.Input(name, default=setting.default, min=low, max=high, **widget)
    if isinstance(setting.default, bool):
        return io.Boolean.Input(name, default=setting.default, **widget)
    return io.String.Input(name, default=setting.default, **widget)


class AdaCachePatchModel(io.ComfyNode):
    saved_widget_values = staticmethod(saved_widget_values)  # for tools/workflow.ui_to_api
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="AdaCachePatchModel",
            display_name="AdaCache Patch Model",
            category="AdaCache",
            description=(
                "Speeds up video diffusion transformers by reusing the model's work on some sampling steps "
                "(AdaCache, arXiv 2411.02397). Put it between the model loader (and LoRAs) and the sampler.\n\n"
                "target_speedup is the speed knob: 2 computes about half of the steps; the first fifth of the run, "
                "where the picture's layout is set, is skipped last. 0 turns the knob off and the preset's codebook decides after each computed step how "
                "long to reuse (the paper's adaptive schedule, where MoReg Settings act). 'reuse: forecast' "
                "continues the last change on a skipped step; 'hold' keeps it as it was. A 'plan' from AdaCache Plan "
                "Search makes the knob skip the steps found least harmful on this model.\n\n"
                f"Supported models: {', '.join(supported_names())}. Other models pass through unpatched with a "
                "warning that says why. Details: docs/how_it_works.md."),
            inputs=[
                io.Model.Input("model", tooltip="The model to speed up, from the loader (after LoRAs). An unsupported model "
                                                "passes through unchanged, with a warning saying why."),
                *settings_inputs(),
                plan_input(),
            ],
            outputs=[io.Model.Output(tooltip="The model with AdaCache; connect it to KSampler / SamplerCustomAdvanced.")],
            hidden=[io.Hidden.unique_id],
        )

    @classmethod
    def validate_inputs(cls, **inputs) -> bool | str:
        return check_settings(**inputs)

    @classmethod
    def execute(cls, model, moreg=None, plan: str | None = None, **settings) -> io.NodeOutput:
        """``settings``: the other inputs by name (config.PATCH_SETTINGS); one left out takes its default."""
        searched_plan = None if plan is None else SearchedPlan.from_text(plan)

        def config_for(num_blocks: int) -> AdaCacheConfig:
            return settings_from_inputs(**settings, moreg=moreg, searched_plan=searched_plan, num_blocks=num_blocks)

        patched, _ = patch_model(model, config_for, label=node_label(cls))
        return io.NodeOutput(patched)


def check_settings(**inputs) -> bool | str:
    """Refuse bad settings when the prompt is queued, before anything runs.

    Only widget values arrive here (linked inputs do not). The model is not known yet, so probe
    blocks are checked for their form here and against the model's real block count in execute.
    """
    values = {k: v for k, v in inputs.items() if k in PATCH_SETTINGS and v is not None}
    try:
        # typed in (through the API); a linked plan is checked in execute. Checked with the knob and reuse typed here
        # (a plan searched for 'hold' on a 'forecast' node, or a plan at knob 0): known before anything runs.
        plan = None if inputs.get("plan") is None else SearchedPlan.from_text(inputs["plan"])
        settings_from_inputs(**values | {"offload_cache": False}, moreg=None, num_blocks=None,
                             searched_plan=plan if "reuse" in values else None)  # a linked reuse is known in execute
    except SettingsError as e:
        return str(e)
    return True


def plan_input() -> io.String.Input:
    """The optional ``plan`` socket (after the settings: saved workflows keep their widget values)."""
    return io.String.Input("plan", optional=True, force_input=True,
                           tooltip="Optional: the plan of AdaCache Plan Search on this model. The speed knob then "
                                   "skips the steps the search found least harmful. Only for the steps and "
                                   "scheduler it searched with.")


def settings_inputs() -> list:
    """AdaCache Patch Model's settings (every input but the model), shared with its Raylight variant."""
    inputs = []
    for name in WIDGETS:
        inputs.append(setting_input(name, label=f"{name} (knob 0)" if name in KNOB_0_ONLY else None))
        if name == MOREG_INPUT_AFTER:
            inputs.append(MoRegSettings.Input("moreg", optional=True,
                                              tooltip="Optional MoReg Settings: computes more steps when the video moves. "
                                                      "Acts only with target_speedup 0."))
    return inputs
