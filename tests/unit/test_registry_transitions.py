"""Registry transitions are compare-and-set on the state they were decided on: two deciders that read
the same canary (two eval consumers, or a person and the canary judge) cannot both act on it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from models.registry import InvalidTransition, ModelRegistry
from schemas.database import Database
from schemas.outbox_store import OutboxStore
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


@pytest.fixture
def announcing(registry: ModelRegistry) -> ModelRegistry:
    return ModelRegistry(registry.db, outbox_scope="scope.")


def owed(registry: ModelRegistry) -> list[tuple[str, str, str]]:
    """(version, state, tenant of the event) of every model.updated the transitions wrote, in order."""
    return [(e.aggregate_id, json.loads(e.payload)["state"], json.loads(e.payload)["tenant"])
            for e in OutboxStore(registry.db).unsent("scope.") if e.type == "model.updated"]


def test_each_transition_writes_the_model_updated_of_every_version_it_moved(announcing: ModelRegistry) -> None:
    announcing.start_canary("fam@lora-bbbbbbbbbbbb", share=0.5, actor="gate", reason="newer", caused_by="t")
    # the canary it replaced is announced too: agents must stop serving it
    assert owed(announcing) == [("fam@lora-aaaaaaaaaaaa", "rolled_back", "t"), ("fam@lora-bbbbbbbbbbbb", "canary", "t")]
    announcing.promote("fam@lora-bbbbbbbbbbbb", actor="judge", reason="no drop")
    assert owed(announcing)[2:] == [("fam@lora-bbbbbbbbbbbb", "active", "t")]  # no incumbent of its own on t's line
    announcing.rollback("fam@lora-bbbbbbbbbbbb", actor="person", reason="bad", caused_by="t")
    assert owed(announcing)[3:] == [("fam@lora-bbbbbbbbbbbb", "rolled_back", "t")]


def test_a_move_whose_announcement_cannot_be_written_does_not_happen(announcing: ModelRegistry, monkeypatch) -> None:
    """One transaction: no moved version without its model.updated, and no model.updated without its move."""
    import models.registry

    def broken(*args, **kwargs):
        raise RuntimeError("outbox unavailable")

    monkeypatch.setattr(models.registry, "outbox_entry", broken)
    with pytest.raises(RuntimeError, match="outbox unavailable"):
        announcing.promote("fam@lora-aaaaaaaaaaaa", actor="judge", reason="no drop")
    assert announcing.get_version("fam@lora-aaaaaaaaaaaa").state == "canary"  # type: ignore[union-attr]
    assert [d.action for d in announcing.decisions(FAMILY) if d.version == "fam@lora-aaaaaaaaaaaa"] == ["candidate", "canary"]
    assert owed(announcing) == []
