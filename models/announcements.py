"""`model.updated`: the one builder of the event that tells every agent process a version moved.

The registry writes these events into the outbox in the same transaction as the move itself
(`ModelRegistry(db, outbox_scope=...)`), so a move is never left without its announcement: a
process that dies right after the commit leaves the events unsent, and any runtime's outbox relay
delivers them.
"""

from __future__ import annotations

import math

from schemas.events import ModelUpdated
from schemas.tables import ModelDecisionRecord, ModelVersionRecord


def model_updated(row: ModelVersionRecord, decision: ModelDecisionRecord, caused_by: str) -> ModelUpdated:
    """The version's state and metrics and, for the version the decision acted on, the numbers it was decided on (a
    canary's judgement, a gate's scores). `caused_by`: the tenant who asked (the event's tenant)."""
    numbers = {**row.metrics, **(decision.numbers if row.version == decision.version else {})}
    metrics = {k: float(v) for k, v in numbers.items() if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)}
    return ModelUpdated(event_id=f"{row.version}.{row.state}.{decision.id}", tenant=caused_by, model_family=row.family,
                        version=row.version, adapter_path=row.artifact_uri, state=row.state, metrics=metrics,
                        version_tenant=row.tenant, canary_share=row.canary_share, reason=decision.reason[:4000])
