"""Why a deployed process refuses to start, in one line.

A misconfigured pod (an unreachable bootstrap server, a secret that was never mounted) should say
what is wrong and exit non-zero, so `kubectl logs` shows the cause at once, instead of a stack
trace per restart of a crash loop. Dependencies that are merely slow to come up are still waited
for first (`RAGLOOP_WORKERS_START_PATIENCE_S`, streams/patience.py); this is what happens after.
"""

from __future__ import annotations

from schemas.settings import Settings, redact_url
from streams.patience import is_transient


def missing_secrets(settings: Settings, role: str) -> list[str]:
    """The variables `role` cannot run without in this configuration, which are unset."""
    if role != "gateway" or not settings.auth_enabled:
        return []
    keys = settings.security.api_keys
    return ["RAGLOOP_API_KEYS"] if keys is None or not keys.get_secret_value().strip() else []


def unreachable(settings: Settings, error: BaseException) -> str | None:
    """The one line saying which dependency could not be reached, or None when `error` is not that."""
    if not (is_transient(error) or _admin_unreachable(error)):
        return None
    module = type(error).__module__.split(".")[0]
    dependency = {"kafka": f"Kafka at {redact_url(settings.broker.url)}", "aiokafka": f"Kafka at {redact_url(settings.broker.url)}",
                  "sqlalchemy": "the database (RAGLOOP_DATABASE_URL)", "psycopg": "the database (RAGLOOP_DATABASE_URL)",
                  "opensearchpy": f"the search service at {redact_url(settings.search.url)}"}.get(module, "a dependency")
    return (f"cannot reach {dependency} after {settings.workers.start_patience_s:g} s "
            f"(RAGLOOP_WORKERS_START_PATIENCE_S): {_said(error)}")


def _admin_unreachable(error: BaseException) -> bool:
    """kafka-python (the admin client that creates topics at start) has error classes of its own,
    apart from aiokafka's that `is_transient` knows."""
    from kafka.errors import KafkaError

    return isinstance(error, KafkaError) and bool(error.retriable)


def _said(error: BaseException) -> str:
    text, name = str(error), type(error).__name__
    return text if text.startswith(name) else f"{name}: {text}"
