"""Training runs on a time line (coloured by outcome) beside their gate numbers, candidate against incumbent."""

from __future__ import annotations

from datetime import datetime

from matplotlib.axes import Axes

from evaluation.report.data import Run
from evaluation.report.svg import PALETTE, day, element_id, figure_svg, new_figure, time_axis

STATE_COLOURS = {"gated": "#2ca02c", "rejected": "#ff7f0e", "failed": "#d62728", "running": "#1f77b4"}


def training_plot(runs: list[Run], *, now: datetime) -> str | None:
    if not runs:
        return None
    gated = [run for run in runs if run.gate]
    figure = new_figure(height=max(2.4, 0.45 * len(runs) + 1), columns=2 if gated else 1)
    timeline = figure.axes[0]
    for row, run in enumerate(runs):
        start = day(run.started_at)
        length = max(day(run.finished_at or now) - start, 1 / 86400)  # a run of under a second still shows
        timeline.broken_barh([(start, length)], (row - 0.35, 0.7), color=STATE_COLOURS.get(run.state, "#7f7f7f"),
                             gid=element_id("run", str(row), run.state))
    timeline.set_yticks(range(len(runs)), [f"{_label(run)} ({run.state})" for run in runs], fontsize="small")
    time_axis(timeline)
    timeline.invert_yaxis()
    timeline.set_title(f"Training runs: {len(runs)}", loc="left")
    timeline.grid(alpha=0.3, axis="x")
    if gated:
        _gate_bars(figure.axes[1], gated)
    return figure_svg(figure)


def _gate_bars(axes: Axes, runs: list[Run]) -> None:
    """Grouped bars, one group per run that was gated, one bar per gate number (`gate_candidate`, `gate_incumbent`, …)."""
    names = list(dict.fromkeys(name for run in runs for name in run.gate))
    width = 0.8 / len(names)
    for offset, name in enumerate(names):
        xs = [row + offset * width for row, run in enumerate(runs) if name in run.gate]
        heights = [run.gate[name] for run in runs if name in run.gate]
        bars = axes.bar(xs, heights, width=width, color=PALETTE[offset % len(PALETTE)], label=name.removeprefix("gate_"))
        for number, bar in enumerate(bars):
            bar.set_gid(element_id("gate", name, str(number)))
    axes.set_xticks([row + 0.4 - width / 2 for row in range(len(runs))],
                    [_label(run) for run in runs], fontsize="small", rotation=20)
    axes.set_title("Gate numbers per run", loc="left")
    axes.legend(fontsize="small", frameon=False)
    axes.grid(alpha=0.3, axis="y")


def _label(run: Run) -> str:
    """The version without its family (`lora-<digest>`), or the run's id for a run that made none."""
    return run.version.split("@")[-1] if run.version else f"run {run.id[-12:]}"
