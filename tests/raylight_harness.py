"""One rank of a Raylight multi-GPU run on CPU: Raylight's own parallel code, AdaCache on top.

Run as ``python raylight_harness.py RANK WORLD PORT OUT MODE MODEL...``; tests/test_raylight.py starts two.
Each rank does what a Raylight worker does with its model: in MODE ``ulysses`` Raylight's USP
injection (``USPInjectRegistry.inject`` as the ON_LOAD callback, as ``RayWorker.patch_usp`` adds it),
in MODE ``cfg`` its CFG-parallel wrapper (as ``RayWorker.patch_cfg``: each rank runs one branch),
in MODE ``fsdp`` the weights sharded with FSDP2 and each rank on its own seed (no reference run), then AdaCache installed through the same by-value function and core zip that the `AdaCache Patch
Model (Raylight)` node sends to a worker, then ComfyUI's KSampler. xFuser's groups are set up by
Raylight's ``initialize_xfuser_parallel`` with Ulysses or CFG degree WORLD (ring attention with the
TORCH_MATH backend is wrong on CPU, see ../shared/third_party/README.md). Rank 0 also samples
the same model in one process (no Raylight, ``sequence_parallel`` off) as the reference.

Shims this CPU run needs, all here (Raylight's files are read, never changed):
* those of tools/comfy_runtime.import_raylight (xFuser's envs answer device ``cpu`` and backend
  ``gloo``; ``torch.cuda.is_available`` is True only while Raylight is imported);
* ComfyUI 0.3.75 predates two attributes Raylight's Flux-family code reads (``yak_mlp`` of the
  single blocks, ``txt_norm`` of the model): set to what newer ComfyUI defaults them to;
* Raylight's bug at c049571, ``hunyuan_video/xdit_context_parallel.py``: a stray ``out["img"],``
  line in ``block_wrap`` raises KeyError whenever a ``dit`` replacement is installed. Its module is
  loaded again from its own source with that line joined to the next (``out["img"], out["txt"] =``).
"""
from __future__ import annotations

import json
import os
import sys
from datetime import timedelta
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
STEPS = 8
SETTINGS = dict(preset="custom", custom_codebook="0.2:3, 0.4:2, 10.0:1", probe_blocks="middle", start_percent=0.0,
                end_percent=1.0, offload_cache=False, target_speedup=0.0, probe_residual="block", reuse="hold")
MOREG = dict(scale=0.2, power=2.0, divisor=1.0, grad_mul=1.0, strides=[1, 2], window=[0.0, 1.0], calibration=None)
# per model: latent, text tokens, MoReg settings (it needs a video grid), probe blocks. Token counts
# that divide by the ranks, but one: with a pad token Raylight's own output differs from one
# process (the pad token takes part in attention), so only without it the output can be held to
# one process's.
CASES = {
    "Wan": ((1, 16, 5, 8, 8), 6, MOREG, "middle"),  # 5x4x4 = 80 image tokens
    # 5x3x3 = 45 image tokens: Raylight pads one, which AdaCache must leave out of its measurements
    "Wan padded": ((1, 16, 5, 6, 6), 6, MOREG, "middle"),
    # probes in both lists: the second sees 6 text + 64 image tokens split anew (rank 0: text and 29 image)
    "HunyuanVideo": ((1, 16, 4, 8, 8), 6, MOREG | {"scale": 0.6}, "1, 2"),
    "Chroma": ((1, 16, 8, 8), 6, None, "1, 2"),  # an image DiT whose single blocks are split anew too
}


def fix_hunyuan_block_wrap() -> None:
    """Raylight's HunyuanVideo bug (module docstring); its module can only be imported once xFuser is set up."""
    import importlib.machinery

    import raylight.diffusion_models.hunyuan_video.xdit_context_parallel as module

    stray = b'out["img"],\n                out["txt"] = block('
    if stray not in Path(module.__file__).read_bytes():
        return

    class JoinedLine(importlib.machinery.SourceFileLoader):
        def get_data(self, path):
            return super().get_data(path).replace(stray, b'out["img"], out["txt"] = block(')

    JoinedLine(module.__name__, module.__file__).exec_module(module)  # the module again, from the joined source


