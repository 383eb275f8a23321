"""The learning-loop report without a browser: what each panel draws, what an empty database shows, and
that a tenant's report holds nothing of another tenant's."""

from __future__ import annotations

import re
import warnings
from datetime import timedelta

import pytest

from evaluation.report import build_report
from evaluation.report.data import Decision, Rating, ReportData, load_report_data
from evaluation.report.periods import canary_periods
from evaluation.report.render import render_report
from evaluation.report.series import rolling_mean
from evaluation.report.svg import element_id
from schemas.database import Database
from schemas.events import utcnow
from schemas.settings import Settings
from schemas.tables import ModelDecisionRecord
from tests import report_rows
from tests.report_rows import ACME_V1, ACME_V2, ACME_VERSIONS, GLOBEX_SECRET, GLOBEX_V1


@pytest.fixture
def db(settings: Settings) -> Database:
    return Database.from_settings(settings)


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> Database:
    """Seeded once for the module: the tests only read."""
    home = tmp_path_factory.mktemp("report")
    db = Database.from_settings(Settings(home=home, broker={"url": "memory://"}, search={"url": "embedded://"}))
    report_rows.seed(db)
    return db


@pytest.fixture(scope="module")
def acme_html(seeded: Database) -> str:
    return build_report(seeded, tenant="acme")


def ids(html: str, prefix: str) -> list[str]:
    return re.findall(rf'id="({re.escape(prefix)}[^"]*)"', html)


def test_an_empty_database_renders_a_no_data_panel_for_every_plot(db: Database) -> None:
    html = build_report(db)
    assert ids(html, "empty-") == ["empty-quality", "empty-feedback", "empty-training", "empty-decisions"]
    assert "<svg" not in html


def test_every_plot_is_drawn_from_seeded_rows(acme_html: str) -> None:
    html = acme_html
    assert ids(html, "empty-") == []
    assert ids(html, "plot-") == ["plot-quality", "plot-feedback", "plot-training", "plot-decisions"]


def test_quality_has_one_line_per_version_for_each_metric_present(acme_html: str) -> None:
    html = acme_html
    for metric in ("token_f1", "rouge_l", "bleu", "answer_relevance", "context_overlap"):
        assert sorted(ids(html, f"quality-{metric}-")) == sorted(element_id("quality", metric, v) for v in ACME_VERSIONS)
    assert ids(html, "quality-exact_match-") == [] and ids(html, "quality-latency_ms-") == []  # no values / not quality


def test_canary_periods_are_shaded_on_every_quality_panel(acme_html: str) -> None:
    html = acme_html
    assert len(ids(html, "canary-token_f1-")) == 2  # ACME_V1 (promoted) and ACME_V2 (rolled back)
    assert "rolled back" in html and "promoted" in html


def test_runs_show_their_gate_numbers_and_decisions_their_actors_and_reasons(acme_html: str) -> None:
    html = acme_html
    assert len(ids(html, "run-")) == 4 and len(ids(html, "gate-gate_candidate-")) == 3
    assert "loss became NaN at step 3" in html and "&#34;gate_candidate&#34;: 0.81" in html
    assert ids(html, "decision-rollback") and "token_f1 dropped 0.31 below the incumbent" in html and "auto:canary" in html


def test_a_tenant_s_report_holds_nothing_of_another_tenant(seeded: Database) -> None:
    acme = build_report(seeded, tenant="acme")  # built here: the test must not lean on another fixture's scope
    assert GLOBEX_V1 not in acme and GLOBEX_SECRET not in acme and "globex_number" not in acme and "globex_steps" not in acme
    globex = build_report(seeded, tenant="globex")
    assert ACME_V1 not in globex and ACME_V2 not in globex and "NaN" not in globex and "token_f1 dropped" not in globex


def test_a_tenant_sees_the_shared_line_s_decisions_without_their_numbers(db: Database) -> None:
    report_rows.seed(db)
    with db.session() as s:
        s.add(ModelDecisionRecord(family=report_rows.FAMILY, version=report_rows.BASE, action="promote", actor="operator",
                                  reason="shared line check", numbers={"all_tenants_total": 4242}))
        s.commit()
    shared = [d for d in load_report_data(db, tenant="acme").decisions if d.reason == "shared line check"]
    assert shared and shared[0].numbers == {}
    assert "all_tenants_total" in build_report(db) and "all_tenants_total" not in build_report(db, tenant="acme")


def test_the_operator_s_report_covers_every_tenant_line(seeded: Database) -> None:
    html = build_report(seeded)
    assert GLOBEX_V1 in html and ACME_V1 in html and "(20%)" in html


def test_the_page_is_self_contained(seeded: Database) -> None:
    html = build_report(seeded)
    assert "<script" not in html and not re.search(r'(src|href)="(https?:)?//', html) and "@import" not in html


def test_text_from_events_is_escaped(db: Database) -> None:
    with db.session() as s:
        s.add(ModelDecisionRecord(family="f", tenant="t", version="f@lora-x", action="rollback", actor="api:<b>", reason="<script>alert(1)</script>"))
        s.commit()
    html = build_report(db, tenant="t")
    assert "<script>alert" not in html and "&lt;script&gt;alert(1)" in html


def test_a_canary_closes_on_promote_or_rollback_and_runs_until_now_otherwise() -> None:
    now = utcnow()
    at = [now - timedelta(minutes=10 - m) for m in range(10)]
    decisions = [Decision(at[0], "t", "v1", "canary", "a", "", {}), Decision(at[2], "t", "v1", "promote", "a", "", {}),
                 Decision(at[3], "t", "v2", "canary", "a", "", {}), Decision(at[5], "t", "v2", "rollback", "a", "", {}),
                 Decision(at[6], "t", "v3", "canary", "a", "", {})]
    periods = canary_periods(decisions, until=now)
    assert [(p.version, p.start, p.end, p.outcome) for p in periods] == [("v1", at[0], at[2], "promoted"), ("v2", at[3], at[5], "rolled back"),
                                                                         ("v3", at[6], now, "running")]


def test_the_rolling_mean_averages_what_there_is_until_the_window_fills() -> None:
    assert rolling_mean([1, 2, 3, 4, 5], window=2) == [1.0, 1.5, 2.5, 3.5, 4.5]
    assert rolling_mean([2, 4], window=5) == [2.0, 3.0]


@pytest.mark.parametrize("span", [timedelta(0), timedelta(minutes=7), timedelta(hours=4), timedelta(days=2), timedelta(days=90)])
def test_any_history_span_renders_without_warnings(span: timedelta) -> None:
    """matplotlib warns (on the server's stderr) when it cannot place date ticks: a span of seconds or months must still fit."""
    now = utcnow()
    data = ReportData(tenant="t", generated_at=now, ratings=[Rating(now - span, "up", False), Rating(now, "down", True)],
                      decisions=[Decision(now - span, "t", "v", "canary", "a", "r", {}), Decision(now, "t", "v", "promote", "a", "r", {})])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        html = render_report(data)
    assert ids(html, "plot-") == ["plot-feedback", "plot-decisions"]
