"""Registry transitions are compare-and-set on the state they were decided on: two deciders that read
the same canary (two eval consumers, or a person and the canary judge) cannot both act on it."""

from __future__ import annotations

from pathlib import Path

import pytest

from models.registry import InvalidTransition, ModelRegistry
from schemas.database import Database
from schemas.settings import Settings
from schemas.tables import ModelVersionRecord

FAMILY = "fam"


@pytest.fixture
def registry(tmp_path: Path) -> ModelRegistry:
    registry = ModelRegistry(Database.from_settings(Settings(home=tmp_path)))
    registry.ensure_base_version(FAMILY)
    for version in ("fam@lora-aaaaaaaaaaaa", "fam@lora-bbbbbbbbbbbb"):
        registry.register_candidate(ModelVersionRecord(version=version, family=FAMILY, tenant="t", state="candidate"), actor="test", reason="seed")
    registry.start_canary("fam@lora-aaaaaaaaaaaa", share=0.5, actor="test", reason="seed")
    return registry


def test_a_transition_decided_on_a_stale_read_is_refused(registry: ModelRegistry) -> None:
    with registry.db.session() as stale:
        canary = ModelRegistry._require(stale, "fam@lora-aaaaaaaaaaaa")  # read as `canary` …
        registry.promote("fam@lora-aaaaaaaaaaaa", actor="auto:canary", reason="first")  # … promoted meanwhile by another decider
        with pytest.raises(InvalidTransition, match="changed while"):
            ModelRegistry._set(stale, canary, "active", "promote", "auto:canary", "second", {})
    promotions = [d for d in registry.decisions(FAMILY) if d.action == "promote"]
    assert [d.reason for d in promotions] == ["first"]


def test_promoting_on_a_line_retires_its_incumbent(registry: ModelRegistry) -> None:
    registry.promote("fam@lora-aaaaaaaaaaaa", actor="a", reason="first")
    registry.promote("fam@lora-bbbbbbbbbbbb", actor="b", reason="second")
    active = [r.version for r in registry.list_versions(FAMILY) if r.tenant == "t" and r.state == "active"]
    assert active == ["fam@lora-bbbbbbbbbbbb"]
    assert registry.get_version("fam@lora-aaaaaaaaaaaa").state == "retired"  # type: ignore[union-attr]
