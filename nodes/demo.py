"""Demo nodes for the bundled tiny model, so a real workflow runs headless with no downloads.

They live in their own category: they exist to show and test the pack, not for real videos.
"""
from __future__ import annotations

from pathlib import Path

import torch
from comfy_api.latest import io

import comfy.latent_formats

DEMO_MODELS = Path(__file__).resolve().parent.parent / "demo_models"
TINY_MODEL = "tiny_wan21_motion.safetensors"
PROMPTS_FILE = DEMO_MODELS / "tiny_wan21_motion_prompts.safetensors"
DEMO_CATEGORY = "AdaCache/demo (tiny model)"
MOTIONS = ["static", "slow", "fast", "orbit", "empty"]


def load_prompt(name: str) -> torch.Tensor:
    from safetensors.torch import load_file

    prompts = load_file(str(PROMPTS_FILE))
    if name not in prompts:
        raise ValueError(f"motion: {name!r} is not one of {sorted(prompts)}")
    return prompts[name].float().unsqueeze(0)


class DemoPrompt(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="AdaCacheDemoPrompt",
            display_name="AdaCache Demo Prompt (tiny model)",
            category=DEMO_CATEGORY,
            description="The tiny demo model's 'text encoder': a fixed embedding per motion class it was trained on.",
            inputs=[io.Combo.Input("motion", options=MOTIONS, default="fast",
                                   tooltip="Which motion the tiny model should generate; 'empty' is the unconditional prompt for CFG.")],
            outputs=[io.Conditioning.Output(tooltip="Conditioning for the tiny Wan 2.1 demo model.")],
        )

    @classmethod
    def execute(cls, motion: str) -> io.NodeOutput:
        return io.NodeOutput([[load_prompt(motion), {}]])


def latent_to_rgb(samples: torch.Tensor) -> torch.Tensor:
    """(B, C, F, H, W) Wan latents -> (B*F, H, W, 3) images through the latent format's RGB factors."""
    fmt = comfy.latent_formats.Wan22() if samples.shape[1] == 48 else comfy.latent_formats.Wan21()
    if samples.shape[1] != len(fmt.latent_rgb_factors):
        raise ValueError(f"samples: {samples.shape[1]}-channel latents are not Wan latents (16 or 48 channels)")
    factors = torch.tensor(fmt.latent_rgb_factors, dtype=torch.float32)
    bias = torch.tensor(fmt.latent_rgb_factors_bias, dtype=torch.float32)
    frames = samples.float().movedim(1, -1)  # B, F, H, W, C
    rgb = (frames @ factors + bias + 1.0) / 2.0
    return rgb.clamp(0, 1).flatten(0, 1)


class DemoLatentPreview(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="AdaCacheDemoLatentPreview",
            display_name="AdaCache Demo Latent Preview",
            category=DEMO_CATEGORY,
            description="Shows video latents as images without a VAE (the latent format's RGB projection, as ComfyUI's previews).",
            inputs=[io.Latent.Input("samples", tooltip="Video latents from the sampler."),
                    io.Int.Input("scale", default=8, min=1, max=32, tooltip="Pixel size of one latent cell in the preview.")],
            outputs=[io.Image.Output(tooltip="One image per latent frame.")],
        )

    @classmethod
    def execute(cls, samples: dict, scale: int) -> io.NodeOutput:
        images = latent_to_rgb(samples["samples"])
        images = images.repeat_interleave(scale, dim=1).repeat_interleave(scale, dim=2)
        return io.NodeOutput(images)
