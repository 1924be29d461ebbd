"""Per-model knowledge, as data: where a DiT's blocks are and how its tokens form a video grid.

Adding a model is adding a row (and a test). Rows name ComfyUI classes by their class name so
that this module stays free of ComfyUI imports.
"""
from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class Architecture:
    """How to hook one family of diffusion transformers.

    name:          shown in logs and in the run data
    classes:       class names of ``model.diffusion_model`` this row applies to
    block_lists:   attribute names of the block lists, in execution order, with the key under
                   which the model looks up a per-block replacement in patches_replace["dit"]
    stream:        key of the hidden-state stream in the replacement's args/return dict
    patch_size:    attribute holding the (frames, height, width) patch size; None if not a video grid
    """

    name: str
    classes: tuple[str, ...]
    block_lists: tuple[tuple[str, str], ...]
    stream: str = "img"
    patch_size: str | None = "patch_size"

    def token_grid(self, latent_shape: tuple[int, ...], patch: tuple[int, ...]) -> tuple[int, int, int] | None:
        """(frames, height, width) in tokens for a (B, C, T, H, W) latent, or None if unknown."""
        if len(latent_shape) != 5 or len(patch) != 3:
            return None
        return tuple(math.ceil(n / p) for n, p in zip(latent_shape[2:], patch))  # type: ignore[return-value]


ARCHITECTURES: tuple[Architecture, ...] = (
    Architecture(
        name="Wan 2.1 / 2.2",
        # CameraWanModel runs its blocks exactly as WanModel; VACE adds hints between blocks
        # and S2V/Animate/HuMo inject audio or faces between blocks, which a skipped span cannot
        # reproduce, so they are not listed (they get the unsupported-model warning).
        classes=("WanModel", "CameraWanModel"),
        block_lists=(("blocks", "double_block"),),
    ),
)


def find_architecture(diffusion_model: object) -> Architecture | None:
    cls_name = type(diffusion_model).__name__
    for arch in ARCHITECTURES:
        if cls_name in arch.classes:
            return arch
    return None


def supported_names() -> list[str]:
    return [f"{a.name} ({', '.join(a.classes)})" for a in ARCHITECTURES]
