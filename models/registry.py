"""Model versions per family and tenant, and every decision that moved one.

Lines: each tenant has its own line of versions, and there is one shared line (tenant None) where
the base model `<family>@base` lives. A request is served by its tenant's active version if the
tenant has one, else by the shared active version; while the tenant has a canary, a stable hash of
the conversation sends `canary_share` of its conversations to the canary instead, so one
conversation never flips between versions mid-canary.

States (`schemas.tables.MODEL_STATES`): candidate → canary → active → retired, or candidate →
rejected, or canary/active → rolled_back. Every transition is one transaction that also writes a
`ModelDecisionRecord` (who, why, on what numbers), so the audit trail and the state cannot disagree,
and, given an `outbox_scope`, the `model.updated` event of every version it moved into the outbox
(`models/announcements.py`): the announcement is durable with the move, never a step after it.

    registry.register_candidate(record, actor="auto:gate", reason="trained on 20 corrections")
    registry.start_canary(version, share=0.2, actor="auto:gate", reason="gate passed", numbers={...})
    registry.choose(family, tenant, conversation_id)      # the version to answer with
    registry.promote(version, actor="auto:canary", reason="30 samples, no drop", numbers={...})
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

from sqlalchemy import update
from sqlmodel import Session, col, select

from models.announcements import model_updated
from schemas.database import Database
from schemas.events import utcnow
from schemas.outbox_store import outbox_entry
from schemas.tables import ModelDecisionRecord, ModelVersionRecord

# What a caller acting for a tenant (an API key) may pin with `model_version`: the versions serving
# its line (its active, its canary, and the shared active). Candidates are untested and rejected or
# rolled-back ones failed; another tenant's versions are behind the tenant wall.
TENANT_PINNABLE_STATES = frozenset({"active", "canary"})


class UnknownVersion(LookupError):
    """No such model version (or not one the caller may see)."""


class InvalidTransition(ValueError):
    """The version exists but cannot make the asked transition from its state (e.g. rolling back the base model)."""


@dataclass(frozen=True)
class Serving:
    """What answers a tenant's requests now."""

    active: ModelVersionRecord
    canary: ModelVersionRecord | None

    @property
    def versions(self) -> list[str]:
        return [self.active.version] + ([self.canary.version] if self.canary else [])


def base_version(family: str) -> str:
    return f"{family}@base"


