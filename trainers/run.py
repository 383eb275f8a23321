"""One training run of a tenant's adapter, end to end, with or without a broker (the trainer worker
and `ragloop train --from-feedback` both call `run_training`):

    claim (TrainingRunRecord running) → the tenant's examples → train_adapter into a temporary folder
    → digest → version id → artifact store → register_candidate (tenant, parent = serving version)
    → gate against the serving version → canary (auto:gate) or rejected → run record gated/rejected

Whatever fails (an exception, a non-finite loss, out of memory) is recorded on the run with the
error and leaves the serving versions untouched; a run whose process was killed is found `running`
when its request is redelivered and recorded as failed then. A run that failed, or was refused because
another run of the tenant was running, hands the corrections claimed under its id back
(`FeedbackStore.release_claims`): they count as new for the next run instead of being lost with this one. One run per tenant at a time, and a
redelivered request never trains twice (`TrainingStore.start_run`).
"""

from __future__ import annotations

import math
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from models.artifacts import ArtifactStore, adapter_digest, version_id
from models.llm.base import LLMEngine
from models.registry import ModelRegistry
from schemas.tables import ModelVersionRecord, TrainingRunRecord
from trainers.examples import choose_examples
from trainers.feedback_store import FeedbackStore
from trainers.gate import GateReport, gate_candidate
from trainers.policy import LearningPolicy
from trainers.recipe import LoraRecipe
from trainers.train import train_adapter
from trainers.training_store import TrainingStore

ACTOR = "auto:gate"


class NothingToTrain(ValueError):
    """The tenant has no correction the run may learn from (retrying cannot help)."""


class NonFiniteLoss(RuntimeError):
    """Training diverged: an adapter trained to NaN/inf loss is garbage and is never registered."""


@dataclass(frozen=True)
class TrainingKit:
    """What a run needs, handed in by whoever runs it (a worker's Services, the CLI)."""

    feedback: FeedbackStore
    training: TrainingStore
    registry: ModelRegistry
    artifacts: ArtifactStore
    engine: Callable[[], LLMEngine]  # loaded only when a run reaches its gate
    load_adapter: Callable[[str], str | None]  # version id → the engine's adapter name (None: base weights)
    base_model_path: Path
    recipe: LoraRecipe
    policy: LearningPolicy
    rehearsal_examples: int = 8
    gate_guard_examples: int = 0
    gate_max_guard_drop: float = 0.05


class RunOutcome(BaseModel):
    """What happened, and what to tell agents (`changed`: a version moved, publish `ModelUpdated`)."""

    run_id: str
    tenant: str
    family: str
    state: str  # gated, rejected, failed, nothing (nothing to learn from), busy (another run of the tenant is running)
    version: str | None = None
    version_state: str | None = None  # the version's registry state after the run (canary, rejected)
    canary_share: float | None = None
    reason: str
    error: str | None = None
    metrics: dict[str, float] = {}
    changed: bool = False
    replayed: bool = False  # the request had run before: nothing was trained this time


