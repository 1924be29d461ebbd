"""Quality against the unpatched run, one definition for all: PSNR as AdaCache Plan Search scores it
(adacache_core.measures.psnr: the peak is the reference's value range, identical tensors give inf), SSIM from
kornia (a ComfyUI dependency).
"""
from __future__ import annotations

import kornia.metrics
import torch

from adacache_core.measures import psnr  # noqa: F401  (the benchmarks' PSNR is the search's)


def ssim(a: torch.Tensor, b: torch.Tensor) -> float:
    """Mean SSIM of two (N, H, W, C) image batches in [0, 1] (11x11 Gaussian window, sigma 1.5)."""
    return kornia.metrics.ssim(a.movedim(-1, 1).float(), b.movedim(-1, 1).float(), window_size=11).mean().item()
