"""Train the project's tiny video DiT (ComfyUI's Wan 2.1 architecture) on synthetic latent videos.

Why: no real weights can be downloaded here, and a random model has no denoising trajectory, so
AdaCache's adaptivity and MoReg could not be tested. This model learns, by rectified flow exactly as
ComfyUI samples Wan (flow model, timestep = sigma * 1000, velocity target eps - x0), to generate
16-channel latent videos of blobs over a textured background whose motion depends on the prompt
class (static, slow, fast, orbit).

Two recipes, one per model (``--recipe``): ``motion``, the project's model that the pack is tuned
on, and ``heldout``, a model nobody tunes on, that differs in size (dim 256 in 6 blocks against 128
in 8) and in data (other speeds, a camera pan, wave textures, three blobs), so that claims about
untuned models can be checked on it.

A third recipe, ``clips``, trains on real content instead of blobs (tools/clip_video_data.py): one prompt
per animated preview of ComfyUI's video templates, many crops, windows and mirrors of each, so that the
first steps of sampling choose the layout as they do on real models.

Runs on the CPU, deterministic for a seed; writes into demo_models/ (STEM: tiny_wan21_motion or
tiny_wan21_heldout):
  STEM.safetensors          the model in fp16 (loads with ComfyUI's UNETLoader)
  STEM_prompts.safetensors  one fixed (tokens, 4096) embedding per class, "empty" included
  STEM.json                 config, classes, data settings, loss log

    .venv/bin/python tools/train_tiny_wan.py                      # about 30 minutes on 2 cores
    .venv/bin/python tools/train_tiny_wan.py --recipe heldout     # about 25 minutes on 2 cores
    .venv/bin/python tools/train_tiny_wan.py --recipe clips       # about 35 minutes on 2 cores
"""
from __future__ import annotations

import argparse
import json
import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch

sys.path.insert(1, str(Path(__file__).resolve().parent.parent))
from tools import comfy_runtime  # noqa: E402
from tools.clip_video_data import ClipData  # noqa: E402
from tools.tiny_video_data import HELDOUT_CLASSES, BlobData, VideoSpec, make_prompt_embeddings  # noqa: E402

BASE_CONFIG = dict(in_dim=16, out_dim=16, text_dim=4096, freq_dim=256, patch_size=(1, 2, 2), qk_norm=True,
                   cross_attn_norm=True, eps=1e-6)


@dataclass(frozen=True)
class Recipe:
    """One tiny model: its size, its data (made when training starts), where it is written, how long it trains."""

    stem: str
    model_config: dict
    data: Callable[[], BlobData | ClipData]
    prompt_seed: int
    steps: int


RECIPES = {
    "motion": Recipe("tiny_wan21_motion", BASE_CONFIG | dict(dim=128, ffn_dim=512, num_heads=1, num_layers=8),
                     lambda: BlobData(VideoSpec()), 1234, 1800),
    # ComfyUI detects Wan's head count as dim // 128: keep dim a multiple of 128
    "heldout": Recipe("tiny_wan21_heldout", BASE_CONFIG | dict(dim=256, ffn_dim=768, num_heads=2, num_layers=6),
                      lambda: BlobData(VideoSpec(blobs=3, classes=HELDOUT_CLASSES, texture="waves")), 4321, 1200),
    # real content: one prompt per animated template preview, many layouts each (tools/clip_video_data.py)
    "clips": Recipe("tiny_wan21_clips", BASE_CONFIG | dict(dim=256, ffn_dim=768, num_heads=2, num_layers=6),
                    ClipData, 2468, 1500),
}


def build_model(recipe: Recipe, seed: int):
    import comfy.ldm.wan.model as wan
    import comfy.ops

    torch.manual_seed(seed)
    model = wan.WanModel(model_type="t2v", operations=comfy.ops.manual_cast, dtype=torch.float32, **recipe.model_config)
    # ComfyUI's ops skip weight init (weights are meant to be loaded): initialise explicitly.
    for name, p in model.named_parameters():
        if name.endswith("modulation"):
            torch.nn.init.normal_(p, std=recipe.model_config["dim"] ** -0.5)
        elif p.ndim >= 2:
            torch.nn.init.xavier_uniform_(p.view(p.shape[0], -1))
        elif "norm" in name:  # zeroed q/k norms make attention uniform forever (gradients vanish)
            torch.nn.init.ones_(p)
        else:
            torch.nn.init.zeros_(p)
    torch.nn.init.zeros_(model.head.head.weight)  # start by predicting zero velocity
    return model