def build(name: str, text_tokens: int):
    """(model, positive, negative) of a tiny model of ComfyUI's own classes."""
    import families
    import helpers as h

    if name.startswith("Wan"):
        model = h.load_model_patcher(h.random_wan_state_dict(seed=0, dim=256, ffn_dim=256))  # 2 heads for Ulysses 2
        return model, h.conditioning(text_tokens, seed=1), h.conditioning(text_tokens, seed=2)
    family = families.FAMILIES[name]
    family = type(family)(**{**family.__dict__, "context": (text_tokens, family.context[1])})
    model = families.build(family, 0)
    diffusion_model = model.get_model_object("diffusion_model")
    for module in diffusion_model.modules():  # attributes newer ComfyUI has (module docstring)
        if type(module).__name__ == "SingleStreamBlock" and not hasattr(module, "yak_mlp"):
            module.yak_mlp = False
    if not hasattr(diffusion_model, "txt_norm"):
        diffusion_model.txt_norm = None
    return model, families.conditioning(family, 1), families.conditioning(family, 2)


def install_as_the_node_does(model, label: str, moreg: dict | None, **settings):
    """AdaCache on ``model`` through the by-value function and core zip that the Raylight node sends."""
    from ray import cloudpickle

    from adacache_core import raylight_workers as workers

    entry = cloudpickle.loads(cloudpickle.dumps(workers.by_value(workers.on_worker)))
    archive = cloudpickle.loads(cloudpickle.dumps(workers.core_archive()))
    return entry(model, archive, "install", SETTINGS | settings, moreg, label)


class Collectives:
    """Counts all_reduce calls and AdaCache's all_gathers (int64 lengths, uint8 heads) while active."""

    def __enter__(self):
        import torch.distributed as dist

        self.counts = {"all_reduce": 0, "all_gather_lengths": 0, "all_gather_heads": 0}
        self.saved = dist.all_reduce, dist.all_gather

        def all_reduce(tensor, *args, **kwargs):
            self.counts["all_reduce"] += 1
            return self.saved[0](tensor, *args, **kwargs)

        def all_gather(parts, tensor, *args, **kwargs):
            kind = {torch.int64: "all_gather_lengths", torch.uint8: "all_gather_heads"}.get(tensor.dtype)
            if kind:
                self.counts[kind] += 1
            return self.saved[1](parts, tensor, *args, **kwargs)

        dist.all_reduce, dist.all_gather = all_reduce, all_gather
        return self

    def __exit__(self, *exc):
        import torch.distributed as dist

        dist.all_reduce, dist.all_gather = self.saved


def summary(latent: torch.Tensor, model) -> dict:
    from adacache_core.comfy_bridge import session_of

    trace = session_of(model).last_run
    return {"latent": latent.flatten().tolist(), "computed": trace.computed_steps(), "notes": list(trace.notes),
            "decisions": [[d.step, d.reuse_length, d.change, d.motion, d.distance] for d in trace.decisions]}


def run_case(name: str, rank: int, parallelize, ksample) -> dict:
    """One model on this rank, split by Raylight (``parallelize``); on rank 0 also in one process."""
    shape, text_tokens, moreg, probes = CASES[name]
    model, positive, negative = build(name, text_tokens)
    sharded = model.clone()
    parallelize(sharded)
    sharded = install_as_the_node_does(sharded, f"rank {rank}", moreg, probe_blocks=probes)
    with Collectives() as counted:
        latent = ksample(sharded, positive, negative, torch.zeros(shape), steps=STEPS, seed=3)
    result = {"sharded": summary(latent, sharded) | counted.counts}
    if rank == 0:
        single = install_as_the_node_does(build(name, text_tokens)[0], "one process", moreg, probe_blocks=probes,
                                          sequence_parallel="off")
        result["single"] = summary(ksample(single, positive, negative, torch.zeros(shape), steps=STEPS, seed=3), single)
    return result


