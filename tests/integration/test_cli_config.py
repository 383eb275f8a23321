"""The configuration file as a user meets it (README "Configuration"): `ragloop.toml` in the working
directory or `RAGLOOP_CONFIG=path` configures every command, and an environment variable overrides
the file. Observed through `ragloop models list`, which shows the configured model family in the
configured home. `ragloop config show` prints what every command runs with, secrets redacted."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

from tests.integration.cli_harness import Cli

# Variables of the developer's shell that would hide what the file says.
UNSET = ("RAGLOOP_HOME", "RAGLOOP_CONFIG", "RAGLOOP_MODEL_FAMILY", "RAGLOOP_DATABASE_URL", "RAGLOOP_BROKER_URL")


def config(folder: Path, name: str, family: str) -> Path:
    """A TOML file naming a home under `folder` and a model family."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(f'home = "{folder / "home"}"\nmodel_family = "{family}"\n')
    return path


def active_version(cli: Cli) -> str:
    [line] = cli.ok("models", "list").stdout.splitlines()
    marker, version, state, *_ = line.split()
    assert (marker, state) == ("*", "active"), line
    return version


def test_ragloop_toml_in_the_working_directory_configures_the_cli(tmp_path: Path) -> None:
    config(tmp_path / "project", "ragloop.toml", "from-workdir")
    cli = Cli({}, cwd=tmp_path / "project", drop=UNSET)
    assert active_version(cli) == "from-workdir@base"
    assert (tmp_path / "project" / "home" / "ragloop.db").is_file()  # the file's home, not ~/.ragloop


def test_ragloop_config_names_the_file_to_read_instead(tmp_path: Path) -> None:
    config(tmp_path / "project", "ragloop.toml", "from-workdir")
    chosen = config(tmp_path / "etc", "staging.toml", "from-ragloop-config")
    cli = Cli({"RAGLOOP_CONFIG": str(chosen)}, cwd=tmp_path / "project", drop=UNSET)
    assert active_version(cli) == "from-ragloop-config@base"
    assert (tmp_path / "etc" / "home" / "ragloop.db").is_file()


def test_an_environment_variable_overrides_the_file(tmp_path: Path) -> None:
    config(tmp_path / "project", "ragloop.toml", "from-workdir")
    cli = Cli({"RAGLOOP_MODEL_FAMILY": "from-env"}, cwd=tmp_path / "project", drop=UNSET)
    assert active_version(cli) == "from-env@base"


SECRETS = {"RAGLOOP_WEBHOOK_SECRET": "hush-webhook-42", "RAGLOOP_API_KEYS": "key-7f3a=acme",
           "RAGLOOP_SLACK_BOT_TOKEN": "xoxb-secret-token", "RAGLOOP_DATABASE_URL": "postgresql://ragloop:pw-in-url-99@db:5432/ragloop"}


def test_config_show_prints_the_effective_configuration_with_every_secret_redacted(tmp_path: Path) -> None:
    config(tmp_path / "project", "ragloop.toml", "from-workdir")
    cli = Cli({**SECRETS, "RAGLOOP_MAX_NEW_TOKENS": "33"}, cwd=tmp_path / "project", drop=UNSET)
    shown = cli.json("config", "show")
    assert (shown["llm"]["model_family"], shown["llm"]["max_new_tokens"], shown["home"]) == ("from-workdir", 33, str(tmp_path / "project" / "home"))
    assert shown["security"]["webhook_secret"] == shown["security"]["api_keys"] == shown["slack"]["bot_token"] == "**********"
    assert shown["database_url"] == "postgresql://ragloop:**********@db:5432/ragloop"
    as_toml = cli.ok("config", "show", "--toml").stdout
    assert tomllib.loads(as_toml)["llm"]["model_family"] == "from-workdir"  # by section, as a ragloop.toml may be written
    for output in (json.dumps(shown), as_toml):
        assert not [secret for secret in ("hush-webhook-42", "key-7f3a", "xoxb-secret-token", "pw-in-url-99") if secret in output]
