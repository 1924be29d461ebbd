"""The generic hook for blocks that ComfyUI gives no per-block replacement (no comfy import).

Models whose forward offers no ``patches_replace["dit"]`` per block (Cosmos 1 and Predict2,
HiDream, Lumina 2), and side blocks (VACE's hint blocks, Animate's face blocks), are reached by
shadowing each block's ``forward`` with an instance attribute for the length of one sampling call.
Weights, state dict and the model's own forward are untouched, and the bridge removes every
override when the call ends, even on an error.
"""
from __future__ import annotations

import inspect


class ForwardOverride:
    """Shadows ``block.forward`` with an instance attribute that speaks the ``patches_replace`` protocol.

    The call's arguments become the args dict handed to ``hook`` (by the forward's own parameter
    names) and ``original_block`` calls the block's forward with them. ``install``/``remove``
    bracket one sampling call; an override that was already there (another pack's) is called
    through and put back as it was.
    """

    def __init__(self, block, hook, returns: tuple[str, ...]):
        self.block = block
        self.hook = hook
        self.returns = returns
        self._shadowed = None
        self._forward = None
        self._signature = None

    def install(self) -> None:
        self._shadowed = self.block.__dict__.get("forward")
        self._forward = self.block.forward
        # the parameter names of the block class's own forward, even under another pack's override
        self._signature = inspect.signature(type(self.block).forward.__get__(self.block))
        self.block.forward = self

    def remove(self) -> None:
        if self._shadowed is None:
            self.block.__dict__.pop("forward", None)
        else:
            self.block.forward = self._shadowed
        self._forward = self._signature = self._shadowed = None

    def __call__(self, *args, **kwargs):
        bound = self._signature.bind(*args, **kwargs)

        def original_block(block_args: dict) -> dict:
            for name in bound.arguments:
                bound.arguments[name] = block_args.get(name, bound.arguments[name])
            out = self._forward(*bound.args, **bound.kwargs)
            return dict(zip(self.returns, out)) if len(self.returns) > 1 else {self.returns[0]: out}

        out = self.hook(dict(bound.arguments), {"original_block": original_block})
        return tuple(out[name] for name in self.returns) if len(self.returns) > 1 else out[self.returns[0]]


def install_all(targets) -> list[ForwardOverride]:
    """Install an override per ``(block, hook, returns)``; on an error the ones installed are removed again."""
    installed = []
    try:
        for block, hook, returns in targets:
            override = ForwardOverride(block, hook, returns)
            override.install()
            installed.append(override)
    except BaseException:
        remove_all(installed)
        raise
    return installed


def remove_all(overrides: list[ForwardOverride]) -> None:
    for override in reversed(overrides):
        override.remove()