def shifted_sigmas(u: torch.Tensor, shift: float) -> torch.Tensor:
    """ComfyUI's flow time shift, so training sees noise levels where the sampler spends its steps."""
    return shift * u / (1 + (shift - 1) * u)


def save_fixture(model, prompts, recipe: Recipe, data, args, loss_log) -> None:
    from safetensors.torch import save_file

    args.out.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().to(torch.float16).contiguous() for k, v in model.state_dict().items()}
    save_file(state, str(args.out / f"{recipe.stem}.safetensors"))
    save_file({k: v.to(torch.float16).contiguous() for k, v in prompts.items()},
              str(args.out / f"{recipe.stem}_prompts.safetensors"))
    meta = {
        "model_config": {k: list(v) if isinstance(v, tuple) else v for k, v in recipe.model_config.items()},
        "classes": {c.name: c.describe() for c in data.classes},
        "prompt_classes": list(prompts),
        "video": data.describe(),
        "training": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items() if k not in ("out", "checkpoint_every", "threads")},
        "torch": torch.__version__,
        "loss_log": loss_log,
    }
    (args.out / f"{recipe.stem}.json").write_text(json.dumps(meta, indent=1))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--recipe", choices=sorted(RECIPES), default="motion")
    ap.add_argument("--steps", type=int, default=None, help="training steps (default: the recipe's)")
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--shift", type=float, default=5.0, help="time shift of the training noise levels")
    ap.add_argument("--empty-prob", type=float, default=0.1, help="share of samples trained on the empty prompt")
    ap.add_argument("--out", type=Path, default=comfy_runtime.TINY_MODEL_DIR)
    ap.add_argument("--checkpoint-every", type=int, default=0, help="also write the fixture every N steps")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    recipe = RECIPES[args.recipe]
    args.steps = args.steps or recipe.steps

    comfy_runtime.boot()
    torch.set_num_threads(args.threads)
    torch.use_deterministic_algorithms(True)
    data = recipe.data()
    prompts = make_prompt_embeddings(seed=recipe.prompt_seed, classes=data.classes)
    model = build_model(recipe, args.seed).train()
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=0.01)
    gen = torch.Generator().manual_seed(args.seed)
    warmup = 100
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda i: min(1.0, (i + 1) / warmup) * 0.5 * (1 + math.cos(math.pi * min(i, args.steps) / args.steps)))
    loss_log, running, t0 = [], 0.0, time.time()
    for step in range(args.steps):
        x0, labels = data.sample_batch(args.batch, gen)
        context = torch.stack([prompts[data.classes[i].name] for i in labels])
        drop = torch.rand(args.batch, generator=gen) < args.empty_prob
        context[drop] = prompts["empty"]
        eps = torch.randn(x0.shape, generator=gen)
        sigma = shifted_sigmas(torch.rand(args.batch, generator=gen), args.shift)
        s = sigma.view(-1, 1, 1, 1, 1)
        xt = (1 - s) * x0 + s * eps
        pred = model(xt, sigma * 1000.0, context)
        loss = torch.nn.functional.mse_loss(pred, eps - x0)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        running += loss.item()
        if (step + 1) % 50 == 0:
            loss_log.append({"step": step + 1, "loss": round(running / 50, 5), "seconds": round(time.time() - t0, 1)})
            print(loss_log[-1], flush=True)
            running = 0.0
        if args.checkpoint_every and (step + 1) % args.checkpoint_every == 0:
            save_fixture(model, prompts, recipe, data, args, loss_log)  # lets a long run be looked at early

    save_fixture(model, prompts, recipe, data, args, loss_log)
    print(f"wrote {args.out}/{recipe.stem}.* in {time.time() - t0:.0f}s")


if __name__ == "__main__":
    main()
