"""The ComfyUI bridge: installs AdaCache on a clone of a ModelPatcher through official hooks.

The only modules of the core that import ``comfy`` are this one and session.py; ``import adacache_core``
loads neither.

Hooks (all on the clone; the input MODEL and the loaded torch model are never touched):
  * OUTER_SAMPLE and APPLY_MODEL wrappers: the session's (session.py): a fresh run state per sampling
    run, and per model call the step, compute or reuse, timing;
  * ``patches_replace["dit"]`` per block: on computed steps runs the block (and any replacement
    installed before ours) and measures the probe blocks; on reused steps the first block of each
    block list returns its input plus the cached residual of that list and the others pass through
    (block_spans.py).
  * models whose forward offers no per-block replacement (Cosmos 1 and Predict2, HiDream, Lumina 2):
    the same per-block hook, reached by shadowing each block's ``forward`` for the length of one
    sampling call (forward_override.py, installed and removed by the OUTER_SAMPLE wrapper). Side
    blocks (VACE's hint blocks, Animate's face blocks) are reached the same way and silenced on reused steps.
"""
from __future__ import annotations

import torch

import comfy.patcher_extension

from .architectures import SideBlocks, find_architecture, supported_names, unsupported_reason
from .block_spans import list_bounds
from .session import AdaCacheSession, warn_once

OPTIONS_KEY = "adacache"


class _BlockHook:
    """``patches_replace["dit"]`` entry for one block; chains a replacement installed before it."""

    def __init__(self, session: AdaCacheSession, index: int, previous=None):
        self.session = session
        self.index = index
        self.previous = previous

    def __call__(self, args: dict, extra: dict) -> dict:
        session = self.session
        call = session.call
        if call is not None and not call.computes:
            return session.spans.reuse_block(self.index, call, args)
        before = None if call is None else session.spans.before_block(self.index, call, args)
        with session.attention_probe(self.index, call, args) as attention:
            out = self.previous(args, extra) if self.previous is not None else extra["original_block"](args)
        if call is not None:
            session.spans.after_block(self.index, call, before, out, args.get("transformer_options", {}), attention)
        return out


class _SideBlockHook:
    """Hook for a side block (:class:`SideBlocks`): runs it on computed steps, silences it on reused ones."""

    def __init__(self, session: AdaCacheSession, spec: SideBlocks):
        self.session = session
        self.spec = spec

    def __call__(self, args: dict, extra: dict) -> dict:
        call = self.session.call
        if call is None or call.computes:
            return extra["original_block"](args)
        like = next(v for v in args.values() if isinstance(v, torch.Tensor))
        return {name: like.new_zeros(()) if name in self.spec.zeroed else args[name] for name in self.spec.returns}


def without_adacache(model):
    """``model`` without AdaCache: a clone with every AdaCache hook and wrapper taken off, or ``model``
    itself when it has none. Replacements installed before AdaCache's stay (its hooks chain them)."""
    if session_of(model) is None:
        return model
    clone = model.clone()
    options = clone.model_options.setdefault("transformer_options", {})
    options.pop(OPTIONS_KEY, None)
    replaced = options.get("patches_replace", {}).get("dit", {})
    for key, hook in list(replaced.items()):
        while isinstance(hook, _BlockHook):
            hook = hook.previous
        if hook is None:
            del replaced[key]
        else:
            replaced[key] = hook
    for kind in (comfy.patcher_extension.WrappersMP.OUTER_SAMPLE, comfy.patcher_extension.WrappersMP.APPLY_MODEL):
        clone.remove_wrappers_with_key(kind, OPTIONS_KEY)
    return clone


def blocks_of(arch, diffusion_model) -> list:
    """Every block AdaCache hooks in ``diffusion_model``, as (block list, index), in order."""
    return [(bl, i) for bl in arch.block_lists for i in range(len(bl.modules(diffusion_model)))]


def patch_model(model, config_for, label: str = "model"):
    """Return a clone of ``model`` (a ModelPatcher) with AdaCache installed, or ``model`` unpatched.

    ``config_for(num_blocks)`` builds the AdaCacheConfig once the block count is known (probe
    defaults and validation need it). An unsupported model gets one clear warning and comes back
    as it was.
    """
    diffusion_model = model.get_model_object("diffusion_model")
    arch = find_architecture(diffusion_model)
    if arch is None:
        name = type(diffusion_model).__name__
        warn_once(f"unsupported:{name}",
                  f"AdaCache: {unsupported_reason(diffusion_model)}; the model is returned unpatched. "
                  f"Supported: {', '.join(supported_names())}.")
        return model, None
    blocks = blocks_of(arch, diffusion_model)
    list_ends = set(list_bounds([arch.block_lists.index(block_list) for block_list, _ in blocks])[1])
    if any(list_ends & side.after_blocks(diffusion_model) for side in arch.side_blocks):
        name = type(diffusion_model).__name__
        warn_once(f"side-after-last:{name}",
                  f"AdaCache: {arch.name} ({name}) adds a side block's output after the last block of a block list, "
                  "outside the spans the cache measures; the model is returned unpatched.")
        return model, None
    config = config_for(len(blocks))
    if config.moreg is not None and config.moreg.calibration is not None:
        config.moreg.calibration.check_matches(arch.name, len(blocks), config.probe_blocks, config.probe_residual,
                                               config.moreg.strides)
    if config.searched_plan is not None:
        config.searched_plan.check_model(arch.name, len(blocks))
    patched = model.clone()
    patch_size = arch.patch_of(diffusion_model)
    session = AdaCacheSession(config, arch, len(blocks), label, patch_size, arch.batch_axis(diffusion_model))
    session.index_blocks(blocks)
    existing = patched.model_options.get("transformer_options", {}).get("patches_replace", {}).get("dit", {})
    for index, (block_list, i) in enumerate(blocks):
        if block_list.key is None:
            session.forward_hooks.append((block_list, i, _BlockHook(session, index)))
        else:
            block_key = (block_list.key, i)
            patched.set_model_patch_replace(_BlockHook(session, index, existing.get(block_key)), "dit", *block_key)
    for side in arch.side_blocks:
        hook = _SideBlockHook(session, side)
        session.forward_hooks += [(side, i, hook) for i in range(len(side.modules(diffusion_model)))]
    transformer_options = patched.model_options.setdefault("transformer_options", {})
    transformer_options[OPTIONS_KEY] = session
    patched.add_wrapper_with_key(comfy.patcher_extension.WrappersMP.OUTER_SAMPLE, OPTIONS_KEY, session.outer_sample_wrapper)
    patched.add_wrapper_with_key(comfy.patcher_extension.WrappersMP.APPLY_MODEL, OPTIONS_KEY, session.apply_model_wrapper)
    return patched, session


def session_of(model) -> AdaCacheSession | None:
    options = getattr(model, "model_options", {}) or {}
    return options.get("transformer_options", {}).get(OPTIONS_KEY)
