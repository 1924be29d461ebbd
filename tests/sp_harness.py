"""A sequence-parallel engine in miniature, for the tests: ComfyUI's real Wan model on sharded tokens.

It does what an SP engine (xDiT / Raylight style) does, through ComfyUI's own hooks and without
copying the model's forward:

* ``patches_replace["dit"]`` entries chained OUTSIDE AdaCache's hooks (installed after the node):
  block 0 takes this rank's contiguous slice of the image tokens, every block gets the matching
  slice of the rope frequencies, and the last block all_gathers the tokens back, so the head and
  unpatchify run on the full sequence on every rank;
* ``transformer_options["optimized_attention_override"]``: self-attention all_gathers K and V, so
  attention over this rank's queries equals full attention (cross-attention is left alone).

Run as a script it is one rank of a test: ``python sp_harness.py RANK WORLD PORT OUT PLANS_JSON`` (see main).
"""
from __future__ import annotations

import json
import os
import sys
from datetime import timedelta
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
LATENT = (1, 16, 5, 8, 8)  # 5 latent frames of 8x8: a 5x4x4 token grid (patch 1x2x2), 80 tokens
TOKENS = 5 * 4 * 4
STEPS = 8
SETTINGS = dict(preset="custom", custom_codebook="0.1:3, 0.2:2, 10.0:1")  # attention-probe distances 0.05-0.53
MOREG = dict(motion_scale=0.2, motion_power=2.0, motion_divisor=1.0, gradient_weight=1.0, frame_strides="1, 2",
             window_start=0.0, window_end=1.0)


def _gather(t: torch.Tensor, sizes: list[int], group=None) -> torch.Tensor:
    """All ranks' slices of ``t`` along dim 1, padded to one size for all_gather, then cut and joined."""
    import torch.distributed as dist

    longest = max(sizes)
    pad = list(t.shape)
    pad[1] = longest - t.shape[1]
    padded = torch.cat([t, t.new_zeros(pad)], dim=1).contiguous()
    parts = [torch.empty_like(padded) for _ in sizes]
    dist.all_gather(parts, padded, group=group)
    return torch.cat([p[:, :n] for p, n in zip(parts, sizes)], dim=1)


class ShardedBlock:
    """One block's replacement in the miniature engine; chains the replacement installed before it."""

    def __init__(self, engine: "Engine", index: int, previous):
        self.engine, self.index, self.previous = engine, index, previous

    def __call__(self, args: dict, extra: dict) -> dict:
        e = self.engine
        sliced = dict(args)
        if self.index == 0:
            assert args["img"].shape[1] == sum(e.sizes), "block 0 sees the full sequence"
            sliced["img"] = e.shard(args["img"])
        e.text_tokens = args["txt"].shape[1]
        sliced["pe"] = e.shard(args["pe"])  # rope freqs, (batch, tokens, ...)
        if e.sizes[e.rank] == 0:
            extra = {**extra, "original_block": e.empty_block}
        out = self.previous(sliced, extra) if self.previous is not None else extra["original_block"](sliced)
        assert out["img"].shape[1] == e.sizes[e.rank]
        if self.index == e.last:
            out = {**out, "img": _gather(out["img"], e.sizes, e.group)}
        return out


class Engine:
    """Shards the token stream of a patched Wan model over a process group (None: the default one)."""

    def __init__(self, sizes: list[int], rank: int, num_blocks: int, group=None):
        self.sizes, self.rank, self.last, self.group = sizes, rank, num_blocks - 1, group
        self.start = sum(sizes[:rank])
        self.text_tokens = None
        self.self_attention_calls = 0

    def shard(self, t: torch.Tensor) -> torch.Tensor:
        return t[:, self.start: self.start + self.sizes[self.rank]]

    def empty_block(self, args: dict) -> dict:
        """A block on an empty shard. ComfyUI's Wan block cannot reshape zero tokens (apply_rope1), so
        this rank only joins the other ranks' K and V gathers, with nothing, and returns its zero tokens."""
        x = args["img"]
        for _ in ("k", "v"):
            _gather(x.new_zeros(x.shape[0], 0, x.shape[2]), self.sizes, self.group)
        return {"img": x}

    def attention(self, func, q, k, v, *args, **kwargs):
        if k.shape[1] == q.shape[1]:  # self-attention: this rank's queries attend to every rank's keys
            assert self.text_tokens != self.sizes[self.rank], "shard as long as the text: ambiguous"
            self.self_attention_calls += 1
            k, v = _gather(k, self.sizes, self.group), _gather(v, self.sizes, self.group)
        return func(q, k, v, *args, **kwargs)

    def install(self, model):
        """Chain outside the hooks already on ``model`` (AdaCache's), as an SP engine loaded after it."""
        patched = model.clone()
        existing = patched.model_options.get("transformer_options", {}).get("patches_replace", {}).get("dit", {})
        for i in range(self.last + 1):
            patched.set_model_patch_replace(ShardedBlock(self, i, existing.get(("double_block", i))), "dit", "double_block", i)
        patched.model_options.setdefault("transformer_options", {})["optimized_attention_override"] = self.attention
        return patched