def in_canary(version: str, conversation_key: str, share: float) -> bool:
    """Stable per conversation and canary: the same conversation gets the same answer every time."""
    digest = hashlib.sha256(f"{version}\x00{conversation_key}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < share


class ModelRegistry:
    def __init__(self, db: Database, *, outbox_scope: str | None = None) -> None:
        self.db = db
        self.outbox_scope = outbox_scope  # None: transitions announce nothing (tools and tests that read only)

    # ---- reading -----------------------------------------------------------------------------

    def ensure_base_version(self, family: str) -> ModelVersionRecord:
        """The base model is version `<family>@base` on the shared line, active until a shared adapter replaces it."""
        version = base_version(family)
        self.db.insert_once(ModelVersionRecord(version=version, family=family, tenant=None, state="active"))
        with self.db.session() as s:
            if self._active(s, family, None) is None:
                s.exec(update(ModelVersionRecord).where(col(ModelVersionRecord.version) == version).values(state="active"))
                s.commit()
        return self.active_version(family)

    def active_version(self, family: str, tenant: str | None = None) -> ModelVersionRecord:
        """The tenant's active version, else the shared one (`tenant=None` asks for the shared one)."""
        with self.db.session() as s:
            row = (self._active(s, family, tenant) if tenant is not None else None) or self._active(s, family, None)
            if row is None:
                raise LookupError(f"no active model version for {family!r}")
            return row

    def serving(self, family: str, tenant: str | None) -> Serving:
        with self.db.session() as s:
            active = (self._active(s, family, tenant) if tenant is not None else None) or self._active(s, family, None)
            if active is None:
                raise LookupError(f"no active model version for {family!r}")
            canary = s.exec(select(ModelVersionRecord).where(ModelVersionRecord.family == family, ModelVersionRecord.state == "canary",
                                                             _tenant_is(tenant))).first()
            return Serving(active=active, canary=canary)

    def choose(self, family: str, tenant: str | None, conversation_key: str) -> str:
        """The version that answers this conversation now: the canary for its share of conversations, else the active one."""
        serving = self.serving(family, tenant)
        if serving.canary is not None and in_canary(serving.canary.version, conversation_key, serving.canary.canary_share or 0.0):
            return serving.canary.version
        return serving.active.version

    def get_version(self, version: str) -> ModelVersionRecord | None:
        with self.db.session() as s:
            return s.get(ModelVersionRecord, version)

    def visible_to(self, version: str, tenant: str | None) -> ModelVersionRecord | None:
        """The version if `tenant` may see it (its own line or the shared one; None sees everything), else None."""
        row = self.get_version(version)
        if row is None or (tenant is not None and row.tenant not in (None, tenant)):
            return None
        return row

    def pinnable_by_tenants(self, family: str, tenant: str | None = None) -> list[str]:
        """The versions of ``family`` an API key of ``tenant`` may pin: what serves its line now."""
        return self.serving(family, tenant).versions if tenant is not None else \
            [r.version for r in self.list_versions(family) if r.state in TENANT_PINNABLE_STATES and r.tenant is None]

    def list_versions(self, family: str | None = None, tenant: str | None = None, *, every_tenant: bool = True) -> list[ModelVersionRecord]:
        """Versions, oldest first; with `every_tenant=False` only the shared line and `tenant`'s."""
        with self.db.session() as s:
            statement = select(ModelVersionRecord).order_by(col(ModelVersionRecord.created_at))
            if family:
                statement = statement.where(ModelVersionRecord.family == family)
            if not every_tenant:
                statement = statement.where(col(ModelVersionRecord.tenant).is_(None) | (col(ModelVersionRecord.tenant) == tenant))
            return list(s.exec(statement).all())

    def decisions(self, family: str | None = None, tenant: str | None = None, *, every_tenant: bool = True) -> list[ModelDecisionRecord]:
        """The audit trail, oldest first (same scoping as `list_versions`)."""
        with self.db.session() as s:
            statement = select(ModelDecisionRecord).order_by(col(ModelDecisionRecord.at), col(ModelDecisionRecord.id))
            if family:
                statement = statement.where(ModelDecisionRecord.family == family)
            if not every_tenant:
                statement = statement.where(col(ModelDecisionRecord.tenant).is_(None) | (col(ModelDecisionRecord.tenant) == tenant))
            return list(s.exec(statement).all())

    # ---- transitions (each one transaction with its decision record) ---------------------------

    def register_candidate(self, record: ModelVersionRecord, *, actor: str, reason: str, numbers: dict[str, Any] | None = None) -> bool:
        """Record a trained version as a candidate; False (and no change) when that id exists already:
        a content-addressed id is never reused, so the same weights trained twice are one version."""
        record.state = "candidate"
        with self.db.session() as s:
            if s.get(ModelVersionRecord, record.version) is not None:
                return False
            s.add(record)
            s.add(_decision(record, "candidate", actor, reason, numbers))
            s.commit()
            return True

    def update_metrics(self, version: str, metrics: dict[str, Any]) -> None:
        with self.db.session() as s:
            row = self._require(s, version)
            row.metrics = {**row.metrics, **metrics}
            s.add(row)
            s.commit()

    def reject(self, version: str, *, actor: str, reason: str, numbers: dict[str, Any] | None = None,
               caused_by: str | None = None) -> ModelDecisionRecord:
        return self._move(version, to="rejected", allowed=("candidate",), action="reject", actor=actor, reason=reason, numbers=numbers,
                          caused_by=caused_by)

    def start_canary(self, version: str, *, share: float, actor: str, reason: str, numbers: dict[str, Any] | None = None,
                     caused_by: str | None = None) -> ModelDecisionRecord:
        """The candidate answers `share` of its tenant's conversations; a canary already running on that line is rolled back first
        (one canary per line: two would split the comparison)."""
        if not 0 < share <= 1:
            raise InvalidTransition(f"canary share must be in (0, 1], not {share}")
        with self.db.session() as s:
            row = self._require(s, version)
            self._check(row, ("candidate",), "start a canary for")
            moved = list(s.exec(select(ModelVersionRecord).where(ModelVersionRecord.family == row.family, ModelVersionRecord.state == "canary",
                                                                 _tenant_is(row.tenant))).all())
            for other in moved:
                self._set(s, other, "rolled_back", "rollback", actor, f"replaced by the newer canary {version}", {})
            row.canary_share = share
            decision = self._set(s, row, "canary", "canary", actor, reason, {**(numbers or {}), "share": share})
            return self._commit(s, decision, [*moved, row], caused_by)

    def promote(self, version: str, *, actor: str, reason: str, numbers: dict[str, Any] | None = None,
                caused_by: str | None = None) -> ModelDecisionRecord:
        """The version serves all of its line; the line's previous active version is retired in the same transaction."""
        with self.db.session() as s:
            row = self._require(s, version)
            self._check(row, ("candidate", "canary"), "promote")
            incumbent = self._active(s, row.family, row.tenant)
            if incumbent is not None:
                self._set(s, incumbent, "retired", "retire", actor, f"replaced by {version}", {})
            row.canary_share = None
            decision = self._set(s, row, "active", "promote", actor, reason, {**(numbers or {}),
                                                                             "replaced": incumbent.version if incumbent else None})
            return self._commit(s, decision, [row, *([incumbent] if incumbent else [])], caused_by)

    def rollback(self, version: str, *, actor: str, reason: str, numbers: dict[str, Any] | None = None,
                 caused_by: str | None = None) -> ModelDecisionRecord:
        """Take a canary or active version back for good. An active one hands its line back to its parent when the parent is
        on the same line and was retired; otherwise the line falls back to the shared active version. The base model cannot
        be rolled back: it is what everything falls back to."""
        with self.db.session() as s:
            row = self._require(s, version)
            if row.version == base_version(row.family):
                raise InvalidTransition(f"{version} is the base model: there is nothing to roll back to; promote another version instead")
            self._check(row, ("canary", "active"), "roll back")
            was_active = row.state == "active"
            row.canary_share = None
            decision = self._set(s, row, "rolled_back", "rollback", actor, reason, numbers or {})
            moved = [row]
            if was_active and row.parent:
                parent = s.get(ModelVersionRecord, row.parent)
                if parent is not None and parent.tenant == row.tenant and parent.state == "retired":
                    self._set(s, parent, "active", "promote", actor, f"restored: {version} was rolled back", {})
                    moved.append(parent)
            if was_active and row.tenant is None and self._active(s, row.family, None) is None:
                base = s.get(ModelVersionRecord, base_version(row.family))
                if base is not None:
                    self._set(s, base, "active", "promote", actor, f"restored: {version} was rolled back", {})
                    moved.append(base)
            return self._commit(s, decision, moved, caused_by)

    def share(self, version: str, *, actor: str, reason: str, caused_by: str | None = None) -> ModelDecisionRecord:
        """An operator marks a tenant's version as shared: it moves to the shared line as a candidate, to be promoted there."""
        with self.db.session() as s:
            row = self._require(s, version)
            if row.tenant is None:
                raise InvalidTransition(f"{version} is already shared")
            self._check(row, ("candidate", "active", "retired"), "share")
            row.tenant = None
            decision = self._set(s, row, "candidate", "share", actor, reason, {})
            return self._commit(s, decision, [row], caused_by)

    # ---- legacy: tests seed versions in any state with it (the trainer no longer does) -----------

    def register_version(self, row: ModelVersionRecord) -> None:
        with self.db.session() as s:
            s.merge(row)
            s.commit()

    # ---- helpers ------------------------------------------------------------------------------

    def _move(self, version: str, *, to: str, allowed: tuple[str, ...], action: str, actor: str, reason: str,
              numbers: dict[str, Any] | None, caused_by: str | None) -> ModelDecisionRecord:
        with self.db.session() as s:
            row = self._require(s, version)
            self._check(row, allowed, action)
            decision = self._set(s, row, to, action, actor, reason, numbers or {})
            return self._commit(s, decision, [row], caused_by)

    def _commit(self, s: Session, decision: ModelDecisionRecord, moved: list[ModelVersionRecord], caused_by: str | None) -> ModelDecisionRecord:
        """Commit the transition with the `model.updated` of every version it moved (the acted one first), when announcing."""
        if self.outbox_scope is not None:
            for row in moved:
                event = model_updated(row, decision, caused_by or row.tenant or "default")
                s.add(outbox_entry(event, aggregate="model", aggregate_id=row.version, scope=self.outbox_scope))
        s.commit()
        return decision

    @staticmethod
    def _require(s: Session, version: str) -> ModelVersionRecord:
        row = s.get(ModelVersionRecord, version)
        if row is None:
            raise UnknownVersion(f"unknown model version {version!r}")
        return row

    @staticmethod
    def _check(row: ModelVersionRecord, allowed: tuple[str, ...], verb: str) -> None:
        if row.state not in allowed:
            raise InvalidTransition(f"cannot {verb} {row.version}: it is {row.state} (only {', '.join(allowed)} versions can be)")

    @staticmethod
    def _set(s: Session, row: ModelVersionRecord, state: str, action: str, actor: str, reason: str, numbers: dict[str, Any]) -> ModelDecisionRecord:
        """Move `row` to `state` only if it is still in the state the transition was decided on (compare-and-set):
        two deciders that read the same canary (two eval consumers, a person and the judge) cannot both promote it,
        and two promotions on one line cannot both retire its incumbent and leave two versions active."""
        observed, now = row.state, utcnow()
        changed = s.exec(update(ModelVersionRecord)
                         .where(col(ModelVersionRecord.version) == row.version, col(ModelVersionRecord.state) == observed)
                         .values(state=state, updated_at=now, canary_share=row.canary_share, tenant=row.tenant)).rowcount
        if changed != 1:
            raise InvalidTransition(f"{row.version} changed while this {action} was being decided (it was {observed}); read it again")
        row.state, row.updated_at = state, now
        s.add(row)
        decision = _decision(row, action, actor, reason, numbers)
        s.add(decision)
        s.flush()
        return decision

    @staticmethod
    def _active(s: Session, family: str, tenant: str | None) -> ModelVersionRecord | None:
        return s.exec(select(ModelVersionRecord).where(ModelVersionRecord.family == family, ModelVersionRecord.state == "active",
                                                       _tenant_is(tenant))).first()


def _tenant_is(tenant: str | None) -> Any:
    return col(ModelVersionRecord.tenant).is_(None) if tenant is None else col(ModelVersionRecord.tenant) == tenant


def _decision(row: ModelVersionRecord, action: str, actor: str, reason: str, numbers: dict[str, Any] | None) -> ModelDecisionRecord:
    return ModelDecisionRecord(family=row.family, tenant=row.tenant, version=row.version, action=action, actor=actor, reason=reason,
                               numbers=dict(numbers or {}))
