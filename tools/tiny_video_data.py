"""Synthetic latent videos for the tiny model: blobs over a textured background, moving by class.

Shared by the training script and the tests (which check that generated videos move as trained).
Videos live in the model's latent space (what the DiT sees after the latent format's process_in):
16 channels, roughly unit scale.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch


@dataclass(frozen=True)
class MotionClass:
    name: str
    speed: float  # latent pixels per latent frame
    pattern: str  # "linear", "orbit", or "pan" (the whole picture, background included, slides: a camera pan)

    def describe(self) -> dict:
        return asdict(self)


MOTION_CLASSES = (
    MotionClass("static", 0.0, "linear"),
    MotionClass("slow", 0.7, "linear"),
    MotionClass("fast", 2.0, "linear"),
    MotionClass("orbit", 1.8, "orbit"),
)
# The held-out model's data (tools/train_tiny_wan.py --recipe heldout): other speeds, a camera pan.
HELDOUT_CLASSES = (
    MotionClass("static", 0.0, "linear"),
    MotionClass("slow", 0.4, "linear"),
    MotionClass("fast", 2.6, "linear"),
    MotionClass("pan", 1.2, "pan"),
)


@dataclass(frozen=True)
class VideoSpec:
    channels: int = 16
    frames: int = 9
    height: int = 16
    width: int = 16
    blobs: int = 2
    prompt_tokens: int = 8
    classes: tuple[MotionClass, ...] = MOTION_CLASSES
    texture: str = "smooth"  # "smooth": bicubic low-frequency noise; "waves": a few periodic plane waves (can pan)

    def describe(self) -> dict:
        return asdict(self)


def make_prompt_embeddings(seed: int, tokens: int = 8, dim: int = 4096,
                           classes: tuple[MotionClass, ...] = MOTION_CLASSES) -> dict[str, torch.Tensor]:
    """One fixed (tokens, dim) embedding per class, plus the all-zero "empty" prompt for CFG."""
    g = torch.Generator().manual_seed(seed)
    out = {c.name: torch.randn(tokens, dim, generator=g) for c in classes}
    out["empty"] = torch.zeros(tokens, dim)
    return out


def _periodic_offset(coord: torch.Tensor, centre: torch.Tensor, size: int) -> torch.Tensor:
    return torch.remainder(coord - centre + size / 2, size) - size / 2


def class_colour(cls: MotionClass, channels: int, classes: tuple[MotionClass, ...] = MOTION_CLASSES) -> torch.Tensor:
    """Each class also has its own blob colour family (as a prompt names both what and how it
    moves): a cue that is quick to learn, so the model learns early to read its prompt."""
    index = [c.name for c in classes].index(cls.name)
    base = torch.randn(channels, generator=torch.Generator().manual_seed(100 + index))
    return base / base.norm()


def _waves(spec: VideoSpec, g: torch.Generator):
    """A periodic texture of a few plane waves, as a function of (y, x) offsets: it can slide smoothly."""
    c, h, w = spec.channels, spec.height, spec.width
    waves = [(torch.randint(-2, 3, (2,), generator=g).tolist(), torch.rand(1, generator=g).item() * 2 * math.pi,
              torch.randn(c, 1, 1, generator=g) * 0.35) for _ in range(4)]
    ys = torch.arange(h, dtype=torch.float32).view(h, 1)
    xs = torch.arange(w, dtype=torch.float32).view(1, w)

    def at(dy: float, dx: float) -> torch.Tensor:
        out = torch.zeros(c, h, w)
        for (ky, kx), phase, amplitude in waves:
            out += amplitude * torch.sin(2 * math.pi * (ky * (ys - dy) / h + kx * (xs - dx) / w) + phase)
        return out

    return at


def sample_video(spec: VideoSpec, cls: MotionClass, g: torch.Generator) -> torch.Tensor:
    """One (C, F, H, W) video: static low-frequency texture plus blobs that move on a torus."""
    c, f, h, w = spec.channels, spec.frames, spec.height, spec.width
    pan_angle = torch.rand(1, generator=g).item() * 2 * math.pi if cls.pattern == "pan" else 0.0
    pan = [(cls.speed * t * math.sin(pan_angle), cls.speed * t * math.cos(pan_angle)) if cls.pattern == "pan" else (0.0, 0.0)
           for t in range(f)]
    if spec.texture == "waves":
        texture = _waves(spec, g)
        video = torch.stack([texture(dy, dx) for dy, dx in pan], dim=1)
    else:
        coarse = torch.randn(1, c, 4, 4, generator=g) * 0.6
        background = torch.nn.functional.interpolate(coarse, size=(h, w), mode="bicubic", align_corners=False)[0]
        video = background.unsqueeze(1).repeat(1, f, 1, 1)
    ys = torch.arange(h, dtype=torch.float32).view(h, 1)
    xs = torch.arange(w, dtype=torch.float32).view(1, w)
    for _ in range(spec.blobs):
        colour = class_colour(cls, c, spec.classes) + 0.5 * torch.randn(c, generator=g) / c**0.5
        colour = colour / colour.norm() * 4.0
        radius = 1.5 + torch.rand(1, generator=g).item()
        y0, x0 = (torch.rand(2, generator=g) * torch.tensor([h, w])).tolist()
        angle = torch.rand(1, generator=g).item() * 2 * math.pi
        for t in range(f):
            if cls.pattern == "orbit":
                r = 2.5
                omega = cls.speed / r
                cy, cx = y0 + r * math.sin(angle + omega * t), x0 + r * math.cos(angle + omega * t)
            elif cls.pattern == "pan":
                cy, cx = y0 + pan[t][0], x0 + pan[t][1]
            else:
                cy, cx = y0 + cls.speed * t * math.sin(angle), x0 + cls.speed * t * math.cos(angle)
            d2 = _periodic_offset(ys, torch.tensor(cy), h) ** 2 + _periodic_offset(xs, torch.tensor(cx), w) ** 2
            video[:, t] += colour.view(c, 1, 1) * torch.exp(-d2 / (2 * radius**2))
    return video


class BlobData:
    """The blob videos of ``spec`` as a training data source: its classes and random batches."""

    def __init__(self, spec: VideoSpec):
        self.spec = spec
        self.classes = spec.classes

    def sample_batch(self, batch: int, g: torch.Generator) -> tuple[torch.Tensor, list[int]]:
        labels = torch.randint(len(self.classes), (batch,), generator=g).tolist()
        return torch.stack([sample_video(self.spec, self.classes[i], g) for i in labels]), labels

    def describe(self) -> dict:
        return {k: v for k, v in self.spec.describe().items() if k != "classes"}


def latent_motion(video: torch.Tensor) -> float:
    """How much a (B, C, F, H, W) latent video changes from frame to frame, relative to its size."""
    step = (video[:, :, 1:] - video[:, :, :-1]).abs().mean()
    return (step / video.abs().mean().clamp_min(1e-8)).item()
