"""Sequence parallel: the same cache decisions on every rank that holds a shard of the tokens.

When a distributed engine splits a video's tokens across GPUs (every rank runs the blocks on its
own contiguous slice of the token sequence, as xDiT's / Raylight's sequence parallelism does), a
decision taken from local tokens would differ between ranks: one rank would compute a step that
another reuses (a wrong video, or a hang in the engine's own collectives). So, as in the paper's
code, the measurement is taken over the whole sequence:

* the norm terms (numerator and denominator) of every probe's change and of every MoReg stride
  are summed over the group in ONE ``all_reduce`` per computed step, when the planner turns them
  into a decision (:meth:`Group.reduce_sum`). Reused steps measure nothing and communicate nothing;
* MoReg compares tokens one frame (or ``stride`` frames) apart, which may live on the next rank(s):
  at each probe block of a computed call, one ``all_gather`` exchanges each rank's shard length and
  its first ``max_stride * tokens_per_frame`` tokens (:meth:`Group.motion_terms`), which gives every
  rank exactly the tokens that follow its shard. Without MoReg this exchange does not happen.

The sums equal the single-process norms over the full tensor, so every rank takes the same
decision as one process on the whole video would (up to float summation order). Where a rank's
slice sits in the whole stream (to leave text and the engine's padding out of the measurements)
comes from one all_gather of the slices' lengths per block list and run (:meth:`Group.layout`).
With CFG parallel (each rank runs one branch) the sums also run over the other branch's ranks.

Configuration (see docs/multi_gpu.md, "Sequence parallel"):
  * ``"auto"`` (default): a group registered with :func:`use_group` if any; otherwise xFuser's
    sequence- and CFG-parallel groups when xFuser is initialised (Raylight); otherwise the default
    process group, when ``torch.distributed`` is initialised with more than one rank and the probe
    sees fewer image tokens than the video's token grid has (the tokens are sharded);
  * ``"always"``: the registered, xFuser's or the default group whenever ``torch.distributed`` is initialised
    with more than one rank (image models without a token grid, or a shard that may hold every token);
  * ``"off"``: never communicate.
Without ``torch.distributed`` initialised nothing here does anything: the only call made is
``torch.distributed.is_available() and torch.distributed.is_initialized()``.
"""
from __future__ import annotations

import math
import sys
import types

import torch

from . import measures
from .measures import l1

# The group set with use_group(), kept in one process-wide namespace: ComfyUI imports the pack under
# its folder name, an engine may import ``adacache_core`` directly; both must see the same setting.
_SHARED_NAME = "adacache_core.sequence_parallel:registry"
_shared = sys.modules.setdefault(_SHARED_NAME, types.ModuleType(_SHARED_NAME))


def use_group(group) -> None:
    """Reduce AdaCache's measurements over ``group`` (a ``torch.distributed`` process group).

    For engines whose sequence-parallel group is not the whole world (e.g. sequence parallel
    inside each of several CFG- or data-parallel groups): call it on every rank, with that rank's
    sequence-parallel group, before sampling. ``use_group(None)`` goes back to the default group.
    Applies to runs in modes "auto" and "always", from the next run on. Any import of this module
    works (ComfyUI's import of the pack, or ``adacache_core`` on ``sys.path``): they share the setting.
    """
    _shared.group = group


def registered_group():
    return getattr(_shared, "group", None)


def _distributed() -> bool:
    return torch.distributed.is_available() and torch.distributed.is_initialized()


def has_sharded_weights(diffusion_model) -> bool:
    """Whether the weights are sharded over ranks (FSDP, as Raylight's FSDP mode): DTensor parameters."""
    try:
        from torch.distributed.tensor import DTensor
    except ImportError:
        return False
    first = next(diffusion_model.parameters(), None)
    return isinstance(first, DTensor)


