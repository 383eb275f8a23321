"""`ragloop report` opened in a real browser (Debian's headless chromium through selenium): every plot is
drawn with a size on the page, one quality line per version, the canary periods shaded, the page loads
nothing from anywhere, and a screenshot of it is kept. A report from an empty database shows its
"no data yet" panels instead."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from evaluation.report.svg import element_id
from schemas.database import Database
from schemas.settings import Settings
from tests import report_rows
from tests.integration.cli_harness import Cli, embedded_env
from tests.support import unavailable

CHROMIUM, CHROMEDRIVER = Path("/usr/bin/chromium"), Path("/usr/bin/chromedriver")
QUALITY = ("token_f1", "rouge_l", "bleu", "answer_relevance", "context_overlap")


@pytest.fixture
def browser(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    if not (CHROMIUM.exists() and CHROMEDRIVER.exists()):
        unavailable(f"Debian's headless chromium is not installed ({CHROMIUM}, {CHROMEDRIVER}): apt-get install chromium chromium-driver")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    monkeypatch.setenv("SE_OFFLINE", "true")  # selenium must not try to download a browser or driver
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1280,4000"):
        options.add_argument(argument)
    driver = webdriver.Chrome(options=options, service=Service(str(CHROMEDRIVER)))
    try:
        yield driver
    finally:
        driver.quit()


def write_report(home: Path, out: Path, *extra: str) -> Path:
    Cli(embedded_env(home)).ok("report", "--out", str(out), *extra)
    return out


def boxes(driver: Any, selector: str) -> list[dict[str, float]]:
    """The on-page bounding box of every element `selector` matches."""
    return driver.execute_script("return [...document.querySelectorAll(arguments[0])].map(e => e.getBoundingClientRect().toJSON())", selector)


def drawn(box: dict[str, float]) -> bool:
    return box["width"] > 0 and box["height"] > 0


def test_the_report_s_plots_render_in_a_real_browser(browser: Any, tmp_path: Path) -> None:
    home = tmp_path / "home"
    report_rows.seed(Database.from_settings(Settings(home=home, broker={"url": "memory://"}, search={"url": "embedded://"})))
    page = write_report(home, tmp_path / "report.html", "--tenant", "acme")
    browser.get(page.as_uri())

    for name in ("quality", "feedback", "training", "decisions"):
        [figure] = boxes(browser, f"#plot-{name} svg")
        assert figure["width"] > 300 and figure["height"] > 150, (name, figure)
    assert boxes(browser, "[id^=empty-]") == []
    for metric in QUALITY:
        lines = {version: boxes(browser, f"#{element_id('quality', metric, version)}") for version in report_rows.ACME_VERSIONS}
        assert all(len(found) == 1 and found[0]["width"] > 0 for found in lines.values()), (metric, lines)
        assert len(boxes(browser, f"[id^=quality-{metric}-]")) == len(report_rows.ACME_VERSIONS)  # nobody else's version
        shades = boxes(browser, f"[id^=canary-{metric}-]")
        assert len(shades) == 2 and all(drawn(b) for b in shades), (metric, shades)
    assert all(drawn(b) for b in boxes(browser, "[id^=quality-token_f1-]"))
    bars = boxes(browser, "[id^=feedback-up-], [id^=feedback-down-]")
    assert len(bars) >= 10 and sum(drawn(b) for b in bars) >= 10
    runs = boxes(browser, "[id^=run-]")
    assert len(runs) == 4 and all(drawn(b) for b in runs)
    assert sum(drawn(b) for b in boxes(browser, "[id^=gate-]")) == 6  # candidate and incumbent of three gated runs
    for action in ("canary", "promote", "rollback"):
        assert [b for b in boxes(browser, f"#decision-{action}") if drawn(b)], action
    assert browser.execute_script("return performance.getEntriesByType('resource').length") == 0  # nothing fetched

    screenshot = tmp_path / "report.png"
    assert browser.save_screenshot(str(screenshot))
    assert screenshot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and screenshot.stat().st_size > 100_000  # a page of plots, not a blank one


def test_an_empty_report_shows_no_data_panels_in_the_browser(browser: Any, tmp_path: Path) -> None:
    page = write_report(tmp_path / "home", tmp_path / "empty.html")
    browser.get(page.as_uri())
    panels = boxes(browser, "[id^=empty-]")
    assert len(panels) == 4 and all(drawn(b) for b in panels)
    assert "No data yet" in browser.find_element("id", "empty-quality").text
    assert boxes(browser, "svg") == []
