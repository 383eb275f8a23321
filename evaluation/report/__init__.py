"""The learning-loop report: one self-contained HTML page (inline SVG plots, inline CSS, no scripts,
nothing fetched) of answer quality per version with canary periods shaded, feedback, training runs
with their gate numbers, and promotions and rollbacks.

Usage: ``html = build_report(db, tenant="acme")`` (``tenant=None``: every tenant, for an operator).
`ragloop report` writes it to a file; `GET /v1/report` serves the caller's tenant's.
"""

from evaluation.report.render import build_report, render_report

__all__ = ["build_report", "render_report"]
