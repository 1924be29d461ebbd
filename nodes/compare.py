"""`AdaCache Compare`: what the speed-up changed, at a glance: the uncached and the AdaCache result side by side.

The artist runs the uncached branch once (ComfyUI keeps its output while its inputs stay the same) and turns
the knob: only the AdaCache branch runs again, and this node says in one sentence how far it moved.
"""
from __future__ import annotations

import math

import numpy as np
import torch
from comfy_api.latest import io, ui

from ..adacache_core import SettingsError
from ..adacache_core.measures import psnr

SHOWN_FRAMES = 4  # rows of the picture: frames spread over the video
DIFFERENCE_GAIN = 8.0  # the difference picture is |uncached - AdaCache| times this: small changes become visible
# Where the sentence changes (PSNR in dB and SSIM of the frames): 40 dB and more is beyond what the eye tells apart
# in a still frame; under 30 dB, or where structure differs, changes show.
SAME, SMALL = (40.0, 0.98), (30.0, 0.90)


def verdict(frames_psnr: float, frames_ssim: float) -> str:
    """One plain sentence for a PSNR and SSIM of decoded frames."""
    if frames_psnr >= SAME[0] and frames_ssim >= SAME[1]:
        return "The same to the eye."
    if frames_psnr >= SMALL[0] and frames_ssim >= SMALL[1]:
        return "Small differences in fine detail; look at the difference picture."
    return "Visible changes: compare the frames (lower target_speedup for a result closer to the uncached one)."


def frame_ssim(test: torch.Tensor, reference: torch.Tensor) -> float:
    """Mean SSIM over frames of two (frames, H, W, C) image batches in [0, 1] (kornia's, 11 px Gaussian window)."""
    from kornia.metrics import ssim

    window = max(3, min(11, *test.shape[1:3]) // 2 * 2 - 1)  # odd, and no larger than a small frame
    a, b = (x.float().movedim(-1, 1) for x in (test, reference))
    return ssim(a, b, window_size=window).mean().item()


def side_by_side(uncached: torch.Tensor, adacache: torch.Tensor) -> torch.Tensor:
    """One (1, H', W', 3) picture: for frames spread over the video, uncached | AdaCache | amplified difference."""
    picks = np.unique(np.linspace(0, uncached.shape[0] - 1, min(SHOWN_FRAMES, uncached.shape[0])).round().astype(int))
    rows = []
    for i in picks:
        a, b = uncached[i, ..., :3].float(), adacache[i, ..., :3].float()
        difference = ((a - b).abs() * DIFFERENCE_GAIN).clamp(0, 1)
        gap = torch.ones(a.shape[0], max(2, a.shape[1] // 32), 3)
        rows.append(torch.cat([a, gap, b, gap, difference], dim=1))
    pad = torch.ones(max(2, rows[0].shape[0] // 32), rows[0].shape[1], 3)
    picture = torch.cat([r for row in rows for r in (row, pad)][:-1], dim=0)
    return picture.unsqueeze(0)


def check_pair(uncached, adacache) -> None:
    """Refuse two results that cannot be compared, naming both shapes."""
    for name, images in (("uncached", uncached), ("adacache", adacache)):
        if not isinstance(images, torch.Tensor) or images.ndim != 4:
            raise SettingsError(f"{name}: connect decoded frames (an IMAGE output, such as VAE Decode's)")
    if uncached.shape != adacache.shape:
        raise SettingsError(f"adacache: {tuple(adacache.shape[:3])} (frames, height, width) differs from uncached "
                            f"{tuple(uncached.shape[:3])}; compare two runs of the same latent size and seed")


class AdaCacheCompare(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="AdaCacheCompare",
            display_name="AdaCache Compare",
            category="AdaCache",
            description=(
                "Shows what the speed-up changed: the uncached and the AdaCache result side by side, with their "
                "difference amplified 8x (black: no change), and one sentence: the same to the eye, small differences "
                "in fine detail, or visible changes. PSNR and SSIM back the sentence.\n\n"
                "Sample the same latent, prompt and seed twice, once with the model from the loader and once with "
                "AdaCache Patch Model's, decode both and connect them here. ComfyUI keeps the uncached result while its "
                "inputs stay the same: turn target_speedup and only the AdaCache branch runs again."),
            inputs=[
                io.Image.Input("uncached", tooltip="The decoded frames of the run without AdaCache."),
                io.Image.Input("adacache", tooltip="The decoded frames of the same run with AdaCache."),
                io.Latent.Input("uncached_latent", optional=True,
                                tooltip="Optional: the uncached sampler's latent, for the PSNR of the latents too."),
                io.Latent.Input("adacache_latent", optional=True,
                                tooltip="Optional: the AdaCache sampler's latent, for the PSNR of the latents too."),
            ],
            outputs=[io.Image.Output(display_name="comparison", tooltip="Uncached | AdaCache | difference x8."),
                     io.String.Output(display_name="verdict", tooltip="The sentence, then PSNR and SSIM.")],
            is_output_node=True,
        )

    @classmethod
    def execute(cls, uncached, adacache, uncached_latent=None, adacache_latent=None) -> io.NodeOutput:
        check_pair(uncached, adacache)
        frames_psnr = psnr(adacache, uncached)
        frames_ssim = frame_ssim(adacache, uncached)
        lines = [verdict(frames_psnr, frames_ssim),
                 f"frames: PSNR {_db(frames_psnr)}, SSIM {frames_ssim:.4f} (1 = identical)"]
        if uncached_latent is not None and adacache_latent is not None:
            a, b = (x.get("samples") if isinstance(x, dict) else None for x in (uncached_latent, adacache_latent))
            if not isinstance(a, torch.Tensor) or not isinstance(b, torch.Tensor) or a.shape != b.shape:
                raise SettingsError("adacache_latent: connect the two samplers' latents (the same shape) or neither")
            lines.append(f"latents: PSNR {_db(psnr(b, a))}")
        text = "\n".join(lines)
        picture = side_by_side(uncached, adacache)
        return io.NodeOutput(picture, text, ui={**ui.PreviewImage(picture, cls=cls).as_dict(), "text": (text,)})


def _db(value: float) -> str:
    return "identical" if math.isinf(value) else f"{value:.1f} dB"
