"""Configuration (README "Configuration"): `RAGLOOP_*` variables, or a `ragloop.toml` in the working
directory; explicit arguments beat the environment, which beats the file (schemas/settings.py).
`RAGLOOP_CONFIG=path` is read when the process starts, so tests/integration/test_cli_config.py
covers it through the CLI."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from schemas.settings import Settings

TOML = """
broker_url = "kafka://broker-a:9092,broker-b:9092"
kafka_partitions = 7
fetch_allow_private = true
topic_prefix = "staging."
"""


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A working directory and an environment without any RAGLOOP_* field of the developer's shell."""
    if Settings.model_config.get("toml_file") != "ragloop.toml":
        pytest.skip("RAGLOOP_CONFIG was set when this process started; it replaces ./ragloop.toml")
    for name in Settings.model_fields:
        monkeypatch.delenv(f"RAGLOOP_{name.upper()}", raising=False)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_a_ragloop_toml_in_the_working_directory_sets_fields_with_their_types(workdir: Path) -> None:
    (workdir / "ragloop.toml").write_text(TOML)
    settings = Settings()
    assert settings.kafka_bootstrap == ["broker-a:9092", "broker-b:9092"]
    assert (settings.kafka_partitions, settings.fetch_allow_private, settings.topic_prefix) == (7, True, "staging.")


def test_without_a_file_the_documented_defaults_hold(workdir: Path) -> None:
    settings = Settings()
    assert (settings.broker_url, settings.search_url, settings.kafka_partitions, settings.topic_prefix) == ("memory://", "embedded://", 3, "")


def test_the_environment_overrides_the_file(workdir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (workdir / "ragloop.toml").write_text(TOML)
    monkeypatch.setenv("RAGLOOP_KAFKA_PARTITIONS", "5")
    settings = Settings()
    assert settings.kafka_partitions == 5 and settings.topic_prefix == "staging."  # the rest still comes from the file


def test_explicit_arguments_override_the_environment_and_the_file(workdir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (workdir / "ragloop.toml").write_text(TOML)
    monkeypatch.setenv("RAGLOOP_KAFKA_PARTITIONS", "5")
    assert Settings(kafka_partitions=2).kafka_partitions == 2


def test_a_bad_value_in_the_file_is_refused_naming_the_field(workdir: Path) -> None:
    (workdir / "ragloop.toml").write_text('broker_url = "redis://cache:6379"\n')
    with pytest.raises(ValidationError, match=r"broker_url[\s\S]*must start with one of"):
        Settings()
