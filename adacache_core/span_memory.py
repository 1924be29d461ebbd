"""What a reused step adds in place of a block list: held (the paper) or forecast.

The paper reuses the residual of the last computed step unchanged. But the residual keeps drifting
while it is reused, most for fast motion. ``forecast`` extrapolates it linearly from the last two
computed steps along the step index (as TaylorSeer does with finite differences, to first order).
The forecast never reaches further past the last computed step than the distance between the
last two (``MAX_REACH`` gaps): a longer reach turns a small error of the slope into a large one, so
beyond it the forecast holds still at that reach. Positions are step numbers, so they only grow.

Memory: per block list and branch layout, the held residual plus, for ``forecast``, one slope of the same size.
"""
from __future__ import annotations

from typing import Callable

import torch

MAX_REACH = 1.0  # the forecast reaches at most this many last gaps past the last computed step


def forms_line(step: int) -> bool:
    """Whether the residual computed at ``step`` and the one before it may set the forecast's line.

    Not at step 1: the run's first residual is computed on its noisiest latent (pure noise when the run
    starts from noise), and one step later the two differ mostly by the noise leaving the latent, so
    their line points the wrong way. Step 1's residual is held until the next computed step.
    """
    return step != 1


class SpanMemory:
    """Per key (block list, branch layout): the last computed span residual, where it was computed, and (forecast) its slope."""

    def __init__(self, forecast: bool, store: Callable[[torch.Tensor], torch.Tensor]):
        self.forecast = forecast
        self._store = store  # keeps a tensor where the cache lives (device or offload)
        self._last: dict = {}  # key -> (position, residual)
        self._slope: dict = {}  # key -> (residual change per unit of position, last gap)

    def remember(self, key, position: float, residual: torch.Tensor, line: bool = True) -> None:
        """Keep ``residual``, computed at ``position``; for ``forecast`` with ``line``, the slope from the previous one."""
        previous = self._last.get(key)
        if self.forecast and line and previous is not None and position != previous[0]:
            gap = position - previous[0]
            slope = (residual.float() - previous[1].to(residual.device).float()) / gap
            self._slope[key] = (self._store(slope.to(residual.dtype)), gap)
        self._last[key] = (position, self._store(residual))

    def has(self, key) -> bool:
        return key in self._last

    def state(self) -> tuple[dict, dict]:
        """What the memory holds now. Its entries are replaced, never changed, so copies of the maps keep it."""
        return dict(self._last), dict(self._slope)

    def restore(self, state: tuple[dict, dict]) -> None:
        self._last, self._slope = dict(state[0]), dict(state[1])

    def recall(self, key, position: float, device, dtype) -> torch.Tensor:
        """What to add at ``position``: the held residual, or its forecast there."""
        last_position, residual = self._last[key]
        residual = residual.to(device, dtype)
        slope = self._slope.get(key) if self.forecast else None
        if slope is None:
            return residual
        change, gap = slope
        reach = max(min(position - last_position, MAX_REACH * gap), 0.0)
        return residual + change.to(device, dtype) * reach

    def nbytes(self) -> int:
        tensors = [r for _, r in self._last.values()] + [s for s, _ in self._slope.values()]
        return sum(t.numel() * t.element_size() for t in tensors)
