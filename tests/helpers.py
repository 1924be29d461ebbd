"""Shared test helpers: tiny real ComfyUI models and runs through the real KSampler node."""
from __future__ import annotations

import torch


def random_wan_state_dict(seed: int = 0, model_class: str = "WanModel", **overrides) -> dict[str, torch.Tensor]:
    """State dict of one of ComfyUI's own Wan model classes at a tiny size, randomly initialised."""
    import comfy.ldm.wan.model
    import comfy.ldm.wan.model_animate
    import comfy.ops

    cfg = dict(model_type="t2v", dim=128, ffn_dim=256, num_heads=1, num_layers=4, in_dim=16, out_dim=16,
               text_dim=4096, freq_dim=256, cross_attn_norm=True) | overrides
    torch.manual_seed(seed)
    module = comfy.ldm.wan.model_animate if model_class == "AnimateWanModel" else comfy.ldm.wan.model
    model = getattr(module, model_class)(operations=comfy.ops.manual_cast, dtype=torch.float32, **cfg)
    for name, p in model.named_parameters():
        if p.ndim >= 2:
            torch.nn.init.normal_(p, std=0.05)
        elif "norm" in name:
            torch.nn.init.ones_(p)
        else:
            torch.nn.init.normal_(p, std=0.05)
    return model.state_dict()


def load_model_patcher(state_dict):
    """Load through ComfyUI's own loader, which detects the architecture from the tensors."""
    import comfy.sd

    return comfy.sd.load_diffusion_model_state_dict(state_dict)


def conditioning(tokens: int = 4, seed: int = 0, batch: int = 1):
    g = torch.Generator().manual_seed(seed)
    return [[torch.randn(batch, tokens, 4096, generator=g), {}]]


def ksample(model, positive, negative, latent: torch.Tensor, steps: int = 8, cfg: float = 5.0, seed: int = 0,
            sampler: str = "euler", scheduler: str = "simple") -> torch.Tensor:
    """Sample through ComfyUI's real KSampler node."""
    import nodes

    return nodes.KSampler().sample(model, seed, steps, cfg, sampler, scheduler, positive, negative,
                                   {"samples": latent}, denoise=1.0)[0]["samples"]


def adacache(runtime, model, **settings):
    """Apply the pack's `AdaCache Patch Model` node (the class ComfyUI registered) to ``model``."""
    import nodes

    node = nodes.NODE_CLASS_MAPPINGS["AdaCachePatchModel"]
    values = dict(preset="fast (paper, 30 steps)", custom_codebook="0.08:6, 1.0:1", probe_blocks="middle",
                  start_percent=0.0, end_percent=1.0, offload_cache=False, moreg=None) | settings
    return node.execute(model=model, **values).args[0]


def session_of(model):
    return model.model_options["transformer_options"].get("adacache")
