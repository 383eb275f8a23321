"""A person promotes, rolls back or shares a model version (HTTP API or CLI): one registry transition,
audited with its actor; the registry writes the `model.updated` of every version it moved into the
outbox in the same transaction, and the caller delivers them (`Outbox.deliver_now`), so every agent
process converges without a restart.

    decision = act(registry, "promote", version, actor="api:tenantA", reason="looks right to me", caused_by="tenantA")
"""

from __future__ import annotations

from typing import Literal

from models.registry import ModelRegistry
from schemas.tables import ModelDecisionRecord

Action = Literal["promote", "rollback", "share"]
DEFAULT_REASONS: dict[Action, str] = {"promote": "promoted by hand", "rollback": "rolled back by hand", "share": "marked shared by an operator"}


def act(registry: ModelRegistry, action: Action, version: str, *, actor: str, reason: str | None,
        caused_by: str = "default") -> ModelDecisionRecord:
    """Do the transition (announced through the outbox by the registry itself); `caused_by`: the tenant who asked."""
    if action == "promote":
        return registry.promote(version, actor=actor, reason=reason or DEFAULT_REASONS[action], caused_by=caused_by)
    if action == "rollback":
        return registry.rollback(version, actor=actor, reason=reason or DEFAULT_REASONS[action], caused_by=caused_by)
    return registry.share(version, actor=actor, reason=reason or DEFAULT_REASONS[action], caused_by=caused_by)
