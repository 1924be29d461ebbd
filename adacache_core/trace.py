"""What a sampling run decided and how long it took, as plain data (JSON round-trips).

The viewer, the benchmarks, the demo and the tests all read this one record; nothing is printed
that is not also here.
"""
from __future__ import annotations

import collections
from dataclasses import asdict, dataclass, field

import torch

# Output fingerprint -> label of the patched model whose run produced it, for more runs than a model keeps:
# ComfyUI may serve a sampler's output from its cache long after its run data are gone.
_produced: collections.OrderedDict[str, str] = collections.OrderedDict()
_PRODUCED_KEPT = 1024


def latent_fingerprint(latent) -> str | None:
    """A short identity of a latent tensor, the same on any device: which run produced which samples.

    The sampler hands its output on to the next node (moved to ComfyUI's intermediate device, values
    unchanged); the viewer compares the fingerprint of what it is given with those of recorded runs.
    A latent of several parts (newer ComfyUI's NestedTensor: LTX-2's video and audio) joins its parts'.
    """
    parts = _parts(latent)
    if parts is not None:
        prints = [latent_fingerprint(t) for t in parts]
        return None if None in prints else "+".join(prints)
    if not isinstance(latent, torch.Tensor) or latent.is_nested:
        return None
    values = latent.detach().to("cpu", torch.float64)
    return f"{tuple(latent.shape)}:{values.sum().item():.17g}:{values.abs().sum().item():.17g}"


def remember_producer(fingerprint: str | None, label: str) -> None:
    if fingerprint is not None:
        _produced[fingerprint] = label
        _produced.move_to_end(fingerprint)
        while len(_produced) > _PRODUCED_KEPT:
            _produced.popitem(last=False)


def producer_of(fingerprint: str | None) -> str | None:
    """The label of the patched model (its node) whose run in this process produced a latent with this fingerprint."""
    return _produced.get(fingerprint)


def _parts(latent) -> list | None:
    """The tensors of a latent made of several (comfy.nested_tensor.NestedTensor, or a list of them), else None."""
    parts = list(latent) if isinstance(latent, (list, tuple)) else getattr(latent, "tensors", None)
    return parts if isinstance(parts, list) and parts and all(isinstance(t, torch.Tensor) for t in parts) else None


def all_finite(latent) -> bool:
    """Whether a latent holds no NaN or infinite value (one that is not a tensor or parts of tensors: nothing to say)."""
    parts = _parts(latent)
    if parts is not None:
        return all(map(all_finite, parts))
    if not isinstance(latent, torch.Tensor) or latent.is_nested:
        return True
    return bool(torch.isfinite(latent).all())


@dataclass
class CallRecord:
    """One diffusion-model call: which step, which branches (cond/uncond chunks), computed or not."""

    step: int
    sigma: float
    branches: list[str]
    computed: bool
    seconds: float


@dataclass
class DecisionRecord:
    """The decision taken after a computed step: how much changed and how long to reuse."""

    step: int
    sigma: float
    change: float | None  # mean relative L1 change of the probe residual(s) since the last computed step
    gap: int | None  # steps since that computed step
    distance: float | None  # change / gap, times the MoReg multiplier when active: what the codebook sees
    reuse_length: int
    next_step: int
    motion: float | None = None
    moreg_factor: float | None = None
    moreg_gradient: float | None = None
    moreg_active: bool = False
    moreg_scale: float | None = None  # the motion score counted as normal at this step (calibrated: per noise level)