def xfuser_groups(weights_sharded: bool = False) -> "tuple[list, object] | None":
    """(groups to sum over, group holding the token shards) from xFuser's parallel state, if set up.

    Raylight (and xDiT) run sequence parallel through xFuser: its SP group holds the shards of one
    video, and with CFG parallel its CFG group holds the other branch. The measurements are summed
    over both (so every rank sees what one process sees for cond and uncond together): the whole
    world in one all_reduce when it is just those two, else one per group. The shards' heads are
    exchanged within the SP group only. None when xFuser is not imported or not initialised.

    ``weights_sharded`` (FSDP): every rank must run the same blocks at every step, whatever it
    samples (its block's weights are gathered from all ranks), so the sums run over the whole world.
    """
    state = sys.modules.get("xfuser.core.distributed.parallel_state")
    if state is None or not state.model_parallel_is_initialized():
        return None
    sp, cfg = state.get_sp_group(), state.get_cfg_group()
    if weights_sharded or sp.world_size * cfg.world_size == torch.distributed.get_world_size():
        sums = [None] if torch.distributed.get_world_size() > 1 else []
    elif sp.world_size * cfg.world_size == 1:
        sums = []
    else:
        sums = [g.device_group for g in (sp, cfg) if g.world_size > 1]
    return sums, sp.device_group


def choose(mode: str, local_tokens: int, grid: tuple[int, int, int] | None, weights_sharded: bool = False) -> "Group | None":
    """The group a run reduces over, or None (decide locally, as one process does).

    Called once per run, at its first measured block, with the image tokens this rank holds and
    the video's token grid (from the full latent). Every rank of a sharded run must come to the
    same answer: in "auto" that holds whenever no rank holds all tokens (see module docstring).
    xFuser's groups (Raylight), when initialised, come first: they say what is split. With the
    model's weights sharded (FSDP) every rank must run the same blocks: "auto" then sums over all.
    """
    if mode == "off" or not _distributed():
        return None
    dist = torch.distributed
    group = registered_group()
    xfuser = xfuser_groups(weights_sharded) if group is None else None
    if xfuser is not None:
        sums, shards = xfuser
        return Group(shards, sums) if sums else None
    if dist.get_world_size(group) < 2:
        return None
    if mode == "auto" and group is None:
        if grid is None or local_tokens >= grid[0] * grid[1] * grid[2]:  # this rank holds every token
            return Group(group, split=False) if weights_sharded else None
    return Group(group)


