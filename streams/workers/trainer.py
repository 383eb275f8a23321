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
from schemas.tables import ModelVersionRecord
from streams.consumer import EventConsumer, PermanentError
from streams.metrics import TRAINING_RUNS
from streams.publisher import Publisher
from streams.services import Services
from streams.topics import TOPICS
from trainers.dataset import TrainingExample
from trainers.gate import gate_candidate
from trainers.lora_cpu import train_lora
from trainers.recipe import LoraRecipe

GROUP = "ragloop.trainer"
DEFAULT_RECIPE = Path(trainers.__file__).parent / "configs" / "lora_cpu.yaml"
log = structlog.get_logger(__name__)


def consumers(services: Services, publisher: Publisher) -> list[EventConsumer]:
    store, settings = services.store, services.settings

    def examples_from_feedback() -> list[TrainingExample]:
        examples = []
        for feedback, task in store.corrections_with_tasks():
            if task.result and task.result.get("response", {}).get("prompt"):
                prompt = [ChatMessage(role=t["role"], content=t["content"]) for t in task.result["response"]["prompt"]]
                examples.append(TrainingExample(messages=prompt, target=feedback.correction or ""))
        return examples

    def train_and_gate(request: TrainRequest, version: str) -> ModelVersionRecord:
        examples = examples_from_feedback()
        if not examples:
            raise PermanentError("no corrections with a recorded prompt to train on")
        recipe = LoraRecipe.from_yaml(settings.train_recipe or DEFAULT_RECIPE)
        incumbent = store.active_version(settings.model_family)
        report = train_lora(services.base_model_path, examples, recipe, settings.adapters_dir / version, progress=False)
        candidate = ModelVersionRecord(version=version, family=settings.model_family, state="candidate", adapter_path=str(report.adapter_path),
                                       parent=incumbent.version, metrics={"final_loss": report.final_loss, "steps": report.steps, "examples": report.examples})
        store.register_version(candidate)
        candidate_adapter = services.adapter_for(version)
        gate = gate_candidate(services.engine, examples, candidate=candidate_adapter or version, incumbent=services.adapter_for(incumbent.version))
        candidate.metrics |= {"gate_candidate": gate.candidate_score, "gate_incumbent": gate.incumbent_score}
        store.register_version(candidate)
        if gate.promoted:
            store.activate_version(settings.model_family, version)  # retires the incumbent in the same transaction
            candidate.state = "active"
        else:
            candidate.state = "rejected"
            store.register_version(candidate)
        log.info("training finished", version=version, promoted=gate.promoted, candidate=gate.candidate_score, incumbent=gate.incumbent_score)
        return candidate

    async def train(request: TrainRequest) -> None:
        version = f"{request.model_family}-lora-{request.event_id[:12]}"
        record = await asyncio.to_thread(store.get_version, version)
        if record is None or record.state == "candidate":
            record = await asyncio.to_thread(train_and_gate, request, version)
            TRAINING_RUNS.labels("promoted" if record.state == "active" else "rejected").inc()
        await publisher.publish(ModelUpdated(event_id=f"{version}.{record.state}", tenant=request.tenant, model_family=record.family,
                                             version=version, adapter_path=record.adapter_path, state=record.state,  # type: ignore[arg-type]
                                             metrics={k: float(v) for k, v in record.metrics.items()}, trace=request.trace))

    return [EventConsumer(TOPICS["train.requests"], GROUP, train, max_processing_s=3600)]
