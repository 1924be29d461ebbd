"""Shared test helpers: tiny real ComfyUI models and runs through the real KSampler node."""
from __future__ import annotations

import json

import torch

from tools.pack_calls import (TINY_MODELS, BlockCounter, adacache, ksample, load_tiny, moreg,  # noqa: F401 (re-exported)
                              session_of)


def random_wan_state_dict(seed: int = 0, model_class: str = "WanModel", **overrides) -> dict[str, torch.Tensor]:
    """State dict of one of ComfyUI's own Wan model classes at a tiny size, randomly initialised."""
    import comfy.ldm.wan.model
    import comfy.ldm.wan.model_animate
    import comfy.ops

    cfg = dict(model_type="t2v", dim=128, ffn_dim=256, num_heads=1, num_layers=4, in_dim=16, out_dim=16,
               text_dim=4096, freq_dim=256, cross_attn_norm=True) | overrides
    torch.manual_seed(seed)
    module = comfy.ldm.wan.model_animate if model_class == "AnimateWanModel" else comfy.ldm.wan.model
    model = getattr(module, model_class)(operations=comfy.ops.manual_cast, dtype=torch.float32, **cfg)
    for name, p in model.named_parameters():
        if p.ndim >= 2:
            torch.nn.init.normal_(p, std=0.05)
        elif "norm" in name:
            torch.nn.init.ones_(p)
        else:
            torch.nn.init.normal_(p, std=0.05)
    return model.state_dict()


def load_model_patcher(state_dict):
    """Load through ComfyUI's own loader, which detects the architecture from the tensors."""
    import comfy.sd

    return comfy.sd.load_diffusion_model_state_dict(state_dict)


def conditioning(tokens: int = 4, seed: int = 0, batch: int = 1):
    g = torch.Generator().manual_seed(seed)
    return [[torch.randn(batch, tokens, 4096, generator=g), {}]]


def relative_error(out: torch.Tensor, reference: torch.Tensor) -> float:
    """||out - reference|| / ||reference|| (L2 over the whole tensor)."""
    return ((out - reference).norm() / reference.norm()).item()


def sample_one_by_one(model, positive, negative, noise: torch.Tensor, steps: int, cfg: float) -> tuple[torch.Tensor, list]:
    """(the batch sampled at once, each video of it sampled alone) from the same noise, through
    comfy.sample.sample (the function KSampler calls) with the noise given explicitly."""
    import comfy.sample

    def sample(n):
        return comfy.sample.sample(model, n, steps, cfg, "euler", "simple", positive, negative, torch.zeros_like(n), seed=0)

    return sample(noise), [sample(noise[i:i + 1]) for i in range(noise.shape[0])]


def short_demo_prompt(steps: int) -> dict:
    """The demo workflow as an API prompt, both samplers (AdaCache and uncached) at ``steps`` on a 32x32x9 latent:
    a real graph that runs in seconds. Needs ComfyUI booted (the workflow is read with its node list)."""
    import json

    from tools import comfy_runtime
    from tools.workflow import ui_to_api

    prompt = ui_to_api(json.loads((comfy_runtime.REPO_ROOT / "workflows" / "adacache_demo_tiny_model.json").read_text()))
    for node in prompt.values():
        if node["class_type"] == "KSampler":
            node["inputs"]["steps"] = steps
        if node["class_type"] == "EmptyHunyuanLatentVideo":
            node["inputs"].update(width=32, height=32, length=9)
    return prompt


def sigmas_a_hair_apart(model, steps: int) -> torch.Tensor:
    """``steps`` sigmas 3e-5 apart (relative; the planner tells steps 1e-5 apart) at 30% of the schedule, then 0."""
    sigma = float(model.get_model_object("model_sampling").percent_to_sigma(0.3))
    return torch.tensor([sigma * (1 - 3e-5 * i) for i in range(steps)] + [0.0])


def stay_put_outputs(model, positive, negative, latent: torch.Tensor, sigmas: torch.Tensor, cfg: float = 5.0) -> list:
    """The model's denoised output at each sigma, always on the same noisy latent (a sampler that
    never moves), through the real CFGGuider and SamplerCustomAdvanced."""
    import comfy.samplers
    import nodes

    outputs = []

    def stay_put(model_k, x, sigmas, extra_args=None, callback=None, disable=None):
        s_in = x.new_ones([x.shape[0]])
        for sigma in sigmas[:-1]:
            outputs.append(model_k(x, sigma * s_in, **(extra_args or {})))
        return x

    m = nodes.NODE_CLASS_MAPPINGS
    guider = m["CFGGuider"].execute(model, positive, negative, cfg).args[0]
    noise = m["RandomNoise"].execute(0).args[0]
    m["SamplerCustomAdvanced"].execute(noise, guider, comfy.samplers.KSAMPLER(stay_put), sigmas, {"samples": latent})
    return outputs


