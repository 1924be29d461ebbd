"""The schedule chart: what was computed, what was reused, and the distances behind it.

matplotlib (Agg, no display) draws it; the result is an RGB uint8 array. Framework-free. Without
matplotlib the chart is a message card drawn with Pillow (which ComfyUI itself needs), so a graph
never fails for want of an optional plotting library; the viewer's summary text is complete anyway.
"""
from __future__ import annotations

import io as _io
import textwrap

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from .trace import RunTrace

COMPUTED, REUSED = "#d1495b", "#c9d6df"


def _render(fig) -> np.ndarray:
    buf = _io.BytesIO()
    fig.savefig(buf, format="png", dpi=fig.dpi)
    import matplotlib.pyplot as plt

    plt.close(fig)
    buf.seek(0)
    return np.asarray(Image.open(buf).convert("RGB"))


def message_chart(text: str, size=(1000, 240)) -> np.ndarray:
    """A plain card with a message, for 'nothing to show' cases (never a crash, never blank); Pillow only."""
    image = Image.new("RGB", size, "white")
    draw = ImageDraw.Draw(image)
    font = ImageFont.load_default(size=16)
    lines = [wrapped for paragraph in text.splitlines() for wrapped in textwrap.wrap(paragraph, width=size[0] // 9) or [""]]
    draw.multiline_text((20, 20), "\n".join(lines), fill="black", font=font, spacing=6)
    return np.asarray(image)


def schedule_chart(runs: list[tuple[str, RunTrace]], size=(1200, 720)) -> np.ndarray:
    """Top: per computed step the distance (log scale) over the codebook bands, and the MoReg factor.
    Bottom: one strip per model and branch, a cell per step, computed or reused. Several runs (the
    two experts of Wan 2.2) are laid side by side on one step axis. Without matplotlib: a message card."""
    try:
        import matplotlib

        matplotlib.use("Agg", force=False)
        import matplotlib.pyplot as plt
        from matplotlib.patches import Patch
    except ImportError:
        return message_chart("The schedule chart needs matplotlib (pip install matplotlib in ComfyUI's Python, then "
                             "restart ComfyUI). The summary text has the whole schedule.", size=size)

    strips = [(label, trace, b) for label, trace in runs for b in trace.branches()]
    fig, (ax, ax_s) = plt.subplots(2, 1, figsize=(size[0] / 100, size[1] / 100), dpi=100, sharex=True,
                                   gridspec_kw={"height_ratios": [3, max(1, len(strips)) * 0.45 + 0.6]})
    offset, ax_m = 0, None
    all_d = [x.distance for _, t in runs for x in t.decisions if x.distance]
    floor = min(all_d + [t.codebook[0][0] for _, t in runs if t.codebook] + [1.0]) / 3
    band_colours = plt.cm.Greens(np.linspace(0.15, 0.45, 8))
    for label, trace in runs:
        # codebook bands: distance below threshold i -> reuse length i
        lower = floor
        for i, (threshold, length) in enumerate(trace.codebook):
            ax.fill_between([offset - 0.5, offset + trace.steps - 0.5], lower, threshold, color=band_colours[i % 8], alpha=0.6, lw=0)
            ax.text(offset + trace.steps - 0.6, min(threshold, 10) * 0.93, f"reuse {length}", ha="right", va="top", fontsize=7, color="#2d6a4f")
            lower = threshold
        d = [x for x in trace.decisions if x.distance is not None]
        if d:
            ax.plot([offset + x.step for x in d], [max(x.distance, floor) for x in d], "o-", color="#1d3557", label=f"distance ({label})" if len(runs) > 1 else "distance")
        m = [x for x in trace.decisions if x.moreg_factor is not None]
        if m:
            ax_m = ax_m or ax.twinx()
            multiplier = {x.step: x.moreg_factor + abs(x.moreg_gradient or 0.0) for x in m}
            ax_m.plot([offset + s for s in multiplier], list(multiplier.values()), "s--", color="#e76f51", ms=3,
                      label="MoReg multiplier")
            for x in m:
                if not x.moreg_active:
                    ax_m.plot(offset + x.step, multiplier[x.step], "s", color="white", mec="#e76f51", ms=3)
        if offset:
            ax.axvline(offset - 0.5, color="black", lw=1.5)
            ax_s.axvline(offset - 0.5, color="black", lw=1.5)
        offset += trace.steps
    ax.set_yscale("log")
    ax.set_ylabel("distance per step (log)")
    ax.set_title("AdaCache schedule: distance after each computed step vs codebook bands")
    handles, labels = ax.get_legend_handles_labels()
    if ax_m is not None:
        ax_m.set_yscale("log")
        ax_m.set_ylabel("MoReg factor + |gradient|, log (hollow: outside window)")
        h2, l2 = ax_m.get_legend_handles_labels()
        handles, labels = handles + h2, labels + l2
    ax.legend(handles, labels, loc="upper left", fontsize=8)

    offset = 0
    row_of = {}
    for label, trace in runs:
        for b in trace.branches():
            row = row_of.setdefault((label if len(runs) > 1 else "", b), len(row_of))
            state = {}
            for c in trace.calls:
                if b in c.branches:
                    state[c.step] = state.get(c.step, False) or c.computed
            steps = sorted(state)
            ax_s.bar([offset + s for s in steps], [0.8] * len(steps), bottom=row - 0.4, width=1.0,
                     color=[COMPUTED if state[s] else REUSED for s in steps], edgecolor="white", linewidth=0.3 if trace.steps < 120 else 0)
        offset += trace.steps
    ax_s.set_yticks(range(len(row_of)), [f"{m} {b}".strip() for m, b in row_of])
    ax_s.set_ylim(-0.6, len(row_of) - 0.4)
    ax_s.set_xlabel("sampling step")
    ax_s.set_xlim(-0.5, max(offset, 1) - 0.5)
    ax_s.legend(handles=[Patch(color=COMPUTED, label="computed"), Patch(color=REUSED, label="reused")],
                loc="upper right", fontsize=8, ncol=2)
    fig.tight_layout()
    return _render(fig)
