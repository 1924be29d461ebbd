"""Calling the pack's nodes and ComfyUI's KSampler from Python, on the project's tiny models: what the tests and
the benchmarks share (tests/helpers.py re-exports it; the benchmarks import it from here, not from tests/)."""
from __future__ import annotations

import torch


def ksample(model, positive, negative, latent: torch.Tensor, steps: int = 8, cfg: float = 5.0, seed: int = 0,
            sampler: str = "euler", scheduler: str = "simple") -> torch.Tensor:
    """Sample through ComfyUI's real KSampler node."""
    import nodes

    return nodes.KSampler().sample(model, seed, steps, cfg, sampler, scheduler, positive, negative,
                                   {"samples": latent}, denoise=1.0)[0]["samples"]


def adacache(runtime, model, **settings):
    """Apply the pack's `AdaCache Patch Model` node (the class ComfyUI registered) to ``model``.

    Unless ``settings`` say otherwise, the paper's method: the preset's codebook decides (the speed
    knob off) and reused steps hold. The node's own defaults are tested by name (test_speed_knob.py).
    """
    import nodes

    node = nodes.NODE_CLASS_MAPPINGS["AdaCachePatchModel"]
    values = dict(preset="paper: fastest (fast, 30 steps)", custom_codebook="0.08:6, 1.0:1", probe_blocks="middle",
                  start_percent=0.0, end_percent=1.0, offload_cache=False, moreg=None, target_speedup=0.0,
                  reuse="hold") | settings
    return node.execute(model=model, **values).args[0]


def moreg(**overrides):
    """Settings from the pack's `MoReg Settings` node: the paper's defaults, with ``overrides`` by input name."""
    import nodes

    values = dict(motion_scale=0.385, motion_power=8.0, motion_divisor=1.0, gradient_weight=10.0, frame_strides="1",
                  window_start=0.1, window_end=0.9) | overrides
    return nodes.NODE_CLASS_MAPPINGS["AdaCacheMoRegSettings"].execute(**values).args[0]


# The project's trained tiny models (tools/train_tiny_wan.py): fixture stem and motion classes from
# the stillest to the fastest (by their data's frame-to-frame change; tools/tiny_video_data.py).
TINY_MODELS = {"motion": ("tiny_wan21_motion", ("static", "slow", "orbit", "fast")),
               "heldout": ("tiny_wan21_heldout", ("static", "slow", "fast", "pan")),
               # real content (tools/clip_video_data.py): one clip of each family the templates show, still to fast
               "clips": ("tiny_wan21_clips", ("ltxv_text_to_video-1", "mochi_text_to_video_example-1",
                                              "text_to_video_wan-1", "video_hunyuan_video_1.5_720p_t2v-1"))}


def load_tiny(name: str):
    """(ModelPatcher loaded by ComfyUI's own loader, {class: conditioning}, unconditional conditioning)."""
    import comfy.sd
    from safetensors.torch import load_file

    from tools import comfy_runtime

    stem, classes = TINY_MODELS[name]
    model = comfy.sd.load_diffusion_model(str(comfy_runtime.TINY_MODEL_DIR / f"{stem}.safetensors"))
    prompts = load_file(str(comfy_runtime.TINY_MODEL_DIR / f"{stem}_prompts.safetensors"))
    conds = {c: [[prompts[c].float().unsqueeze(0), {}]] for c in classes}
    return model, conds, [[prompts["empty"].float().unsqueeze(0), {}]]


def session_of(model):
    return model.model_options["transformer_options"].get("adacache")


class BlockCounter:
    """Counts real executions of a model's blocks while entered (forward hooks, removed on exit)."""

    def __init__(self, model_patcher):
        self.blocks = model_patcher.model.diffusion_model.blocks
        self.count = 0

    def __enter__(self):
        self.count = 0
        self.handles = [b.register_forward_hook(self._hit) for b in self.blocks]
        return self

    def _hit(self, *_):
        self.count += 1

    def __exit__(self, *exc):
        for handle in self.handles:
            handle.remove()
