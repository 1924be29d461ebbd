"""ComfyUI-AdaCache: adaptive caching (AdaCache, arXiv 2411.02397) for video diffusion transformers."""
from .nodes import comfy_entrypoint

WEB_DIRECTORY = "./web"  # front-end extension: the viewer's summary text on the node

__all__ = ["WEB_DIRECTORY", "comfy_entrypoint"]
