"""The probe measurement of one sampling run (torch only, no comfy import).

On a computed step that measures, each probe block's residual (its output minus its input, or its
gated self-attention residual where the architecture table knows the gate) is compared with the
same probe's residual at the last computed step, and, for MoReg, each frame with the frames
``stride`` apart: the norm terms go to the planner (:mod:`measures`), which turns them into the
schedule. Only the image tokens count: text and an engine's padding are left out (:meth:`image_part`).
Under sequence parallel the process group is chosen once per run, at its first measurement, and
handed to the planner, which sums the terms over it.

The bridge (comfy_bridge.py) calls in with the model call in flight: an object with ``key`` (the
branch layout), ``measures``, ``grid``, ``image_tokens`` and ``flat_stream``.
"""
from __future__ import annotations

import contextlib
import math

import torch

from . import measures, sequence_parallel
from .architectures import Architecture, AttentionResidual
from .config import AdaCacheConfig
from .planner import RunPlanner

NO_ATTENTION_PROBE = contextlib.nullcontext(None)


class ProbeMeasurement:
    """One run's probe: the last residual per probe and branch layout, the attention catch, the group."""

    def __init__(self, config: AdaCacheConfig, arch: Architecture, planner: RunPlanner, store,
                 attention: AttentionResidual | None = None, modules: dict | None = None, weights_sharded: bool = False):
        self.config = config
        self.arch = arch
        self.planner = planner
        self.attention = attention
        self.modules = modules or {}  # probe -> (block, its attention module): attention probes
        self.cache: dict = {}  # (branch layout, probe) -> last probe residual
        self.layouts: dict = {}  # (block list, branch layout) -> (offset, total) in the whole stream
        self._store = store
        self._weights_sharded = weights_sharded  # FSDP: every rank must run the same blocks (sequence_parallel.choose)
        self._group: sequence_parallel.Group | None = None
        self._group_chosen = False

    def nbytes(self) -> int:
        return sum(t.numel() * t.element_size() for t in self.cache.values())

    # -- the attention probe -----------------------------------------------------------------------
    def attention_probe(self, index: int, call, args: dict):
        """Context for one block call: catches a probe block's attention output on a measuring step.

        It yields a list that holds the gated self-attention residual afterwards, or None (every
        other block call, and when the block's whole residual is measured): the per-block hot path
        then only pays for a shared no-op context.
        """
        if call is None or not call.measures or index not in self.modules:
            return NO_ATTENTION_PROBE
        return self._catch_attention(*self.modules[index], args)

    @contextlib.contextmanager
    def _catch_attention(self, block, module, args: dict):
        """Forward hook on the attention module for the length of the block call, then times the gate."""
        caught: list[torch.Tensor] = []
        handle = module.register_forward_hook(lambda _module, _inputs, output: caught.append(output))
        try:
            yield caught
        finally:
            handle.remove()
        if caught:
            caught[:] = [caught[-1] * self._attention_gate(block, args, caught[-1])]

    def _attention_gate(self, block, args: dict, like: torch.Tensor) -> torch.Tensor:
        """The block's attention gate, formed as the block forms it (see :class:`AttentionResidual`)."""
        spec = self.attention
        modulation = getattr(block, spec.modulation).to(like.device, like.dtype)
        channels = modulation.shape[-1]
        timestep = args[spec.timestep_arg].to(like.device, like.dtype)
        # (batch, 1 or frames or tokens, chunks, channels): one form for every layout the rows name
        terms = modulation.reshape(spec.chunks, channels) + timestep.reshape(timestep.shape[0], -1, spec.chunks, channels)
        gate = terms[:, :, spec.gate]
        if 1 < gate.shape[1] < like.shape[1]:
            gate = gate.repeat_interleave(like.shape[1] // gate.shape[1], dim=1)
        return gate

    # -- the measurement ---------------------------------------------------------------------------
    def measure(self, index: int, call, residual: torch.Tensor, list_number: int, options: dict) -> None:
        """Hand probe ``index``'s residual (batch, tokens, channels) of this call to the planner."""
        self._measure(index, call, self.image_part(residual, list_number, call, options))

    def image_part(self, tokens: torch.Tensor, list_number: int, call, options: dict) -> torch.Tensor:
        """The image tokens of this rank's part of a block list's stream: text (and padding) left out.

        In one process the part is the whole stream. Under sequence parallel each rank holds a
        consecutive slice of it (a merged stream is split anew, so its slice need not hold the image
        tokens of the first list's slice), and the engine may have padded the sequence to a multiple
        of the ranks: the slice's place in the whole stream comes from one exchange of the ranks'
        lengths per list and run, and the image count from the token grid where the row knows one
        (without a grid, or without ``img_slice`` for a text-first merged stream, the padding counts).
        """
        group = self.group(call)
        length = tokens.shape[1]
        if group is None:
            offset, total, image = 0, length, call.image_tokens
        else:
            offset, total = self._layout(group, list_number, call, length, tokens.device)
            image = self._layout(group, 0, call, call.image_tokens, tokens.device)[1]
            grid_tokens = math.prod(call.grid) if call.grid else None
            if grid_tokens is not None and 0 <= image - grid_tokens < group.exchange_size:
                image = grid_tokens  # the rest is the engine's padding
        start, stop = self.arch.image_range(list_number, total, image, options)
        return tokens[:, min(max(start - offset, 0), length):min(max(stop - offset, 0), length)]

    def group(self, call) -> "sequence_parallel.Group | None":
        """The run's sequence-parallel group, or None: chosen once, at the first measurement (where
        this rank's image tokens are known), and handed to the planner (sequence_parallel.py)."""
        if not self._group_chosen:
            self._group_chosen = True
            self._group = sequence_parallel.choose(self.config.sequence_parallel, call.image_tokens, call.grid,
                                                   self._weights_sharded)
            self.planner.use_group(self._group)
        return self._group

    def _layout(self, group, list_number: int, call, length: int, device) -> tuple[int, int]:
        """Where this rank's ``length`` tokens of a list sit in the whole stream: exchanged once per list,
        branch layout and run (keys every rank shares, so all ranks exchange at the same calls)."""
        if (list_number, call.key) not in self.layouts:
            self.layouts[(list_number, call.key)] = group.layout(length, device)
        return self.layouts[(list_number, call.key)]

    def _measure(self, index: int, call, residual: torch.Tensor) -> None:
        planner = self.planner
        group = self.group(call)
        prev = self.cache.get((call.key, index))
        if prev is not None:
            planner.add_change(index, *measures.change_terms(residual, prev))
        if planner.wants_motion and call.grid is not None:
            frames, h, w = call.grid
            strides = self.config.moreg.strides
            terms = None
            note = f"MoReg off: {residual.shape[1]} tokens do not form the {frames}x{h}x{w} video grid"
            if strides[0] >= frames:
                note = (f"MoReg off: the clip has {frames} latent frame(s); frame_strides {list(strides)} need more "
                        "(a stride compares frame f with frame f + stride)")
            elif group is not None and group.exchange_size > 1 and not call.flat_stream:
                note = ("MoReg off: under sequence parallel this model's tokens are split along an image axis, "
                        "not as one frame-major sequence")
            elif group is not None:
                terms = group.motion_terms(residual, frames, h * w, strides)
            elif residual.shape[1] == frames * h * w:
                terms = measures.motion_terms(residual, frames, strides)
            if terms is not None:
                for stride, (num, den) in terms:
                    planner.add_motion(index, stride, num, den)
            elif note not in planner.trace.notes:
                planner.trace.notes.append(note)
        self.cache[(call.key, index)] = self._store(residual)
