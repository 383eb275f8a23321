"""`ragloop models` as an operator uses it, embedded: list per tenant, promote, roll back, share and the audit
trail, with refusals that say why (rolling back the base model, an unknown version)."""

from __future__ import annotations

from pathlib import Path

from models.registry import ModelRegistry
from schemas.database import Database
from schemas.settings import Settings
from schemas.tables import ModelVersionRecord
from tests.integration.cli_harness import Cli, embedded_env

FAMILY = "smollm2-135m-instruct"
BASE, A1 = f"{FAMILY}@base", f"{FAMILY}@lora-aaaaaaaaaaa1"


def test_an_operator_promotes_rolls_back_and_reads_the_trail(tmp_path: Path) -> None:
    home = tmp_path / "home"
    registry = ModelRegistry(Database.from_settings(Settings(home=home)))
    registry.ensure_base_version(FAMILY)
    registry.register_candidate(ModelVersionRecord(version=A1, family=FAMILY, tenant="acme", parent=BASE,
                                                   artifact_uri=f"file:///srv/artifacts/{A1}"), actor="auto:gate", reason="trained")
    cli = Cli(embedded_env(home))

    assert "acme's versions and the shared ones" in cli.ok("models", "list", "--help").stdout
    cli.ok("models", "promote", A1, "--reason", "checked by hand")
    acme = [line.split() for line in cli.ok("models", "list", "--tenant", "acme").stdout.splitlines()]
    assert acme == [[BASE, "standby", "(base", "weights)"], ["*", A1, "active", A1, "[tenant", "acme]"]]
    other = [line.split()[:3] for line in cli.ok("models", "list", "--tenant", "globex").stdout.splitlines()]
    assert other == [["*", BASE, "active"]]  # acme's adapter never shows up for another tenant

    refused = cli("models", "rollback", BASE)
    assert refused.returncode == 1 and "base model" in refused.stderr
    unknown = cli("models", "promote", f"{FAMILY}@lora-000000000000")
    assert unknown.returncode == 2 and "ragloop models list" in unknown.stderr

    cli.ok("models", "rollback", A1, "--reason", "answers got worse")
    assert registry.active_version(FAMILY, "acme").version == BASE
    trail = [line.split(None, 5) for line in cli.ok("models", "decisions", "--tenant", "acme").stdout.splitlines()]
    assert all(t[2] in (BASE, A1) for t in trail)
    assert [(t[2], t[3], t[4]) for t in trail if t[4] == "cli"] == [(A1, "promote", "cli"), (A1, "rollback", "cli")]
    assert "answers got worse" in trail[-1][5]
