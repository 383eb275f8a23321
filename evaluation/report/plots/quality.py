"""Quality metrics over time, one line (rolling mean) per model version, canary periods shaded."""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime

from evaluation.report.data import ScoredAnswer
from evaluation.report.periods import CanaryPeriod
from evaluation.report.series import ROLLING_WINDOW, rolling_mean
from evaluation.report.svg import CANARY_SHADE, PALETTE, day, days, element_id, figure_svg, new_figure, time_axis

# The answer-quality scores, in the order a reader looks for them; latency and lengths are not quality.
QUALITY_METRICS = ("token_f1", "rouge_l", "bleu", "answer_relevance", "context_overlap", "citation_validity", "exact_match")


def metrics_present(answers: list[ScoredAnswer]) -> list[str]:
    found = {name for a in answers for name, value in a.metrics.items() if _number(value) is not None}
    return [name for name in QUALITY_METRICS if name in found]


def quality_plot(answers: list[ScoredAnswer], periods: list[CanaryPeriod]) -> str | None:
    metrics = metrics_present(answers)
    if not metrics:
        return None
    versions = list(dict.fromkeys(a.version for a in answers))
    colours = {v: PALETTE[i % len(PALETTE)] for i, v in enumerate(versions)}
    figure = new_figure(height=2.2, rows=len(metrics), share_time=True)
    for axes, metric in zip(figure.axes, metrics):
        series: dict[str, tuple[list[datetime], list[float]]] = defaultdict(lambda: ([], []))
        for answer in answers:
            value = _number(answer.metrics.get(metric))
            if value is not None:
                series[answer.version][0].append(answer.at)
                series[answer.version][1].append(value)
        for number, period in enumerate(periods):
            axes.axvspan(day(period.start), day(period.end), color=CANARY_SHADE, alpha=0.35, lw=0,
                         label="canary" if number == 0 else None, gid=element_id("canary", metric, str(number)))
        for version in versions:
            if version in series:
                times, values = series[version]
                axes.plot(days(times), rolling_mean(values), color=colours[version], lw=1.6, marker="." if len(times) < 3 else None,
                          label=version, gid=element_id("quality", metric, version))
        axes.set_ylabel(metric)
        low, high = axes.get_ylim()
        if high - low < 1e-3:  # a steady metric: a band around it, not its float noise magnified
            axes.set_ylim(low - 0.05, high + 0.05)
        axes.ticklabel_format(axis="y", useOffset=False)  # a steady metric reads 0.7, not `1e-12+7e-1`
        time_axis(axes)
        axes.grid(alpha=0.3)
    figure.axes[0].set_title(f"Answer quality per version (rolling mean of {ROLLING_WINDOW} answers; canary periods shaded)", loc="left")
    figure.axes[0].legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize="small", frameon=False)
    return figure_svg(figure)


def _number(value: object) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) and value == value else None