def run_fsdp_case(name: str, rank: int, world: int, ksample) -> dict:
    """Weights sharded with FSDP2 (as Raylight's FSDP mode shards them), each rank sampling its own seed
    (data parallel): every rank must still run the same blocks at every step, or FSDP's weight
    gathers would wait forever. AdaCache sees the DTensor weights and decides over all ranks."""
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.fsdp import fully_shard

    shape, text_tokens, moreg, probes = CASES[name]
    model, positive, negative = build(name, text_tokens)
    diffusion_model = model.get_model_object("diffusion_model")
    mesh = init_device_mesh("cpu", (world,))
    for block in diffusion_model.blocks:
        fully_shard(block, mesh=mesh)
    fully_shard(diffusion_model, mesh=mesh)
    patched = install_as_the_node_does(model, f"rank {rank}", moreg, probe_blocks=probes)
    with Collectives() as counted:
        latent = ksample(patched, positive, negative, torch.zeros(shape), steps=STEPS, seed=3 + rank)
    return {"sharded": summary(latent, patched) | counted.counts}


def main() -> None:
    rank, world, port, out_path, mode = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5]
    names = sys.argv[6:]
    torch.set_num_threads(1)
    sys.path.append(str(HERE.parent))  # appended: ComfyUI's `nodes` must win over the pack's
    sys.path.append(str(HERE))
    from tools import comfy_runtime

    comfy_runtime.boot()
    import torch.distributed as dist

    import comfy.patcher_extension
    import helpers as h

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=port)
    dist.init_process_group("gloo", rank=rank, world_size=world, timeout=timedelta(seconds=120))
    if mode == "fsdp":
        Path(out_path).write_text(json.dumps({name: run_fsdp_case(name, rank, world, h.ksample) for name in names}))
        dist.barrier()
        dist.destroy_process_group()
        return
    registry, initialize_xfuser_parallel = comfy_runtime.import_raylight()
    degrees = {"ulysses": dict(ulysses_degree=world, cfg_degree=1), "cfg": dict(ulysses_degree=1, cfg_degree=world),
               "cfg+ulysses": dict(ulysses_degree=world // 2, cfg_degree=2)}[mode]
    initialize_xfuser_parallel(rank, world, degrees | dict(ring_degree=1, pp_degree=1, is_xdit=True, attention="TORCH_MATH",
                                                           sync_ulysses=False))
    fix_hunyuan_block_wrap()
    from raylight.distributed_modules.cfg import CFGParallelInjectRegistry

    def parallelize(model) -> None:  # as RayWorker.patch_usp / patch_cfg
        if "ulysses" in mode:
            model.add_callback(comfy.patcher_extension.CallbacksMP.ON_LOAD, registry.inject)
        if "cfg" in mode:
            model.add_wrapper(comfy.patcher_extension.WrappersMP.DIFFUSION_MODEL, CFGParallelInjectRegistry.inject(model))

    results = {name: run_case(name, rank, parallelize, h.ksample) for name in names}
    Path(out_path).write_text(json.dumps(results))
    dist.barrier()
    dist.destroy_process_group()



class TinyWorker:
    """A Ray actor standing in for Raylight's RayWorker on CPU (RayWorker itself needs CUDA and NCCL).

    ``model_function_runner`` and ``model_function_runner_get_values`` are RayWorker's, line for
    line (tests/test_raylight.py checks them against Raylight's source); the model is a tiny Wan
    sampled as RayWorker.common_ksampler samples it (comfy.sample.sample).
    """

    def __init__(self, repo: str):
        sys.path.append(repo)
        sys.path.append(str(Path(repo) / "tests"))
        from tools import comfy_runtime

        comfy_runtime.boot()
        self.model = build("Wan", 6)[0]

    def model_function_runner(self, fn, *args, **kwargs):
        self.model = fn(self.model, *args, **kwargs)

    def model_function_runner_get_values(self, fn, *args, **kwargs):
        return fn(self.model, *args, **kwargs)

    def sample(self, seed: int) -> torch.Tensor:
        import helpers as h

        return h.ksample(self.model, h.conditioning(6, seed=1), h.conditioning(6, seed=2), torch.zeros(CASES["Wan"][0]),
                         steps=STEPS, seed=seed)

    def adacache_hooks_on_block_0(self) -> int:
        """How many AdaCache block hooks are chained on the first block (1: not stacked by a re-install)."""
        hook = self.model.model_options["transformer_options"]["patches_replace"]["dit"][("double_block", 0)]
        depth = 0
        while hook is not None and type(hook).__name__ == "_BlockHook":
            depth, hook = depth + 1, hook.previous
        return depth


if __name__ == "__main__":
    main()
