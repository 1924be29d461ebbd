"""Latent videos cut from real generated clips: the training data of the ``clips`` tiny model.

Why: the blob models learn videos whose layout is fixed by the prompt's class, so their early steps
decide little and are cheap to reuse. On real models the early steps choose the composition. Here each
prompt is one animated preview that ships in ComfyUI's video workflow-templates package (clips made by
real Wan, HunyuanVideo, LTX-Video and Mochi models), and every training sample is a random crop, time
window and mirror of it: a prompt has many plausible layouts, and the sampler's first steps pick one.

No VAE weights can be had here, so the "latent" is a fixed, invertible stand-in: each latent pixel is a
2x2 patch of RGB (12 values, pixel-unshuffle) mixed into 16 channels by a fixed orthonormal matrix and
scaled to unit variance; a latent frame is every ``FRAME_STRIDE``-th frame of the clip.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np
import torch

FRAME_STRIDE = 3  # clip frames per latent frame (Wan's VAE packs 4)
PATCH = 2  # RGB pixels per latent pixel, each way
MIX_SEED = 77


@dataclass(frozen=True)
class Clip:
    """One prompt: an animated template preview, its frames as a (F, 3, H, W) float tensor in [-1, 1]."""

    name: str
    frames: torch.Tensor

    def describe(self) -> dict:
        return {"name": self.name, "frames": int(self.frames.shape[0]), "motion": round(frame_motion(self.frames), 4)}


def frame_motion(frames: torch.Tensor) -> float:
    """Mean absolute change from one kept frame to the next, relative to the mean absolute value."""
    kept = frames[::FRAME_STRIDE]
    return ((kept[1:] - kept[:-1]).abs().mean() / kept.abs().mean().clamp_min(1e-8)).item()


def template_previews() -> list[tuple[str, object]]:
    """(stem, path) of every animated preview in the workflow-templates video package, sorted by name."""
    import importlib.resources

    root = importlib.resources.files("comfyui_workflow_templates_media_video") / "templates"
    return sorted((p.name.removesuffix(".webp"), p) for p in root.iterdir() if p.name.endswith(".webp"))


def load_clip(name: str, path, size: int, min_frames: int) -> Clip | None:
    """The preview's frames, the short side resized to ``size`` and centre-cropped square; None for a still
    or a clip shorter than ``min_frames``."""
    from PIL import Image, ImageSequence

    with Image.open(path) as image:
        if getattr(image, "n_frames", 1) < min_frames:
            return None
        frames = []
        for frame in ImageSequence.Iterator(image):
            rgb = frame.convert("RGB")
            w, h = rgb.size
            side = min(w, h)
            rgb = rgb.crop(((w - side) // 2, (h - side) // 2, (w - side) // 2 + side, (h - side) // 2 + side))
            frames.append(np.asarray(rgb.resize((size, size), Image.BICUBIC), dtype=np.float32))
    video = torch.from_numpy(np.stack(frames)).permute(0, 3, 1, 2) / 127.5 - 1.0
    return Clip(name, video)


@dataclass(frozen=True)
class ClipSpec:
    """The ``clips`` data: latent size and how much a sample may move around inside its clip."""

    channels: int = 16
    frames: int = 9
    height: int = 16
    width: int = 16
    margin: int = 8  # RGB pixels each clip is larger than the crop, each way: how far layouts move
    prompt_tokens: int = 8

    def describe(self) -> dict:
        return {"channels": self.channels, "frames": self.frames, "height": self.height, "width": self.width,
                "margin": self.margin, "frame_stride": FRAME_STRIDE, "patch": PATCH, "source": "template previews"}


class ClipData:
    """The clips as prompts, and random crops, windows and mirrors of them as latent videos."""

    def __init__(self, spec: ClipSpec = ClipSpec()):
        self.spec = spec
        size = spec.height * PATCH + spec.margin
        need = (spec.frames - 1) * FRAME_STRIDE + 1
        clips = [load_clip(name, path, size, need) for name, path in template_previews()]
        self.classes: tuple[Clip, ...] = tuple(c for c in clips if c is not None)
        if not self.classes:
            raise RuntimeError("no animated preview found in comfyui_workflow_templates_media_video")

    @cached_property
    def mix(self) -> torch.Tensor:
        """(channels, 12) orthonormal columns: RGB patches into latent channels (pinv = transpose)."""
        g = torch.Generator().manual_seed(MIX_SEED)
        q, _ = torch.linalg.qr(torch.randn(self.spec.channels, 3 * PATCH * PATCH, generator=g))
        return q

    @cached_property
    def scale(self) -> float:
        """One number that brings the latents to unit standard deviation (measured on centre crops)."""
        return 1.0 / torch.cat([self.encode(self._cut(c, 0, 0, 0, False)).flatten() for c in self.classes]).std().item()

    def encode(self, rgb: torch.Tensor, scaled: bool = False) -> torch.Tensor:
        """(F, 3, H, W) RGB in [-1, 1] -> (C, F, H/2, W/2) latent."""
        patches = torch.nn.functional.pixel_unshuffle(rgb, PATCH)  # (F, 12, h, w)
        latent = torch.einsum("cp,fphw->cfhw", self.mix, patches)
        return latent * self.scale if scaled else latent

    def decode(self, latent: torch.Tensor) -> torch.Tensor:
        """(C, F, h, w) latent -> (F, 3, H, W) RGB in [-1, 1]: to look at what the model makes."""
        patches = torch.einsum("cp,cfhw->fphw", self.mix, latent / self.scale)
        return torch.nn.functional.pixel_shuffle(patches, PATCH).clamp(-1, 1)

    def _cut(self, clip: Clip, start: int, dy: int, dx: int, mirror: bool) -> torch.Tensor:
        s = self.spec
        window = clip.frames[start: start + (s.frames - 1) * FRAME_STRIDE + 1: FRAME_STRIDE]
        crop = window[:, :, dy: dy + s.height * PATCH, dx: dx + s.width * PATCH]
        return crop.flip(-1) if mirror else crop

    def sample_video(self, clip: Clip, g: torch.Generator) -> torch.Tensor:
        """One (C, F, H, W) latent video: a random time window, crop position and mirror of ``clip``."""
        s = self.spec
        last_start = clip.frames.shape[0] - ((s.frames - 1) * FRAME_STRIDE + 1)
        start = int(torch.randint(last_start + 1, (1,), generator=g))
        dy, dx = (int(v) for v in torch.randint(s.margin + 1, (2,), generator=g))
        mirror = bool(torch.rand(1, generator=g) < 0.5)
        return self.encode(self._cut(clip, start, dy, dx, mirror), scaled=True)

    def sample_batch(self, batch: int, g: torch.Generator) -> tuple[torch.Tensor, list[int]]:
        labels = torch.randint(len(self.classes), (batch,), generator=g).tolist()
        return torch.stack([self.sample_video(self.classes[i], g) for i in labels]), labels

    def describe(self) -> dict:
        return self.spec.describe() | {"scale": self.scale}
