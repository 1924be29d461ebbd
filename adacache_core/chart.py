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

# Computed steps blue, reused grey: neither reads as an error.
COMPUTED, REUSED = "#2f6db5", "#c5cad3"
DETAILS = ("overview", "engineering")  # the artist's picture; the same with the measurements behind each decision


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


def headline(runs: list[tuple[str, RunTrace]]) -> tuple[str, str]:
    """The chart's title: computed of total steps and the speed-up they allow; and a second line with
    the reuse mode, MoReg, what chose the steps (the speed knob or the preset) and the speed-up
    estimated from the run's timings."""
    summaries = [trace.summary() for _, trace in runs]
    computed = sum(s["computed_steps"] for s in summaries)
    total = sum(s["total_steps"] for s in summaries)
    title = f"{computed} of {total} steps computed" + (f": up to {total / computed:.2f}x faster" if computed else "")
    settings = [trace.settings for _, trace in runs]
    reuse = "/".join(dict.fromkeys(str(cfg.get("reuse", "hold")) for cfg in settings))
    moreg = [cfg for cfg in settings if cfg.get("moreg")]
    if not moreg:
        details = [f"reuse: {reuse}", "MoReg off"]
    elif all(cfg.get("target_speedup") for cfg in moreg):
        details = [f"reuse: {reuse}", "MoReg connected, not used by the speed knob"]
    else:
        details = [f"reuse: {reuse}", "MoReg on"]
    for label, trace in runs:
        details.append(f"{label}: {trace.steps_chosen_by()}" if len(runs) > 1 else f"steps chosen by {trace.steps_chosen_by()}")
    if len(runs) == 1 and summaries[0]["estimated_speedup"] is not None:
        details.append(f"estimated from the run's timings: {summaries[0]['estimated_speedup']:.2f}x")
    return title, "   \u00b7   ".join(details)


def strip_rows(runs: list[tuple[str, RunTrace]], merge_equal: bool) -> list[tuple[str, int, dict[int, bool]]]:
    """(row label, step offset, computed per step) for each model and branch. With ``merge_equal``,
    the branches (cond / uncond) of a model that computed the same steps share one row, named as
    the model."""
    rows, offset = [], 0
    for label, trace in runs:
        per_branch = {}
        for b in trace.branches():
            state = {}
            for c in trace.calls:
                if b in c.branches:
                    state[c.step] = state.get(c.step, False) or c.computed
            per_branch[b] = state
        model = label if len(runs) > 1 else ""
        states = list(per_branch.values())
        if merge_equal and states and all(st == states[0] for st in states):
            rows.append((label, offset, states[0]))
        else:
            rows += [(f"{model} {b}".strip(), offset, st) for b, st in per_branch.items()]
        offset += trace.steps
    return rows


def _draw_strips(ax, runs, rows) -> None:
    from matplotlib.patches import Patch
    from matplotlib.ticker import FuncFormatter, MaxNLocator

    for row, (_, offset, state) in enumerate(rows):
        steps = sorted(state)
        ax.bar([offset + s for s in steps], [0.8] * len(steps), bottom=row - 0.4, width=1.0,
               color=[COMPUTED if state[s] else REUSED for s in steps], edgecolor="white",
               linewidth=0.3 if len(steps) < 120 else 0)
    offset = 0
    for _, trace in runs[:-1]:
        offset += trace.steps
        ax.axvline(offset - 0.5, color="black", lw=1.5)
    offset += runs[-1][1].steps if runs else 0
    ax.set_yticks(range(len(rows)), [label for label, _, _ in rows])
    ax.tick_params(axis="y", length=0)
    ax.set_ylim(len(rows) - 0.4, -0.6)  # the first row on top
    ax.set_xlim(-0.5, max(offset, 1) - 0.5)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda x, _: f"{int(x) + 1}"))  # steps numbered from 1 in both pictures
    ax.set_xlabel("sampling step")
    ax.figure.legend(handles=[Patch(color=COMPUTED, label="computed: the model ran"),
                              Patch(color=REUSED, label="reused: the model skipped")],
                     loc="upper right", bbox_to_anchor=(0.99, 0.995), fontsize=10, ncol=2, frameon=False)


def schedule_chart(runs: list[tuple[str, RunTrace]], detail: str = "overview") -> np.ndarray:
    """The run's picture. 'overview': a headline, then one strip per model, a cell per step, computed
    (blue) or reused (grey); a model's branches get a row each only where they computed different
    steps. 'engineering': above the strips (one per branch), the distance measured after each
    computed step (log scale) over the codebook bands, and the MoReg multiplier. Several runs (the
    two experts of Wan 2.2) lie side by side on one step axis. Without matplotlib: a message card."""
    rows = strip_rows(runs, merge_equal=detail == "overview")
    size = (1200, 170 + 40 * len(rows)) if detail == "overview" else (1200, 720)
    try:
        import matplotlib

        matplotlib.use("Agg", force=False)
        import matplotlib.pyplot as plt
    except ImportError:
        return message_chart("The schedule chart needs matplotlib (pip install -r requirements.txt in ComfyUI's Python, "
                             "then restart ComfyUI). The summary text has the whole schedule.", size=size)

    title, subtitle = headline(runs)
    width, height = size
    fig = plt.figure(figsize=(width / 100, height / 100), dpi=100)
    # fixed margins in pixels: the headline on top, the row labels on the left, the step numbers below
    fig.subplots_adjust(left=150 / width, right=1 - (20 if detail == "overview" else 90) / width, top=1 - 100 / height, bottom=50 / height, hspace=0.08)
    if detail == "overview":
        ax_s = fig.add_subplot(1, 1, 1)
        _draw_strips(ax_s, runs, rows)
    else:
        ax, ax_s = fig.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": [3, max(1, len(rows)) * 0.45]})
        _draw_measurements(ax, runs)
        _draw_strips(ax_s, runs, rows)
    fig.text(12 / width, 1 - 12 / height, title, fontsize=16, fontweight="bold", ha="left", va="top")
    fig.text(12 / width, 1 - 44 / height, textwrap.fill(subtitle, 175), fontsize=10.5, color="#444444", ha="left", va="top")
    return _render(fig)


def _draw_measurements(ax, runs) -> None:
    """Engineering panel: per computed step the distance (log) over the codebook bands, and MoReg's multiplier."""
    import matplotlib.pyplot as plt

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
        offset += trace.steps
    ax.set_yscale("log")
    ax.set_ylabel("distance per step (log)")
    ax.set_title("distance after each computed step vs codebook bands", fontsize=10)
    handles, labels = ax.get_legend_handles_labels()
    if ax_m is not None:
        ax_m.set_yscale("log")
        ax_m.set_ylabel("MoReg factor + |gradient|, log (hollow: outside window)")
        h2, l2 = ax_m.get_legend_handles_labels()
        handles, labels = handles + h2, labels + l2
    ax.legend(handles, labels, loc="upper left", fontsize=8)
