"""Replaying the start of an earlier run instead of running the model again (framework-free).

AdaCache Plan Search samples one candidate schedule after another, each differing from the schedule
before it in one step only. Up to that step a candidate run is the earlier run exactly: the same
latents go in, so the same model outputs come out, and the cache holds the same residuals. So a run
is recorded (what each model call returned, and the cache's state as each step began) and a later
run that computes the same steps up to step ``until`` takes those outputs back instead of calling
the model, restores the cache's state at ``until`` and computes from there. The sampler itself runs
every step as before (its own arithmetic and noise), so the output is bit for bit that of a full run.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch


@dataclass
class Recording:
    """One run as it went: per step, the model calls' outputs (in call order) and whether they computed,
    and the span memory's state (SpanMemory.state) as the step began."""

    computed: frozenset[int] = frozenset()  # the steps the run computed, once it finished
    outputs: dict[int, list[torch.Tensor]] = field(default_factory=dict)
    computes: dict[int, bool] = field(default_factory=dict)
    span_at: dict[int, object] = field(default_factory=dict)

    def starts(self, step: int) -> bool:
        """Whether a call at ``step`` is the step's first."""
        return step not in self.outputs

    def step_started(self, step: int, span_state: object) -> None:
        self.outputs[step], self.span_at[step] = [], span_state

    def add(self, step: int, computed: bool, output: torch.Tensor) -> None:
        self.computes[step] = computed
        self.outputs[step].append(output.clone())  # the sampler may work on the model's output in place

    def finished(self, computed_steps: list[int]) -> "Recording":
        self.computed = frozenset(computed_steps)
        return self


@dataclass
class Replay:
    """The recording a run replays up to (not including) step ``until``, and where it is in it."""

    recording: Recording
    until: int
    restored: bool = False  # the cache's state at ``until`` is back
    model_calls_saved: int = 0
    _taken: dict[int, int] = field(default_factory=dict)  # step -> its calls replayed so far

    def covers(self, step: int) -> bool:
        return step < self.until

    def next_output(self, step: int) -> tuple[torch.Tensor, bool]:
        """The recorded output of the step's next call (a copy), and whether that call computed."""
        outputs = self.recording.outputs[step]
        n = self._taken.get(step, 0)
        self._taken[step] = n + 1
        self.model_calls_saved += 1
        return outputs[n].clone(), self.recording.computes[step]
