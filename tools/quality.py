"""Quality against the unpatched run: PSNR and SSIM from kornia (a ComfyUI dependency), one definition for all.

PSNR's peak is the reference's value range (latents are not in [0, 1]); identical tensors give inf.
"""
from __future__ import annotations

import math

import kornia.metrics
import torch


def psnr(test: torch.Tensor, ref: torch.Tensor) -> float:
    test, ref = test.float(), ref.float()
    if torch.equal(test, ref):
        return math.inf
    return kornia.metrics.psnr(test, ref, max_val=(ref.max() - ref.min()).item()).item()


def ssim(a: torch.Tensor, b: torch.Tensor) -> float:
    """Mean SSIM of two (N, H, W, C) image batches in [0, 1] (11x11 Gaussian window, sigma 1.5)."""
    return kornia.metrics.ssim(a.movedim(-1, 1).float(), b.movedim(-1, 1).float(), window_size=11).mean().item()
