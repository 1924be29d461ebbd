"""What the pack's nodes share: the custom socket types they pass between each other, and the label
a patched model's runs carry."""
from comfy_api.latest import io

MoRegSettings = io.Custom("ADACACHE_MOREG")
RayActors = io.Custom("RAY_ACTORS")  # Raylight's workers (its own socket type)


def node_label(node_class, kind: str = "node") -> str:
    """The label of the runs a node patches: ``node 12`` by the node's id in the graph ("?" outside one)."""
    return f"{kind} {getattr(node_class.hidden, 'unique_id', None) or '?'}"