def assert_reuse_reproduces(outputs: list, computed: list, reused: tuple[int, ...]) -> None:
    """Computed steps equal bitwise; reused ones within 0.5% of the output's largest value: the sigmas
    differ a hair, which moves the output by at most 1.2e-3 of it (Mochi; 1e-6 to 5e-4 for the other
    families), while a residual put back wrongly, or an addition counted twice, is off by several percent.
    (Residuals barely move here, so this cannot check the forecast's extrapolation: test_patch_model.py
    does, by hand, at sigmas far apart.)"""
    for step, (out, ref) in enumerate(zip(outputs, computed, strict=True)):
        if step in reused:
            error = ((out - ref).abs().max() / ref.abs().max()).item()
            assert error < 5e-3, f"reused step {step}: off by {error:.2e} of the output's largest value"
        else:
            assert torch.equal(out, ref), f"computed step {step}"


class ProbeResidualRecorder:
    """Records a block's residual by plain forward hooks, independently of the pack.

    ``after`` None: the whole block's (output - input). Otherwise ``after`` is the module the block
    calls first after adding its gated self-attention residual (Wan: ``norm3``, LTX: ``attn2``):
    the stream entering it minus the block's input is that residual.
    """

    def __init__(self, block, after=None):
        self.block, self.after, self.residuals, self._input = block, after, [], None

    def __enter__(self):
        self.handles = [self.block.register_forward_pre_hook(self._block_input, with_kwargs=True)]
        if self.after is None:
            self.handles.append(self.block.register_forward_hook(lambda m, a, kw, out: self.residuals.append(out - self._input),
                                                                 with_kwargs=True))
        else:
            self.handles.append(self.after.register_forward_pre_hook(lambda m, a: self.residuals.append(a[0] - self._input)))
        return self

    def _block_input(self, module, args, kwargs):
        self._input = kwargs.get("x", args[0] if args else None).clone()  # blocks may update it in place

    def __exit__(self, *exc):
        for handle in self.handles:
            handle.remove()


def launch_ranks(script, world: int, extra_args, tmp_path, timeout_s: float, out_name: str = "rank{}.out") -> list:
    """Run ``world`` ranks of ``script RANK WORLD PORT OUT *extra_args(rank, OUT)`` on a free local port.

    Fails clearly (with the ranks' logs) on an error or a deadlock; returns the ranks' OUT paths.
    """
    import os
    import socket
    import subprocess
    import sys
    import time

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = os.environ | {"OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    procs, logs, outs = [], [], []
    for rank in range(world):
        outs.append(tmp_path / out_name.format(rank))
        logs.append(open(tmp_path / f"rank{rank}.log", "w"))
        procs.append(subprocess.Popen([sys.executable, str(script), str(rank), str(world), str(port), str(outs[-1]),
                                       *extra_args(rank, outs[-1])], stdout=logs[-1], stderr=subprocess.STDOUT, env=env))
    deadline = time.monotonic() + timeout_s
    try:
        for p in procs:
            p.wait(timeout=max(1.0, deadline - time.monotonic()))
    except subprocess.TimeoutExpired:
        pass
    finally:
        hung = [r for r, p in enumerate(procs) if p.poll() is None]
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
        for f in logs:
            f.close()
    tails = "\n".join(f"--- rank {r} ---\n" + (tmp_path / f"rank{r}.log").read_text()[-3000:] for r in range(world))
    assert not hung, f"ranks {hung} still running after {timeout_s} s (deadlock?)\n{tails}"
    assert all(p.returncode == 0 for p in procs), tails
    return outs


def lengths(codebook) -> tuple[int, ...]:
    """A codebook's reuse lengths, in threshold order."""
    return tuple(n for _, n in codebook.entries)


def run_data_json(trace) -> str:
    """A run's data as strict JSON (no NaN or Infinity: the inputs are range-checked)."""
    return json.dumps(trace.to_dict(), indent=1, allow_nan=False)


def needs_comfyui(workflow: str) -> None:
    """Skip where the running ComfyUI predates the nodes of the workflow's template (make_workflows' ``Spec.comfyui``):
    the suite's second run, on ComfyUI 0.20.1 (COMFYUI_PATH, tools/test.sh), checks it."""
    import pytest

    from families import comfy_version
    from tools import make_workflows

    def version(text: str) -> tuple[int, ...]:
        return tuple(int(part) for part in text.split(".")[:3])

    spec = make_workflows.WORKFLOWS.get(workflow)
    if spec is not None and spec.comfyui and version(comfy_version()) < version(spec.comfyui):
        pytest.skip(f"{workflow} is built from a ComfyUI {spec.comfyui} template whose nodes ComfyUI {comfy_version()} "
                    f"lacks; it is checked on ComfyUI {spec.comfyui} (COMFYUI_PATH=../shared/third_party/comfyui-0.20.1)")
