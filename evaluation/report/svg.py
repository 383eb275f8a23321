"""A matplotlib figure as inline SVG: the Agg backend (never a display) and figures made without pyplot,
so reports can be built in a server's threads; text kept as text (selectable, small), no XML prologue."""

from __future__ import annotations

import io
import re
from collections.abc import Iterable
from datetime import datetime

import matplotlib
from matplotlib.axes import Axes
from matplotlib.backends.backend_svg import FigureCanvasSVG
from matplotlib.dates import AutoDateLocator, ConciseDateFormatter, date2num
from matplotlib.figure import Figure

matplotlib.use("Agg")  # a process that imports pyplot later never tries to open a window

PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#bcbd22", "#7f7f7f", "#d62728"]
CANARY_SHADE = "#f6c85f"
UP, DOWN, CORRECTION = "#2ca02c", "#d62728", "#333333"


def new_figure(width: float = 10.0, height: float = 3.2, rows: int = 1, columns: int = 1, *, share_time: bool = False) -> Figure:
    figure = Figure(figsize=(width, height * rows), layout="constrained")
    figure.subplots(rows, columns, squeeze=False, sharex=share_time)
    return figure


def day(moment: datetime) -> float:
    """A time as matplotlib's date number (days), the x of every time axis here."""
    return float(date2num(moment))


def days(moments: Iterable[datetime]) -> list[float]:
    return [day(m) for m in moments]


MIN_SPAN_DAYS = 1 / 24  # a time axis shows at least an hour: a few minutes of data is still readable, and ticks can be placed


def time_axis(axes: Axes) -> None:
    """Dates on x as a person reads them: the day once, then hours. Call it after plotting."""
    low, high = axes.get_xlim()
    if high - low < MIN_SPAN_DAYS:
        centre = (low + high) / 2
        axes.set_xlim(centre - MIN_SPAN_DAYS / 2, centre + MIN_SPAN_DAYS / 2)
    locator = AutoDateLocator(minticks=3, maxticks=9)
    axes.xaxis.set_major_locator(locator)
    axes.xaxis.set_major_formatter(ConciseDateFormatter(locator))


def figure_svg(figure: Figure) -> str:
    """The `<svg>` element of `figure`, ready to paste into HTML."""
    FigureCanvasSVG(figure)
    buffer = io.StringIO()
    with matplotlib.rc_context({"svg.fonttype": "none"}):
        figure.savefig(buffer, format="svg")
    text = buffer.getvalue()
    return re.sub(r"<svg ", '<svg class="plot" ', text[text.index("<svg"):], count=1)


def element_id(*parts: str) -> str:
    """An SVG id from free text (version ids hold `@`): what tests and stylesheets can select by."""
    return "-".join(re.sub(r"[^A-Za-z0-9_]+", "_", part) for part in parts)
