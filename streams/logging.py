"""Structured logs: JSON lines for machines (non-TTY, cluster), readable key=value on a terminal."""

from __future__ import annotations

import logging
import sys
from typing import TextIO, cast

import structlog


def configure_logging(level: str = "INFO") -> None:
    """`level` is `settings.log_level` (RAGLOOP_LOG_LEVEL) or the CLI's `--log-level`."""
    level = level.upper()
    renderer = structlog.dev.ConsoleRenderer() if sys.stderr.isatty() else structlog.processors.JSONRenderer()
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level)),
        # PrintLogger only print()s to its file (write, then flush), all that `_CurrentStderr` has of a TextIO.
        logger_factory=structlog.PrintLoggerFactory(file=cast(TextIO, _CurrentStderr())),
    )
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr, format="%(levelname)s %(name)s: %(message)s")
    root = logging.getLogger()
    if level == "DEBUG":
        root.setLevel(logging.DEBUG)
    for handler in root.handlers:
        if not any(isinstance(f, ExpectedRaceFilter) for f in handler.filters):
            handler.addFilter(ExpectedRaceFilter())


# Kafka clients log these at ERROR while a broker is still electing the group coordinator (the
# first seconds of a fresh cluster, or of a new consumer group); they retry on their own.
EXPECTED_RACES = ("CoordinatorNotAvailable", "NotCoordinator", "CoordinatorLoadInProgress")


class ExpectedRaceFilter(logging.Filter):
    """Turns the retried start-up races of the Kafka clients into DEBUG records: logged only when
    DEBUG is on, so an ERROR in a worker's log always means something needs a person."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno > logging.DEBUG and any(name in record.getMessage() for name in EXPECTED_RACES):
            record.levelno, record.levelname = logging.DEBUG, "DEBUG"
            return logging.getLogger().isEnabledFor(logging.DEBUG)
        return True


class _CurrentStderr:
    """Whatever `sys.stderr` is when a line is written, not when logging was set up: tools and test
    runners swap it, and a logger bound to a swapped-out (closed) stream would fail every later
    log call, taking down the handler that logged."""

    def write(self, text: str) -> int:
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()
