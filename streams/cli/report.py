"""`ragloop report`: write the learning-loop report (one self-contained HTML page) from the database."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from schemas.settings import get_settings
from streams.cli.options import console


def report(out: Annotated[Path, typer.Option("--out", help="Where to write the HTML page (its folder must exist).", dir_okay=False)]
           = Path("ragloop-report.html"),
           tenant: Annotated[str | None, typer.Option("--tenant", show_default=False,
                                                      help="Only this tenant's answers, feedback, runs and line (with the shared line's "
                                                           "decisions); without it, every tenant.")] = None) -> None:
    """Write one HTML page of plots, answer quality per version with canary periods shaded, feedback, training runs
    with their gate numbers, promotions and rollbacks, that opens in any browser without a network."""
    from evaluation.report import build_report
    from schemas.database import Database

    if not out.parent.is_dir():
        raise typer.BadParameter(f"the folder {out.parent} does not exist: create it or choose another path", param_hint="--out")
    html = build_report(Database.from_settings(get_settings()), tenant=tenant)
    out.write_text(html, encoding="utf-8")
    console.print(f"report written to {out} ({len(html) // 1024} KiB): open file://{out.resolve()} in a browser")
