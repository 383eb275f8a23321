"""Trainer role: `train.requests` → LoRA on every correction so far → gate → `model.updated`.

A candidate adapter is promoted only if it answers the corrected questions better than the
active version; otherwise it is recorded as rejected and agents keep what they have.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import structlog

import trainers
from models.llm.base import ChatMessage
from schemas.events import ModelUpdated, TrainRequest
from schemas.tables import ModelVersionRecord, TaskRecord
from streams.consumer import EventConsumer, PermanentError
from streams.metrics import TRAINING_RUNS
from streams.publisher import Publisher
from streams.services import Services
from streams.topics import TOPICS
from trainers.dataset import TrainingExample
from trainers.gate import gate_candidate
from trainers.recipe import LoraRecipe
from trainers.train import train_adapter

GROUP = "ragloop.trainer"
DEFAULT_RECIPE = Path(trainers.__file__).parent / "configs" / "lora_cpu.yaml"
log = structlog.get_logger(__name__)


def consumers(services: Services, publisher: Publisher) -> list[EventConsumer]:
    feedback_store, registry, settings = services.stores.feedback, services.stores.registry, services.settings

    def served_prompt(task: TaskRecord) -> list[ChatMessage] | None:
        """The prompt the model saw for this task, as recorded with its result."""
        turns = task.result.response.prompt if task.result else []
        return [ChatMessage(role=t.role, content=t.content) for t in turns] or None

    def trainable(task: TaskRecord) -> bool:
        """The adapter serves every tenant and principal, so it never learns from a prompt that may
        hold restricted passages: only requests asked without principals are trained on."""
        return not task.request.get("principals")

    def examples_from_feedback() -> list[TrainingExample]:
        return [TrainingExample(messages=prompt, target=feedback.correction or "")
                for feedback, task in feedback_store.corrections_with_tasks() if trainable(task) and (prompt := served_prompt(task))]

    def liked_answers() -> tuple[list[TrainingExample], list[TrainingExample]]:
        """The latest up-voted answers, in two disjoint parts: guard (the newest, held out for the
        gate) and rehearsal (trained on beside the corrections, so the adapter keeps what worked)."""
        guard_n, rehearsal_n = settings.training.gate_guard_examples, settings.training.rehearsal_examples
        liked = [TrainingExample(messages=prompt, target=task.result.answer)
                 for task in feedback_store.approved_tasks(4 * (guard_n + rehearsal_n))  # room for the ones left out below
                 if trainable(task) and (prompt := served_prompt(task)) and task.result and task.result.answer]
        return liked[guard_n:guard_n + rehearsal_n], liked[:guard_n]

    def train_and_gate(request: TrainRequest, version: str) -> ModelVersionRecord:
        examples = examples_from_feedback()
        if not examples:
            raise PermanentError("no corrections with a recorded prompt to train on (requests asked with principals are never trained on)")
        rehearsal, guard = liked_answers()
        recipe = LoraRecipe.from_yaml(settings.training.recipe or DEFAULT_RECIPE)
        incumbent = registry.active_version(settings.llm.model_family)
        report = train_adapter(services.base_model_path, examples + rehearsal, recipe, settings.adapters_dir / version, progress=False)
        candidate = ModelVersionRecord(version=version, family=settings.llm.model_family, state="candidate", adapter_path=str(report.adapter_path),
                                       parent=incumbent.version, metrics={"final_loss": report.final_loss, "steps": report.steps, "examples": report.examples})
        registry.register_version(candidate)
        candidate_adapter = services.adapter_for(version)
        gate = gate_candidate(services.engine, examples, candidate=candidate_adapter or version, incumbent=services.adapter_for(incumbent.version),
                              guard=guard, max_guard_drop=settings.training.gate_max_guard_drop)
        candidate.metrics |= {"gate_candidate": gate.candidate_score, "gate_incumbent": gate.incumbent_score,
                              "rehearsal_examples": len(rehearsal)}
        if gate.guard_candidate_score is not None and gate.guard_incumbent_score is not None:
            candidate.metrics |= {"gate_guard_candidate": gate.guard_candidate_score, "gate_guard_incumbent": gate.guard_incumbent_score,
                                  "gate_guard_examples": len(gate.guard_per_example), "gate_max_guard_drop": gate.max_guard_drop}
        registry.register_version(candidate)
        if gate.promoted:
            registry.activate_version(settings.llm.model_family, version)  # retires the incumbent in the same transaction
            candidate.state = "active"
        else:
            candidate.state = "rejected"
            registry.register_version(candidate)
        log.info("training finished", version=version, promoted=gate.promoted, candidate=gate.candidate_score, incumbent=gate.incumbent_score,
                 reason=gate.reason)
        return candidate

    async def train(request: TrainRequest) -> None:
        version = f"{request.model_family}-lora-{request.event_id[:12]}"
        record = await asyncio.to_thread(registry.get_version, version)
        if record is None or record.state == "candidate":
            record = await asyncio.to_thread(train_and_gate, request, version)
            TRAINING_RUNS.labels("promoted" if record.state == "active" else "rejected").inc()
        await publisher.publish(ModelUpdated(event_id=f"{version}.{record.state}", tenant=request.tenant, model_family=record.family,
                                             version=version, adapter_path=record.adapter_path, state=record.state,
                                             metrics={k: float(v) for k, v in record.metrics.items()}, trace=request.trace))

    return [EventConsumer(TOPICS["train.requests"], GROUP, train, max_processing_s=3600)]
