"""What the pack's nodes share: the custom socket types they pass between each other, and the label
a patched model's runs carry."""
from comfy_api.latest import io

MoRegSettings = io.Custom("ADACACHE_MOREG")
RayActors = io.Custom("RAY_ACTORS")  # Raylight's workers (its own socket type)


def node_label(node_class, kind: str = "node") -> str:
    """The label of the runs a node patches: ``node 12`` by the node's id in the graph ("?" outside one)."""
    return f"{kind} {getattr(node_class.hidden, 'unique_id', None) or '?'}"


def check_sampling_choices(sampler_name=None, scheduler=None, reuse=None) -> None:
    """Refuse a sampler, scheduler or reuse mode that is not one of the choices (typed through the API:
    ComfyUI does not check these lists for the pack's sampling nodes before they run)."""
    import comfy.samplers

    from ..adacache_core.checks import SettingsError, shown
    from ..adacache_core.config import REUSE_MODES

    for name, value, options in (("sampler_name", sampler_name, comfy.samplers.KSampler.SAMPLERS),
                                 ("scheduler", scheduler, comfy.samplers.KSampler.SCHEDULERS),
                                 ("reuse", reuse, REUSE_MODES)):
        if value is not None and value not in options:
            shown_options = ", ".join(options) if len(options) <= 8 else ", ".join(options[:8]) + ", ..."
            raise SettingsError(f"{name}: {shown(value)} is not one of the choices ({shown_options})")
