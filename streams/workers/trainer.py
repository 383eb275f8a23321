"""Trainer role: `train.requests` → `trainers.run.run_training` for the request's tenant → `model.updated`.

The domain function does the work (examples, training, artifact, registry, gate, run record); this
worker decodes, counts the outcome on `/metrics` and delivers the `model.updated` the registry wrote
into the outbox with the move (`models/announcements.py`, the one builder of that event).
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import structlog

import trainers
from schemas.events import TrainRequest
from streams.consumer import EventConsumer, PermanentError
from streams.metrics import TRAINING_RUNS
from streams.outbox_relay import Outbox
from streams.publisher import Publisher
from streams.services import Services
from streams.topics import TOPICS
from trainers.recipe import LoraRecipe
from trainers.run import TrainingKit, run_training
from trainers.train_policy import describe, load_policy
from trainers.training_store import TrainingStore

GROUP = "ragloop.trainer"
DEFAULT_RECIPE = Path(trainers.__file__).parent / "configs" / "lora_cpu.yaml"
log = structlog.get_logger(__name__)


def training_kit(services: Services) -> TrainingKit:
    """A run's dependencies from a process's services (the worker and `ragloop train` build it alike)."""
    settings = services.settings
    return TrainingKit(feedback=services.stores.feedback, training=TrainingStore(services.stores.db), registry=services.stores.registry,
                       artifacts=services.artifacts, engine=lambda: services.engine, load_adapter=services.adapter_for,
                       base_model_path=services.base_model_path, recipe=LoraRecipe.from_yaml(settings.training.recipe or DEFAULT_RECIPE),
                       policy=load_policy(settings), rehearsal_examples=settings.training.rehearsal_examples,
                       gate_guard_examples=settings.training.gate_guard_examples, gate_max_guard_drop=settings.training.gate_max_guard_drop)


def consumers(services: Services, publisher: Publisher) -> list[EventConsumer]:
    print(describe(load_policy(services.settings), services.settings), file=sys.stderr, flush=True)
    outbox = Outbox(services.stores.db, publisher, services.settings)

    async def train(request: TrainRequest) -> None:
        kit = await asyncio.to_thread(training_kit, services)
        outcome = await asyncio.to_thread(run_training, kit, request.event_id, request.tenant, request.model_family)
        log.info("training run", run=outcome.run_id, tenant=outcome.tenant, state=outcome.state, version=outcome.version,
                 reason=outcome.reason, replayed=outcome.replayed)
        if not outcome.replayed:
            TRAINING_RUNS.labels(outcome.state).inc()
        await outbox.deliver_now()  # the registry wrote the canary's (or rejection's) model.updated with the move
        if outcome.state == "nothing":
            raise PermanentError(outcome.reason)

    return [EventConsumer(TOPICS["train.requests"], GROUP, train, max_processing_s=3600)]
