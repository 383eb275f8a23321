"""The report's queries on PostgreSQL (JSON metrics, NULL tenants of the shared line): a tenant's report is its rows, the
operator's is everyone's. The rows use a family and tenants of their own, so the shared database's other rows stay apart."""

from __future__ import annotations

from evaluation.report import build_report
from evaluation.report.data import load_report_data
from schemas.database import Database
from schemas.settings import Settings
from tests import report_rows


def test_the_report_reads_a_tenant_s_rows_from_postgres(settings: Settings, postgres_url: str, unique: str) -> None:
    db = Database.from_settings(settings.override(database_url=postgres_url))
    family, acme, globex = f"family-{unique}", f"acme-{unique}", f"globex-{unique}"
    report_rows.seed(db, acme=acme, globex=globex, family=family)
    data = load_report_data(db, tenant=acme)
    assert {a.version for a in data.answers} == {report_rows.in_family(v, family) for v in report_rows.ACME_VERSIONS}
    assert {r.tenant for r in data.runs} == {acme} and len(data.ratings) == 52 and data.answers[0].metrics["context_overlap"] == 0.7
    html = build_report(db, tenant=acme)
    assert report_rows.in_family(report_rows.ACME_V2, family) in html and report_rows.GLOBEX_SECRET not in html
    assert report_rows.in_family(report_rows.GLOBEX_V1, family) not in html