def base_model():
    import helpers as h

    return h.load_model_patcher(h.random_wan_state_dict(seed=0))


def moreg():
    import nodes

    return nodes.NODE_CLASS_MAPPINGS["AdaCacheMoRegSettings"].execute(**MOREG).args[0]


def sample(runtime, model, sizes: list[int] | None = None, rank: int = 0, group=None, **settings):
    """One KSampler run with AdaCache (MoReg on); on ``sizes`` shards when given. (latent, trace)."""
    import helpers as h

    patched = h.adacache(runtime, model, **(SETTINGS | {"moreg": moreg()} | settings))
    session = h.session_of(patched)
    engine = None
    if sizes is not None:
        engine = Engine(sizes, rank, len(model.get_model_object("diffusion_model").blocks), group)
        patched = engine.install(patched)
    out = h.ksample(patched, h.conditioning(seed=1), h.conditioning(seed=2), torch.zeros(LATENT), steps=STEPS, seed=3)
    if engine is not None and sizes[rank]:
        assert engine.self_attention_calls > 0
    return out, session.last_run


def summary(out, trace) -> dict:
    return {"latent": out, "computed": trace.computed_steps(), "notes": list(trace.notes),
            "decisions": [(d.step, d.reuse_length, d.next_step, d.change, d.motion, d.distance) for d in trace.decisions]}


def motion_check(sizes: list[int], rank: int, group=None, frames: int = 5, per_frame: int = 6, strides=(1, 2, 4),
                 dtype=torch.float32) -> list[float]:
    """AdaCache's sequence-parallel motion terms of a random sequence on ``sizes`` shards, summed."""
    import torch.distributed as dist

    from adacache_core import sequence_parallel

    tokens = torch.randn(2, frames * per_frame, 8, generator=torch.Generator().manual_seed(len(sizes))).to(dtype)
    start = sum(sizes[:rank])
    terms = sequence_parallel.Group(group).motion_terms(tokens[:, start:start + sizes[rank]], frames, per_frame, strides)
    flat = torch.stack([t for _, pair in terms for t in pair])
    dist.all_reduce(flat, group=group)
    return flat.tolist()


class CountedCollectives:
    """Counts (and passes on) the collectives of a run: all_reduce calls, and all_gathers of bytes
    (AdaCache's head exchange; the engine's own gathers carry float tokens)."""

    def __enter__(self):
        import torch.distributed as dist

        self.counts = {"all_reduce": 0, "all_gather_bytes": 0}
        self.saved = dist.all_reduce, dist.all_gather

        def all_reduce(tensor, *args, **kwargs):
            self.counts["all_reduce"] += 1
            return self.saved[0](tensor, *args, **kwargs)

        def all_gather(parts, tensor, *args, **kwargs):
            self.counts["all_gather_bytes"] += tensor.dtype == torch.uint8
            return self.saved[1](parts, tensor, *args, **kwargs)

        dist.all_reduce, dist.all_gather = all_reduce, all_gather
        return self

    def __exit__(self, *exc):
        import torch.distributed as dist

        dist.all_reduce, dist.all_gather = self.saved


def main() -> None:
    """One rank: every plan whose "ranks" include it, on the default group or a subgroup of those ranks.

    A plan on a subgroup registers it with ``sequence_parallel.use_group`` (the explicit setting);
    a plan on all ranks relies on the automatic detection.
    """
    rank, world, port, out_path, plans = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4], json.loads(sys.argv[5])
    torch.set_num_threads(1)
    sys.path.append(str(HERE.parent))  # appended: ComfyUI's `nodes` must win over the pack's
    sys.path.append(str(HERE))
    from tools import comfy_runtime

    runtime = comfy_runtime.boot()
    import torch.distributed as dist

    sequence_parallel = runtime.pack.adacache_core.sequence_parallel  # the module the node runs with

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=port)
    dist.init_process_group("gloo", rank=rank, world_size=world, timeout=timedelta(seconds=60))
    try:
        subgroups = {}
        for plan in plans.values():  # every rank creates every subgroup, in the same order
            ranks = tuple(plan.get("ranks", range(world)))
            if len(ranks) < world and ranks not in subgroups:
                subgroups[ranks] = dist.new_group(list(ranks))
        model = base_model()
        results = {}
        for name, plan in plans.items():
            ranks = tuple(plan.get("ranks", range(world)))
            if rank not in ranks:
                continue
            group = subgroups.get(ranks)
            sequence_parallel.use_group(group)
            try:
                if "motion_check" in plan:
                    results[name] = motion_check(plan["sizes"], ranks.index(rank), group, dtype=getattr(torch, plan["motion_check"]))
                    continue
                with CountedCollectives() as counted:
                    out, trace = sample(runtime, model, plan["sizes"], ranks.index(rank), group, **plan.get("settings", {}))
                results[name] = summary(out, trace) | {"collectives": counted.counts}
            finally:
                sequence_parallel.use_group(None)
        torch.save(results, out_path)
    finally:
        dist.destroy_process_group()


if __name__ == "__main__":
    main()
