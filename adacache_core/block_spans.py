"""Per-block bookkeeping of the cache: what a block list's span adds up to, and how a reused step adds it back.

Because residuals add up, one summed residual per block list and branch layout covers the stack:
memory is one hidden state per list and branch (plus one per probe block for the distance), not
one per block. One span per list, not one over the whole stack, because a list's stream is what
its own blocks see: models whose later blocks work on text and image merged (HunyuanVideo, Flux)
start a new stream there, and a sequence-parallel engine (Raylight) splits that merged stream across
ranks anew, so the last block's slice is not the first block's.

Every method gets the model call in flight (session.ModelCall): its run's span memory and probe, its
branch layout, whether it computes.
"""
from __future__ import annotations

import functools

import torch

from .architectures import Architecture, BlockList


class BlockSpans:
    """The main blocks numbered in execution order, where each block list starts and ends, and the work a
    block does on the cache before and after it runs (computed steps) or in its place (reused steps)."""

    def __init__(self, arch: Architecture, blocks: list[tuple[BlockList, int]], probes: frozenset[int], batch_axis: int):
        self.arch = arch
        self.blocks = blocks  # main block number -> (its list, index in it)
        self.probes = probes
        self.batch_axis = batch_axis
        self.tokens = functools.partial(arch.tokens, batch_axis=batch_axis)  # (batch, tokens, channels) view
        self.list_of = [arch.block_lists.index(block_list) for block_list, _ in blocks]  # block -> its list's number
        self.firsts, self.lasts = list_bounds(self.list_of)

    def reuse_block(self, index: int, call, args: dict) -> dict:
        """Reused step: a list's first block adds the list's cached residual, the rest pass through.

        A model that adds to the stream before every block (Cosmos 1) gets back from a list's last
        block what its first one returned: its additions between the skipped blocks are not counted again.
        """
        stream = self.arch.stream
        first_of = self.firsts.get(index)
        if first_of is not None:
            parts = []
            for part, x in enumerate(self.arch.parts(args[stream])):
                residual = call.run.span.recall((first_of, call.key, part), call.position, x.device, x.dtype)
                parts.append(x + self.arch.from_tokens(residual, x, self.batch_axis))
            out = self.arch.joined(parts)
            if self.arch.adds_before_blocks:
                call.span_output[first_of] = out.clone()  # the model adds to ``out`` in place before the next block
            return {**args, stream: out}
        last_of = self.lasts.get(index)
        if last_of in call.span_output:
            return {**args, stream: call.span_output[last_of]}
        return args

    def before_block(self, index: int, call, args: dict) -> torch.Tensor | None:
        """Keep what the residuals need of the block's input (a copy if blocks update it in place)."""
        probe = index in self.probes and call.measures
        first_of = self.firsts.get(index)
        if first_of is None and not probe:
            return None
        parts = self.arch.parts(args[self.arch.stream])
        keep = tuple(x.clone() for x in parts) if self.arch.inplace_blocks else parts
        if first_of is not None:
            call.span_input[first_of] = keep
            if index == 0:
                call.image_tokens = self.tokens(parts[0]).shape[1]
                call.flat_stream = parts[0].dim() == 3
        return keep[0] if probe else None

    def after_block(self, index: int, call, before: torch.Tensor | None, out: dict, options: dict,
                    attention: list | None = None) -> None:
        """A probe block's residual to the probe; a list's last block: the list's summed residual to the span memory."""
        last_of = self.lasts.get(index)
        if before is None and last_of is None:
            return
        parts = [self.tokens(x) for x in self.arch.parts(out[self.arch.stream])]
        if attention or before is not None:
            residual = self.tokens(attention[0]) if attention else parts[0] - self.tokens(before)
            call.run.probe.measure(index, call, residual, self.list_of[index], options)
        if last_of is not None:
            for part, (now, then) in enumerate(zip(parts, call.span_input[last_of])):
                call.run.span.remember((last_of, call.key, part), call.position, now - self.tokens(then), line=call.line)


def list_bounds(list_of: list[int]) -> tuple[dict[int, int], dict[int, int]]:
    """(first block number -> its list, last block number -> its list), from each main block's list number."""
    firsts: dict[int, int] = {}
    lasts: dict[int, int] = {}
    for number, list_number in enumerate(list_of):
        firsts.setdefault(list_number, number)
        lasts[list_number] = number
    return ({number: list_number for list_number, number in firsts.items()},
            {number: list_number for list_number, number in lasts.items()})
