"""`AdaCache Patch Model (Raylight)`: AdaCache on the models inside Raylight's Ray workers (multi-GPU)."""
from __future__ import annotations

import logging

from comfy_api.latest import io

from ..adacache_core import raylight_workers as workers
from ..adacache_core.checks import SettingsError
from ..adacache_core.config import settings_from_inputs
from ..adacache_core.searched_plan import SearchedPlan
from .patch_model import check_settings, plan_input, saved_widget_values, settings_inputs
from .types import RayActors, node_label

LOG = logging.getLogger("adacache")


class AdaCachePatchModelRaylight(io.ComfyNode):
    saved_widget_values = staticmethod(saved_widget_values)  # for tools/workflow.ui_to_api
    """The Patch Model's settings, sent as plain data to every Raylight worker (adacache_core/raylight_workers.py).

    Not a subclass of AdaCachePatchModel: ComfyUI's V3 nodes cache their schema's types on the class,
    and a subclass would inherit the parent's (MODEL where this outputs RAY_ACTORS).
    """

    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="AdaCachePatchModelRaylight",
            display_name="AdaCache Patch Model (Raylight)",
            category="AdaCache",
            description=(
                "AdaCache for Raylight (multi-GPU sequence parallel): installs AdaCache on the model in every Raylight "
                "worker. Put it between Ray Load Diffusion Model (or a LoRA/patch node that outputs RAY_ACTORS) and "
                "the Raylight sampler. Every GPU takes the same decisions, measured over all of them. It changes the "
                "workers' models in place (as Raylight's own patch nodes do): bypassing the node later does not take "
                "AdaCache off; reload the model, or set end_percent equal to start_percent, to sample without it."),
            inputs=[RayActors.Input("ray_actors", tooltip="Raylight's workers (RAY_ACTORS), with the model loaded."),
                    *settings_inputs(), plan_input()],
            outputs=[RayActors.Output(tooltip="The same workers, their models now with AdaCache; connect them to the "
                                              "Raylight sampler and to Cache Schedule Viewer.")],
            hidden=[io.Hidden.unique_id],
        )

    @classmethod
    def validate_inputs(cls, ray_actors=None, **inputs) -> bool | str:
        """``ray_actors`` arrives here only when typed in (through the API): never workers, refused before any Ray call."""
        if ray_actors is not None:
            try:
                workers.checked_workers(ray_actors)
            except SettingsError as e:
                return str(e)
        return check_settings(**inputs)

    @classmethod
    def execute(cls, ray_actors, moreg=None, plan: str | None = None, **settings) -> io.NodeOutput:
        """``settings``: AdaCache Patch Model's other inputs, by name (plain values, sent to the workers as they
        are, as is the plan's text). Bad settings or a plan for another model: refused before installing."""
        searched_plan = None if plan is None else SearchedPlan.from_text(plan)
        settings_from_inputs(**settings, moreg=moreg, searched_plan=searched_plan, num_blocks=None)
        if plan is not None:
            refusal = next(filter(None, workers.run_on_workers(ray_actors, "plan_refusal", plan)), None)
            if refusal is not None:
                raise SettingsError(refusal)
        workers.run_on_workers(ray_actors, "install", settings, workers.moreg_to_plain(moreg), node_label(cls), plan,
                               replace_model=True)
        states = workers.run_on_workers(ray_actors, "describe")
        unpatched = [state["reason"] for state in states if not state["patched"]]
        if unpatched:
            LOG.warning("AdaCache (Raylight): %s; the workers' models are left unpatched.", unpatched[0])
        return io.NodeOutput(ray_actors)
