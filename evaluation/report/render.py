"""Report data → HTML: the plots drawn, the tables filled, one Jinja2 template (autoescaped: version
ids, reasons and actors are text from events and people, never markup)."""

from __future__ import annotations

import json
from pathlib import Path

from jinja2 import Environment, FileSystemLoader, select_autoescape
from markupsafe import Markup

from evaluation.report.data import ReportData, load_report_data
from evaluation.report.periods import canary_periods
from evaluation.report.plots.decisions import decisions_plot
from evaluation.report.plots.feedback import feedback_plot
from evaluation.report.plots.quality import quality_plot
from evaluation.report.plots.training import training_plot
from evaluation.report.summary import summarise
from schemas.database import Database

_TEMPLATES = Environment(loader=FileSystemLoader(Path(__file__).with_name("templates")), autoescape=select_autoescape(["html", "j2"]),
                         trim_blocks=True, lstrip_blocks=True)


def build_report(db: Database, *, tenant: str | None = None) -> str:
    """The report of `tenant`'s rows (None: every tenant's), as one HTML document."""
    return render_report(load_report_data(db, tenant=tenant))


def render_report(data: ReportData) -> str:
    periods = canary_periods(data.decisions, until=data.generated_at)
    plots = {"quality": quality_plot(data.answers, periods), "feedback": feedback_plot(data.ratings),
             "training": training_plot(data.runs, now=data.generated_at), "decisions": decisions_plot(data.decisions)}
    return _TEMPLATES.get_template("report.html.j2").render(
        data=data, summary=summarise(data), periods=periods,
        plots={name: Markup(svg) if svg else None for name, svg in plots.items()},  # matplotlib escapes the text it writes
        numbers=_numbers,
    )


def _numbers(values: dict[str, object]) -> str:
    """A decision's or run's numbers in one short line (floats to 3 places; the loss curve left out)."""
    shown = {k: round(v, 3) if isinstance(v, float) else v for k, v in values.items() if k != "losses"}
    return json.dumps(shown, default=str)[1:-1] if shown else ""