class Group:
    """The process groups of a sharded run and the collectives AdaCache makes over them.

    ``group`` holds the token shards of one sequence, in rank order (``split`` False: every rank
    holds all tokens, nothing is exchanged); ``sums`` are the groups the measurements are summed
    over (default: ``group`` alone; with CFG parallel also the ranks that run the other branch).
    """

    def __init__(self, group, sums: list | None = None, split: bool = True):
        dist = torch.distributed
        self.group = group
        self.sums = [group] if sums is None else sums
        self.split = split
        self.exchange_size = dist.get_world_size(group) if split else 1
        self.rank = dist.get_rank(group) if split else 0
        self.size = math.prod(dist.get_world_size(g) for g in self.sums)
        # gloo reduces CPU tensors; NCCL and others device ones
        self._cpu = all(dist.get_backend(g) == "gloo" for g in (group, *self.sums))

    def describe(self) -> str:
        shards = f", tokens split over {self.exchange_size} ranks (this is rank {self.rank})" if self.exchange_size > 1 else ""
        if not self.split:
            shards = ", each holding every token (weights sharded: all ranks run the same blocks)"
        return f"sequence parallel: decisions measured over {self.size} ranks{shards}"

    def _where(self, t: torch.Tensor) -> torch.Tensor:
        return t.cpu() if self._cpu else t

    def reduce_sum(self, terms: list[torch.Tensor]) -> list[float]:
        """Sum the 0-dim terms over the ranks (one all_reduce per group in ``sums``) as Python floats."""
        stacked = self._where(torch.stack([t.float() for t in terms]))
        for group in self.sums:
            torch.distributed.all_reduce(stacked, op=torch.distributed.ReduceOp.SUM, group=group)
        return stacked.cpu().tolist()

    def layout(self, length: int, device: torch.device) -> tuple[int, int]:
        """(where this rank's slice starts, the whole sequence's length), from every rank's ``length``.

        One all_gather of one integer per rank; the tokens of one sequence are split over ``group``.
        ``device``: where the tokens are (NCCL gathers device tensors only).
        """
        if self.exchange_size == 1:
            return 0, length
        mine = self._where(torch.tensor([length], dtype=torch.int64, device=device))
        lengths = [torch.empty_like(mine) for _ in range(self.exchange_size)]
        torch.distributed.all_gather(lengths, mine, group=self.group)
        lengths = [int(t) for t in lengths]
        return sum(lengths[: self.rank]), sum(lengths)

    def motion_terms(self, tokens: torch.Tensor, frames: int, per_frame: int,
                     strides: tuple[int, ...]) -> list[tuple[int, tuple[torch.Tensor, torch.Tensor]]] | None:
        """This rank's share of :func:`measures.motion_terms` on the full sequence, per stride.

        ``tokens`` is this rank's shard (batch, n_local, channels); the shards, in rank order, are
        consecutive pieces of the frame-major sequence of ``frames * per_frame`` tokens (tokens
        past that count, e.g. padding to a multiple of the rank count, are ignored). Each rank owns
        the pairs (p, p + stride * per_frame) whose first token it holds; the second one comes from
        its own shard or from the heads of the following ranks. Summed over the group, the terms
        equal the single-process ones. Returns None on every rank when the shards do not cover the
        grid (then MoReg stays off for the call, on all ranks alike).
        """
        total = frames * per_frame
        strides = tuple(s for s in strides if s < frames)
        if not strides:
            return []
        if self.exchange_size == 1:  # CFG parallel alone: this rank holds its branch's whole sequence
            return measures.motion_terms(tokens, frames, strides) if tokens.shape[1] == total else None
        reach = max(strides) * per_frame
        n = tokens.shape[1]
        lengths, heads = self._exchange_heads(tokens, reach)
        if all(length == total for length in lengths):
            offset = 0  # every rank holds the whole sequence (replicated or batch-split): nothing follows
            extended = tokens
        elif sum(lengths) >= total:
            offset = sum(lengths[: self.rank])
            following, have = [], 0
            for j in range(self.rank + 1, self.exchange_size):
                if have >= reach:
                    break
                take = min(lengths[j], reach)  # a head shorter than reach is that rank's whole shard
                following.append(heads[j][:, :take].to(tokens.device))
                have += take
            extended = torch.cat([tokens, *following], dim=1) if following else tokens
        else:
            return None
        terms = []
        for s in strides:
            gap = s * per_frame
            owned = max(0, min(offset + n, total - gap) - offset)  # pairs whose first token is here
            earlier = extended[:, :owned]
            later = extended[:, gap: gap + owned]
            terms.append((s, (l1(later - earlier), l1(later) + l1(earlier))))
        return terms

    def _exchange_heads(self, tokens: torch.Tensor, reach: int) -> tuple[list[int], list[torch.Tensor]]:
        """One all_gather of (shard length, first ``reach`` tokens) from every rank, bit-exact.

        Packed as bytes (8 for the length, then the head in the tokens' own dtype, zero-padded to
        ``reach`` tokens), so one collective carries both, any dtype travels unchanged, and every
        rank sends the same number of bytes whatever its shard length (empty shards included).
        """
        batch, n, channels = tokens.shape
        head = tokens[:, :reach]
        if head.shape[1] < reach:
            head = torch.cat([head, head.new_zeros(batch, reach - head.shape[1], channels)], dim=1)
        length = torch.tensor([n], dtype=torch.int64, device=tokens.device)
        packed = self._where(torch.cat([length.view(torch.uint8), head.contiguous().view(-1).view(torch.uint8)]))
        gathered = [torch.empty_like(packed) for _ in range(self.exchange_size)]
        torch.distributed.all_gather(gathered, packed, group=self.group)
        lengths = torch.stack([g[:8] for g in gathered]).view(torch.int64).flatten().tolist()
        heads = [g[8:].view(tokens.dtype).view(batch, reach, channels) for g in gathered]
        return lengths, heads
