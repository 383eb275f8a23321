"""Feedback volume and ratings over time: up- and down-votes stacked per time bucket, corrections on top."""

from __future__ import annotations

from collections import Counter

from evaluation.report.data import Rating
from evaluation.report.series import bucket_of, bucket_size
from evaluation.report.svg import CORRECTION, DOWN, UP, days, element_id, figure_svg, new_figure, time_axis


def feedback_plot(ratings: list[Rating]) -> str | None:
    if not ratings:
        return None
    start, end = ratings[0].at, ratings[-1].at
    size = bucket_size(start, end)
    counts = Counter((bucket_of(r.at, start, size), r.rating) for r in ratings)
    corrections = Counter(bucket_of(r.at, start, size) for r in ratings if r.corrected)
    buckets = sorted({bucket for bucket, _ in counts})
    up = [counts[(b, "up")] for b in buckets]
    down = [counts[(b, "down")] for b in buckets]
    figure = new_figure()
    axes = figure.axes[0]
    width = 0.8 * size.total_seconds() / 86400  # date numbers count days
    for rating, heights, bottom, colour in (("up", up, None, UP), ("down", down, up, DOWN)):
        bars = axes.bar(days(buckets), heights, width=width, bottom=bottom, align="edge", color=colour, label=f"{rating}-votes")
        for number, bar in enumerate(bars):
            bar.set_gid(element_id("feedback", rating, str(number)))
    axes.plot(days(b + size / 2 for b in buckets), [corrections[b] for b in buckets], color=CORRECTION, marker="o", lw=1,
              label="with a correction", gid="feedback-corrections")
    axes.set_ylabel(f"ratings per {_words(size.total_seconds())}")
    axes.set_title(f"Feedback: {len(ratings)} ratings, {sum(down)} down, {sum(corrections.values())} with a correction", loc="left")
    axes.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize="small", frameon=False)
    axes.grid(alpha=0.3, axis="y")
    time_axis(axes)
    return figure_svg(figure)


def _words(seconds: float) -> str:
    return {300: "5 minutes", 3600: "hour", 86400: "day", 7 * 86400: "week"}.get(int(seconds), f"{int(seconds)} s")