def run_training(kit: TrainingKit, run_id: str, tenant: str, family: str, *, progress: bool = False,
                 stage: Callable[[str], None] = lambda _: None) -> RunOutcome:
    claimed, row = kit.training.start_run(TrainingRunRecord(id=run_id, tenant=tenant, family=family, recipe=kit.recipe.recipe, state="running"))
    if not claimed:
        return _not_started(kit, run_id, row)
    version: str | None = None
    try:
        stage("choosing examples")
        examples = choose_examples(kit.feedback, tenant, rehearsal_n=kit.rehearsal_examples, guard_n=kit.gate_guard_examples,
                                   fold_similarity=kit.policy.train.fold_similarity, max_correction_chars=kit.policy.train.max_correction_chars)
        if not examples.corrections:
            raise NothingToTrain(f"tenant {tenant!r} has no corrections with a recorded prompt to train on "
                                 f"({examples.untrainable} asked with principals: those are never trained on; {len(examples.dropped)} refused or folded)")
        serving = kit.registry.serving(family, tenant)
        with tempfile.TemporaryDirectory(prefix="ragloop-train-") as tmp:
            stage(f"training on {len(examples.corrections)} corrections + {len(examples.rehearsal)} rehearsal ({kit.recipe.recipe})")
            report = train_adapter(kit.base_model_path, examples.corrections + examples.rehearsal, kit.recipe, Path(tmp) / "adapter",
                                   progress=progress)
            if not report.losses or not all(math.isfinite(loss) for loss in report.losses):
                raise NonFiniteLoss(f"training loss is not finite (losses {report.losses[-5:]}): lower the learning rate in the recipe")
            digest = adapter_digest(report.adapter_path)
            version = version_id(family, digest)
            uri = kit.artifacts.put(version, report.adapter_path)
        metrics: dict[str, Any] = {"final_loss": report.final_loss, "steps": report.steps, "examples": report.examples,
                                   "corrections": len(examples.corrections), "rehearsal_examples": len(examples.rehearsal),
                                   "folded_or_refused": len(examples.dropped), "step_seconds": report.step_seconds}
        record = ModelVersionRecord(version=version, family=family, tenant=tenant, state="candidate", artifact_uri=uri, sha256=digest,
                                    recipe=kit.recipe.recipe, parent=serving.active.version, metrics=dict(metrics))
        if not kit.registry.register_candidate(record, actor=ACTOR, reason=f"trained by run {run_id} on {len(examples.corrections)} "
                                               f"corrections of tenant {tenant}", numbers=metrics):
            existing = kit.registry.get_version(version)
            reason = f"same weights as version {version} ({existing.state if existing else 'unknown'}): nothing new to gate"
            kit.training.finish_run(run_id, state="rejected", version=version, metrics={**metrics, "losses": report.losses, "reason": reason})
            return RunOutcome(run_id=run_id, tenant=tenant, family=family, state="rejected", version=version, reason=reason,
                              metrics=_floats(metrics))
        stage(f"gating {version} against {serving.active.version}")
        gate = gate_candidate(kit.engine(), examples.corrections, candidate=kit.load_adapter(version) or version,
                              incumbent=kit.load_adapter(serving.active.version), guard=examples.guard,
                              max_guard_drop=kit.gate_max_guard_drop)
        metrics |= gate_numbers(gate)
        kit.registry.update_metrics(version, metrics)
        if gate.promoted:
            share = kit.policy.canary.share
            kit.registry.start_canary(version, share=share, actor=ACTOR, reason=gate.reason, numbers=gate_numbers(gate), caused_by=tenant)
            state, version_state = "gated", "canary"
        else:
            share = None
            kit.registry.reject(version, actor=ACTOR, reason=gate.reason, numbers=gate_numbers(gate), caused_by=tenant)
            state, version_state = "rejected", "rejected"
        kit.training.finish_run(run_id, state=state, version=version, metrics={**metrics, "losses": report.losses, "reason": gate.reason})
        return RunOutcome(run_id=run_id, tenant=tenant, family=family, state=state, version=version, version_state=version_state,
                          canary_share=share, reason=gate.reason, metrics=_floats(metrics), changed=True)
    except Exception as exc:  # noqa: BLE001 - every failure is recorded on the run; the serving versions stay as they were
        return _failed(kit, run_id, tenant, family, version, exc)


def gate_numbers(gate: GateReport) -> dict[str, float]:
    numbers = {"gate_candidate": gate.candidate_score, "gate_incumbent": gate.incumbent_score, "gate_examples": float(len(gate.per_example))}
    if gate.guard_candidate_score is not None and gate.guard_incumbent_score is not None:
        numbers |= {"gate_guard_candidate": gate.guard_candidate_score, "gate_guard_incumbent": gate.guard_incumbent_score,
                    "gate_guard_examples": float(len(gate.guard_per_example)), "gate_max_guard_drop": gate.max_guard_drop}
    return numbers


def _failed(kit: TrainingKit, run_id: str, tenant: str, family: str, version: str | None, exc: Exception) -> RunOutcome:
    error = f"{type(exc).__name__}: {exc}"
    if version is not None:
        record = kit.registry.get_version(version)
        if record is not None and record.state == "candidate":  # registered by this run, never gated: it must not linger
            kit.registry.reject(version, actor=ACTOR, reason=f"training run {run_id} failed: {error}", caused_by=tenant)
    kit.training.finish_run(run_id, state="failed", version=version, error=error)
    state = "nothing" if isinstance(exc, NothingToTrain) else "failed"
    if state == "failed":  # nothing to learn from stays claimed: it would only start the same empty run again
        kit.feedback.release_claims(run_id)
    return RunOutcome(run_id=run_id, tenant=tenant, family=family, state=state, version=version, reason=error, error=error)


def _not_started(kit: TrainingKit, run_id: str, existing: TrainingRunRecord) -> RunOutcome:
    common = {"run_id": run_id, "tenant": existing.tenant, "family": existing.family, "version": existing.version}
    if existing.id != run_id:
        kit.feedback.release_claims(run_id)
        return RunOutcome(**common, state="busy", reason=f"run {existing.id} of tenant {existing.tenant} is running: one run per tenant at a time")
    if existing.state == "running":  # our own row, still running: the process that ran it died (killed, out of memory)
        error = "the process running this training run stopped before it finished (killed or out of memory?)"
        kit.training.finish_run(run_id, state="failed", error=error)
        kit.feedback.release_claims(run_id)
        return RunOutcome(**common, state="failed", reason=error, error=error)
    version = kit.registry.get_version(existing.version) if existing.version else None
    return RunOutcome(**common, state=existing.state, version_state=version.state if version else None,
                      canary_share=version.canary_share if version else None, reason=existing.error or str(existing.metrics.get("reason", "")),
                      error=existing.error, metrics=_floats(existing.metrics), replayed=True)


def _floats(metrics: dict[str, Any]) -> dict[str, float]:
    return {k: float(v) for k, v in metrics.items() if isinstance(v, int | float) and not isinstance(v, bool)}
