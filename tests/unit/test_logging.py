"""Structured logs (README: `RAGLOOP_LOG_LEVEL`, "JSON lines when not on a terminal"): one JSON object
per line with `event`, `level` and a UTC `timestamp`, readable key=value on a terminal."""

from __future__ import annotations

import io
import json
import sys
from collections.abc import Iterator
from datetime import datetime, timedelta

import pytest
import structlog

from schemas.settings import Settings
from streams.logging import configure_logging

log = structlog.get_logger("ragloop.test")


@pytest.fixture(autouse=True)
def restore_structlog() -> Iterator[None]:
    """configure_logging is process-wide; put back whatever the other tests run with."""
    saved = structlog.get_config()
    yield
    structlog.contextvars.clear_contextvars()
    structlog.configure(**saved)


def json_lines(capsys: pytest.CaptureFixture[str]) -> list[dict]:
    return [json.loads(line) for line in capsys.readouterr().err.splitlines()]


def test_off_a_terminal_each_call_is_one_json_line_with_event_level_and_utc_timestamp(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("INFO")
    log.info("document indexed", document_id="d1", chunks=3)
    [record] = json_lines(capsys)
    assert (record["event"], record["level"], record["document_id"], record["chunks"]) == ("document indexed", "info", "d1", 3)
    assert datetime.fromisoformat(record["timestamp"]).utcoffset() == timedelta(0)


def test_a_traceback_stays_inside_its_json_line(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("INFO")
    try:
        1 / 0  # noqa: B018 — raises on purpose, to log a real traceback
    except ZeroDivisionError:
        log.exception("handler failed")
    [record] = json_lines(capsys)
    assert record["level"] == "error" and "Traceback" in record["exception"] and "ZeroDivisionError" in record["exception"]


def test_context_bound_for_a_task_is_on_its_lines(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("INFO")
    structlog.contextvars.bind_contextvars(task_id="t-1")
    log.info("generating")
    [record] = json_lines(capsys)
    assert record["task_id"] == "t-1"


def test_lines_below_the_level_are_dropped(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("warning")
    log.info("routine")
    log.warning("unusual")
    assert [record["event"] for record in json_lines(capsys)] == ["unusual"]


def test_the_level_of_the_settings_comes_from_ragloop_log_level(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("RAGLOOP_LOG_LEVEL", "ERROR")
    configure_logging(Settings().log_level)
    log.warning("unusual")
    log.error("broken")
    assert [record["event"] for record in json_lines(capsys)] == ["broken"]


def test_on_a_terminal_lines_are_readable_key_values_not_json(monkeypatch: pytest.MonkeyPatch) -> None:
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    terminal = Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    configure_logging("INFO")
    log.info("document indexed", document_id="d1")
    line = terminal.getvalue().strip()
    assert "document indexed" in line and "document_id" in line and "d1" in line
    with pytest.raises(json.JSONDecodeError):
        json.loads(line)
