"""What the method measures and how it turns it into a step: norm terms of the change and the
motion score, MoReg's factor, the next computed step (pure functions).

Norm terms are returned as (numerator, denominator) pairs of 0-dim float32 tensors, not ratios,
so that terms from several calls (cond and uncond run separately) or several ranks (sequence
parallel) can be summed before dividing: the result then equals the norm over the whole tensor,
as in the paper's code, however the work was split.
"""
from __future__ import annotations

import math

import torch

from .codebooks import Codebook
from .moreg_settings import MoRegConfig


def l1(x: torch.Tensor) -> torch.Tensor:
    """L1 norm of a whole tensor, accumulated in float32 (bf16 sums lose small changes)."""
    return torch.linalg.vector_norm(x.flatten(), ord=1, dtype=torch.float32)


def change_terms(now: torch.Tensor, prev: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Terms of the relative change ||now - prev||_1 / ||prev||_1."""
    return l1(now - prev.to(now.device, now.dtype)), l1(prev)


def motion_terms(tokens: torch.Tensor, frames: int, strides: tuple[int, ...]) -> list[tuple[int, tuple[torch.Tensor, torch.Tensor]]]:
    """Per stride s, ``(s, terms)`` of ||r[f+s] - r[f]||_1 / (||r[f+s]||_1 + ||r[f]||_1) over all frames f.

    ``tokens`` is (batch, frames * tokens_per_frame, channels), frame-major as video DiTs
    flatten their (frames, height, width) grid. Strides at or beyond the frame count add nothing.
    """
    b, n, c = tokens.shape
    video = tokens.reshape(b, frames, n // frames, c)
    terms = []
    for s in strides:
        if s >= frames:
            continue
        later, earlier = video[:, s:], video[:, :-s]
        terms.append((s, (l1(later - earlier), l1(later) + l1(earlier))))
    return terms


def ratio(num: float, den: float) -> float:
    return num / den if den > 0 else 0.0


def moreg_factor(motion: float, cfg: MoRegConfig, scale: float) -> float:
    """MoReg's factor for a motion score, ``scale`` being the score that counts as normal here."""
    return ((motion / scale) ** cfg.power) / cfg.divisor


def next_computed_step(step: int, distance: float, codebook: Codebook) -> tuple[int, int]:
    """(reuse length, next computed step) after a computed ``step`` with this per-step distance."""
    length = codebook.lookup(distance)
    return length, step + length


def psnr(test: torch.Tensor, reference: torch.Tensor) -> float:
    """How close ``test`` is to ``reference``, in dB (inf when identical). The peak is the reference's value
    range: latents are not in [0, 1]. The score of AdaCache Plan Search, and of the benchmarks."""
    test, reference = test.float(), reference.float()
    if torch.equal(test, reference):
        return math.inf
    peak = (reference.max() - reference.min()).item()
    return (10.0 * torch.log10(peak ** 2 / torch.mean((test - reference) ** 2))).item()
