"""Configuration (README "Configuration"): `RAGLOOP_*` variables, or a TOML file (`ragloop.toml` in the
working directory, or `RAGLOOP_CONFIG`); explicit arguments beat the environment, which beats the
file. Values are grouped into sections (schemas/settings.py) and schemas/settings.py is the only
module that reads the environment."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from pydantic import SecretStr, ValidationError

from schemas.settings import Settings

ROOT = Path(__file__).resolve().parents[2]

TOML = """
broker_url = "kafka://broker-a:9092,broker-b:9092"
kafka_partitions = 7
fetch_allow_private = true
topic_prefix = "staging."
"""


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A working directory and an environment without any RAGLOOP_* setting of the developer's shell."""
    for name in [*Settings.env_names(), "RAGLOOP_CONFIG"]:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_a_ragloop_toml_in_the_working_directory_sets_fields_with_their_types(workdir: Path) -> None:
    (workdir / "ragloop.toml").write_text(TOML)
    settings = Settings()
    assert settings.broker.kafka_bootstrap == ["broker-a:9092", "broker-b:9092"]
    assert (settings.broker.kafka_partitions, settings.ingest.fetch_allow_private, settings.broker.topic_prefix) == (7, True, "staging.")


def test_the_toml_file_may_also_be_written_in_sections(workdir: Path) -> None:
    (workdir / "ragloop.toml").write_text('[retrieval]\nk = 6\nfusion = "rrf"\n[chunking]\nmax_tokens = 200\n')
    settings = Settings()
    assert (settings.retrieval.k, settings.retrieval.fusion, settings.chunking.max_tokens) == (6, "rrf", 200)


