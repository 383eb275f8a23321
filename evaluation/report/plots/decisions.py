"""Promotions and rollbacks on a time line: one row per version, one marker per decision."""

from __future__ import annotations

from evaluation.report.data import Decision
from evaluation.report.svg import days, element_id, figure_svg, new_figure, time_axis

# How each action is drawn: marker and colour (rollbacks stand out, routine steps stay quiet).
ACTION_STYLE = {"candidate": ("o", "#7f7f7f"), "canary": ("^", "#e6a700"), "promote": ("P", "#2ca02c"), "retire": ("s", "#bbbbbb"),
                "reject": ("x", "#ff7f0e"), "rollback": ("X", "#d62728"), "share": ("D", "#9467bd")}


def decisions_plot(decisions: list[Decision]) -> str | None:
    if not decisions:
        return None
    versions = list(dict.fromkeys(d.version for d in decisions))
    rows = {version: row for row, version in enumerate(versions)}
    figure = new_figure(height=max(2.2, 0.4 * len(versions) + 1.2))
    axes = figure.axes[0]
    for action in [*ACTION_STYLE, *sorted({d.action for d in decisions} - set(ACTION_STYLE))]:  # an action added later still shows
        marker, colour = ACTION_STYLE.get(action, ("d", "#17becf"))
        chosen = [d for d in decisions if d.action == action]
        if chosen:
            axes.scatter(days(d.at for d in chosen), [rows[d.version] for d in chosen], marker=marker, s=70, color=colour, label=action,
                         zorder=3, gid=element_id("decision", action))
    for version, row in rows.items():
        times = [d.at for d in decisions if d.version == version]
        axes.plot(days([min(times), max(times)]), [row, row], color="#cccccc", lw=1, zorder=1)
    axes.set_yticks(range(len(versions)), versions, fontsize="small")
    axes.invert_yaxis()
    promotions = sum(d.action == "promote" for d in decisions)
    rollbacks = sum(d.action == "rollback" for d in decisions)
    axes.set_title(f"Model decisions: {promotions} promotions, {rollbacks} rollbacks", loc="left")
    axes.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize="small", frameon=False)
    axes.grid(alpha=0.3, axis="x")
    time_axis(axes)
    return figure_svg(figure)
