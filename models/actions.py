"""A person promotes, rolls back or shares a model version (HTTP API or CLI): one registry transition,
audited with its actor, and the `model.updated` events the caller publishes (through the outbox) for
every version whose state it changed, so every agent process converges without a restart.

    decision, events = act(registry, "promote", version, actor="api:tenantA", reason="looks right to me")
"""

from __future__ import annotations

import math
from typing import Literal

from models.registry import ModelRegistry
from schemas.events import ModelUpdated
from schemas.tables import ModelDecisionRecord, ModelVersionRecord

Action = Literal["promote", "rollback", "share"]
DEFAULT_REASONS: dict[Action, str] = {"promote": "promoted by hand", "rollback": "rolled back by hand", "share": "marked shared by an operator"}


def transition(registry: ModelRegistry, action: Action, version: str, *, actor: str, reason: str) -> ModelDecisionRecord:
    """The registry call behind an action; raises UnknownVersion (404) or InvalidTransition (409) with the reason."""
    if action == "promote":
        return registry.promote(version, actor=actor, reason=reason)
    if action == "rollback":
        return registry.rollback(version, actor=actor, reason=reason)
    return registry.share(version, actor=actor, reason=reason)


def latest_updates(registry: ModelRegistry, version: str, *, caused_by: str) -> list[ModelUpdated]:
    """`updates` for the latest decision on `version` (what a training run or the CLI just did to it); [] when none."""
    row = registry.get_version(version)
    if row is None:
        return []
    decided = [d for d in registry.decisions(row.family, row.tenant, every_tenant=False) if d.version == version]
    return updates(registry, decided[-1], caused_by=caused_by) if decided else []


def updates(registry: ModelRegistry, decision: ModelDecisionRecord, *, caused_by: str) -> list[ModelUpdated]:
    """`model.updated` for the acted version and for what the same transaction moved beside it: the version a
    promotion retired, or the one a rollback handed the line back to."""
    acted = registry.get_version(decision.version)
    assert acted is not None, decision.version  # the transition just wrote it
    rows = [acted]
    replaced = decision.numbers.get("replaced")
    if isinstance(replaced, str) and (retired := registry.get_version(replaced)) is not None:
        rows.append(retired)
    if decision.action == "rollback":
        now_active = registry.active_version(acted.family, acted.tenant)
        if now_active.version != acted.version:
            rows.append(now_active)
    return [_event(row, decision, caused_by) for row in rows]


def act(registry: ModelRegistry, action: Action, version: str, *, actor: str, reason: str | None,
        caused_by: str = "default") -> tuple[ModelDecisionRecord, list[ModelUpdated]]:
    """Do the transition; returns its decision and the events to publish. `caused_by`: the tenant who asked."""
    decision = transition(registry, action, version, actor=actor, reason=reason or DEFAULT_REASONS[action])
    return decision, updates(registry, decision, caused_by=caused_by)


def _event(row: ModelVersionRecord, decision: ModelDecisionRecord, caused_by: str) -> ModelUpdated:
    """The version's metrics and, for the version the decision acted on, the numbers it was decided on (a canary's
    judgement, a gate's scores): one builder for every `model.updated`, whoever moved the version."""
    numbers = {**row.metrics, **(decision.numbers if row.version == decision.version else {})}
    metrics = {k: float(v) for k, v in numbers.items() if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)}
    return ModelUpdated(event_id=f"{row.version}.{row.state}.{decision.id}", tenant=caused_by, model_family=row.family,
                        version=row.version, adapter_path=row.artifact_uri, state=row.state, metrics=metrics,
                        version_tenant=row.tenant, canary_share=row.canary_share, reason=decision.reason[:4000])