def test_ragloop_config_names_the_file_when_settings_are_built(workdir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (workdir / "elsewhere.toml").write_text("task_lease_s = 7.5\n")
    assert Settings().tasks.lease_s == 60.0
    monkeypatch.setenv("RAGLOOP_CONFIG", str(workdir / "elsewhere.toml"))
    assert Settings().tasks.lease_s == 7.5


def test_without_a_file_the_documented_defaults_hold(workdir: Path) -> None:
    settings = Settings()
    assert (settings.broker.url, settings.search.url, settings.broker.kafka_partitions, settings.broker.topic_prefix) == ("memory://", "embedded://", 3, "")
    assert settings.home == Path.home() / ".ragloop"


def test_the_environment_overrides_the_file(workdir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (workdir / "ragloop.toml").write_text(TOML)
    monkeypatch.setenv("RAGLOOP_KAFKA_PARTITIONS", "5")
    settings = Settings()
    assert settings.broker.kafka_partitions == 5 and settings.broker.topic_prefix == "staging."  # the rest still comes from the file


def test_explicit_arguments_override_the_environment_and_the_file(workdir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (workdir / "ragloop.toml").write_text(TOML)
    monkeypatch.setenv("RAGLOOP_KAFKA_PARTITIONS", "5")
    settings = Settings(broker={"kafka_partitions": 2})
    assert settings.broker.kafka_partitions == 2 and settings.broker.topic_prefix == "staging."  # sections merge field by field


@pytest.mark.parametrize(("variable", "value", "path", "expected"), [
    ("RAGLOOP_HOME", "/data/rag", "home", Path("/data/rag")),
    ("RAGLOOP_MODEL_CACHE", "/models", "model_cache", Path("/models")),
    ("RAGLOOP_LOG_LEVEL", "DEBUG", "log_level", "DEBUG"),
    ("RAGLOOP_BROKER_URL", "kafka://k:9092", "broker.url", "kafka://k:9092"),
    ("RAGLOOP_SEARCH_URL", "http://os:9200", "search.url", "http://os:9200"),
    ("RAGLOOP_OPENSEARCH_INDEX", "idx", "search.opensearch_index", "idx"),
    ("RAGLOOP_LLM", "vllm://gpu:8000", "llm.model", "vllm://gpu:8000"),
    ("RAGLOOP_MAX_NEW_TOKENS", "12", "llm.max_new_tokens", 12),
    ("RAGLOOP_EMBEDDER_BACKEND", "torch", "embedder.backend", "torch"),
    ("RAGLOOP_RETRIEVAL_K", "7", "retrieval.k", 7),
    ("RAGLOOP_RETRIEVAL_FUSION", "rrf", "retrieval.fusion", "rrf"),
    ("RAGLOOP_RETRIEVAL_CANDIDATES", "50", "retrieval.candidates", 50),
    ("RAGLOOP_CHUNKING_OVERLAP_TOKENS", "16", "chunking.overlap_tokens", 16),
    ("RAGLOOP_AGENT_RELEVANCE_THRESHOLD", "0.3", "agent.relevance_threshold", 0.3),
    ("RAGLOOP_TRAIN_REHEARSAL_EXAMPLES", "4", "training.rehearsal_examples", 4),
    ("RAGLOOP_WORKER_MAX_RETRIES", "1", "workers.max_retries", 1),
    ("RAGLOOP_TASK_LEASE_S", "2.5", "tasks.lease_s", 2.5),
    ("RAGLOOP_MAX_QUEUED_TASKS", "9", "tasks.max_queued", 9),
    ("RAGLOOP_INGEST_BATCH", "8", "ingest.batch", 8),
    ("RAGLOOP_API_PORT", "9000", "gateway.port", 9000),
    ("RAGLOOP_AUTH", "off", "security.auth", "off"),
    ("RAGLOOP_SLACK_TENANT", "acme", "slack.tenant", "acme"),
    ("RAGLOOP_ALLOW_PRIVATE_CALLBACKS", "true", "callbacks.allow_private", True),
])
def test_each_variable_sets_its_field_in_its_section(workdir: Path, monkeypatch: pytest.MonkeyPatch,
                                                     variable: str, value: str, path: str, expected: object) -> None:
    monkeypatch.setenv(variable, value)
    found: object = Settings()
    for part in path.split("."):
        found = getattr(found, part)
    assert found == expected


def test_the_llm_api_key_is_a_secret_setting(workdir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RAGLOOP_LLM_API_KEY", "sk-123")
    key = Settings().llm.api_key
    assert isinstance(key, SecretStr) and key.get_secret_value() == "sk-123"


def test_override_takes_the_variable_names_and_leaves_the_original_alone(workdir: Path) -> None:
    settings = Settings()
    fast = settings.override(task_lease_s=2.0, broker_url="kafka://k:9092", home=Path("/elsewhere"))
    assert (fast.tasks.lease_s, fast.broker.url, fast.home) == (2.0, "kafka://k:9092", Path("/elsewhere"))
    assert fast.tasks.max_queued == settings.tasks.max_queued and settings.tasks.lease_s == 60.0


def test_override_validates_and_refuses_unknown_names(workdir: Path) -> None:
    with pytest.raises(ValidationError, match="RAGLOOP_BROKER_URL must start with one of"):
        Settings().override(broker_url="redis://cache:6379")
    with pytest.raises(ValueError, match="unknown setting 'task_lease'"):
        Settings().override(task_lease=2.0)


def test_a_flat_attribute_names_its_new_place(workdir: Path) -> None:
    with pytest.raises(AttributeError, match=r"Settings.task_lease_s is now Settings.tasks.lease_s"):
        Settings().task_lease_s  # noqa: B018


def test_the_redacted_configuration_hides_every_secret_and_shows_the_rest(workdir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RAGLOOP_API_KEYS", "k1=acme")
    monkeypatch.setenv("RAGLOOP_LLM_API_KEY", "sk-123")
    monkeypatch.setenv("RAGLOOP_TASK_LEASE_S", "9")
    shown = Settings().redacted()
    assert shown["security"]["api_keys"] == shown["llm"]["api_key"] == "**********"
    assert shown["security"]["webhook_secret"] is None  # unset secrets say so
    assert shown["tasks"]["lease_s"] == 9.0 and "k1=acme" not in repr(shown) and "sk-123" not in repr(shown)


def test_config_show_prints_the_effective_configuration_without_secrets(workdir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    from streams.cli import app

    (workdir / "ragloop.toml").write_text("[retrieval]\nk = 6\n")
    monkeypatch.setenv("RAGLOOP_WEBHOOK_SECRET", "whsec-1")
    shown = CliRunner().invoke(app, ["config", "show"])
    assert shown.exit_code == 0 and "whsec-1" not in shown.output
    assert json.loads(shown.output)["retrieval"]["k"] == 6


def test_a_bad_value_in_the_file_is_refused_naming_the_variable(workdir: Path) -> None:
    (workdir / "ragloop.toml").write_text('broker_url = "redis://cache:6379"\n')
    with pytest.raises(ValidationError, match=r"RAGLOOP_BROKER_URL must start with one of"):
        Settings()


def test_no_module_but_the_settings_reads_the_environment() -> None:
    readers = re.compile(r"os\.environ|getenv\(")
    allowed = {"schemas/settings.py"}
    offenders = [path.relative_to(ROOT).as_posix() for folder in ("agents", "evaluation", "indexing", "models", "schemas", "streams", "trainers")
                 for path in sorted((ROOT / folder).rglob("*.py")) if readers.search(path.read_text())]
    assert [path for path in offenders if path not in allowed] == []
