"""ComfyUI-AdaCache: adaptive caching (AdaCache, arXiv 2411.02397) for video diffusion transformers."""
from .nodes import comfy_entrypoint

__all__ = ["comfy_entrypoint"]
