"""Model versions of each family: the base model and the adapters trained on feedback, with exactly
one `active` version per family (the one agents answer with unless a request names another)."""

from __future__ import annotations

from sqlalchemy import update
from sqlmodel import col, select

from schemas.database import Database
from schemas.tables import ModelVersionRecord

# What a caller acting for a tenant (an API key) may pin with `model_version`: candidates are
# untested, rejected ones failed their evaluation, and a version only some tenants should meet
# has no per-tenant canary yet, so only the version serving everyone qualifies.
TENANT_PINNABLE_STATES = frozenset({"active"})


class ModelRegistry:
    def __init__(self, db: Database) -> None:
        self.db = db

    def ensure_base_version(self, family: str) -> ModelVersionRecord:
        """The base model is version `<family>@base`, active until an adapter beats it."""
        version = f"{family}@base"
        self.db.insert_once(ModelVersionRecord(version=version, family=family, state="active"))
        with self.db.session() as s:
            if s.exec(select(ModelVersionRecord).where(ModelVersionRecord.family == family, ModelVersionRecord.state == "active")).first() is None:
                s.exec(update(ModelVersionRecord).where(col(ModelVersionRecord.version) == version).values(state="active"))
                s.commit()
        return self.active_version(family)

    def active_version(self, family: str) -> ModelVersionRecord:
        with self.db.session() as s:
            row = s.exec(select(ModelVersionRecord).where(ModelVersionRecord.family == family, ModelVersionRecord.state == "active")).first()
            if row is None:
                raise LookupError(f"no active model version for {family!r}")
            return row

    def get_version(self, version: str) -> ModelVersionRecord | None:
        with self.db.session() as s:
            return s.get(ModelVersionRecord, version)

    def pinnable_by_tenants(self, family: str) -> list[str]:
        """The versions of ``family`` an API key may pin (``TENANT_PINNABLE_STATES``)."""
        return [row.version for row in self.list_versions(family) if row.state in TENANT_PINNABLE_STATES]

    def list_versions(self, family: str | None = None) -> list[ModelVersionRecord]:
        with self.db.session() as s:
            statement = select(ModelVersionRecord).order_by(col(ModelVersionRecord.created_at))
            if family:
                statement = statement.where(ModelVersionRecord.family == family)
            return list(s.exec(statement).all())

    def register_version(self, row: ModelVersionRecord) -> None:
        with self.db.session() as s:
            s.merge(row)
            s.commit()

    def activate_version(self, family: str, version: str) -> None:
        """Make `version` the one active version of its family, retiring the previous one, atomically."""
        with self.db.session() as s:
            s.exec(
                update(ModelVersionRecord)
                .where(col(ModelVersionRecord.family) == family, col(ModelVersionRecord.state) == "active", col(ModelVersionRecord.version) != version)
                .values(state="retired")
            )
            s.exec(update(ModelVersionRecord).where(col(ModelVersionRecord.version) == version).values(state="active"))
            s.commit()