@dataclass
class RunTrace:
    model: str
    architecture: str
    settings: dict
    steps: int
    sigmas: list[float]
    codebook: list[tuple[float, int]]
    calls: list[CallRecord] = field(default_factory=list)
    decisions: list[DecisionRecord] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    finished: bool = False  # the sampler returned (False: interrupted or failed)
    budget: int | None = None  # speed-budget mode: the computed steps aimed at
    token_grid: list[int] | None = None  # (frames, height, width) in tokens, as MoReg reads the video
    cache_bytes: int | None = None  # what the cached residuals held at the end of the run
    probe_residual: str | None = None  # what the probe measured: "attention" (gated self-attention) or "block"
    input_latent: str | None = None  # latent_fingerprint of the latent the sampler started from
    output_latent: str | None = None  # ... and of the samples it returned (None: the run did not complete)
    chosen_by: str = ""  # what chose the computed steps: "speed knob", "plan" (AdaCache Plan Search), "exact steps"
    # (config.exact_steps) or "paper schedule"
    forced: dict[int, str] = field(default_factory=dict)  # step -> why it was computed whatever the schedule said

    # -- reading ---------------------------------------------------------------------------------
    def branches(self) -> list[str]:
        seen: dict[str, None] = {}
        for c in self.calls:
            for b in c.branches:
                seen.setdefault(b, None)
        return list(seen)

    def computed_steps(self, branch: str | None = None) -> list[int]:
        """Steps at which the blocks ran (for ``branch``, or for any branch)."""
        return sorted({c.step for c in self.calls if c.computed and (branch is None or branch in c.branches)})

    def visited_steps(self, branch: str | None = None) -> list[int]:
        return sorted({c.step for c in self.calls if branch is None or branch in c.branches})

    def steps_chosen_by(self) -> str:
        """What chose the computed steps, in an artist's words."""
        knob = self.settings.get("target_speedup")
        if self.chosen_by == "plan":
            return f"a plan from AdaCache Plan Search (speed knob {knob:g}x)"
        if self.chosen_by == "speed knob":
            return f"the speed knob ({knob:g}x)"
        if self.chosen_by == "exact steps":
            return "a fixed set of steps (a trial run of AdaCache Plan Search)"
        return f"the paper's schedule (preset {self.settings.get('preset')})"

    def forced_by_reason(self) -> dict[str, list[int]]:
        """Why steps were computed whatever the schedule said: reason -> its steps (0-based), in step order."""
        reasons: dict[str, list[int]] = {}
        for step in sorted(self.forced):
            reasons.setdefault(self.forced[step], []).append(step)
        return reasons

    def warnings(self) -> list[str]:
        """The notes an artist should see: all but those the summary's lines already say (what the knob planned,
        how sequence-parallel ranks measure)."""
        return [n for n in self.notes if not n.startswith(("speed knob ", "sequence parallel: "))]

    def summary(self) -> dict:
        per_branch = {}
        for b in self.branches():
            per_branch[b] = {"computed": len(self.computed_steps(b)), "total": len(self.visited_steps(b))}
        computed, total = len(self.computed_steps()), len(self.visited_steps())
        t_comp = [c.seconds for c in self.calls if c.computed]
        t_reuse = [c.seconds for c in self.calls if not c.computed]
        mean_c = sum(t_comp) / len(t_comp) if t_comp else None
        mean_r = sum(t_reuse) / len(t_reuse) if t_reuse else None
        estimate = None
        if mean_c:
            unpatched = mean_c * len(self.calls)
            spent = sum(t_comp) + sum(t_reuse)
            estimate = unpatched / spent if spent > 0 else None
        return {
            "computed_steps": computed,
            "total_steps": total,
            "per_branch": per_branch,
            "ideal_speedup": (total / computed) if computed else None,
            "budget": self.budget,
            "seconds_per_computed_call": mean_c,
            "seconds_per_reused_call": mean_r,
            "estimated_speedup": estimate,
            "cache_mb": None if self.cache_bytes is None else self.cache_bytes / 2**20,
        }

    # -- storage ---------------------------------------------------------------------------------
    def to_dict(self) -> dict:
        d = asdict(self)
        d["summary"] = self.summary()
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "RunTrace":
        d = {k: v for k, v in d.items() if k != "summary"}
        d["calls"] = [CallRecord(**c) for c in d.get("calls", [])]
        d["decisions"] = [DecisionRecord(**c) for c in d.get("decisions", [])]
        d["codebook"] = [tuple(e) for e in d.get("codebook", [])]
        d["forced"] = {int(step): why for step, why in d.get("forced", {}).items()}  # JSON keys are text
        return cls(**d)
