"""Which corrections a training run owns, and which run may start: the claims that keep the loop from
training twice on one trigger or losing corrections to a run that never trained.

- two feedback events judged "train" at once start one run (the second finds nothing left to claim);
- a run that fails, or is refused because another run of the tenant is running, hands its claimed
  corrections back, so they count as new for the next run;
- a run's start time is the database's clock: a host whose clock is behind cannot claim the tenant's
  slot while another run is already training.

Training is replaced at the edge as in `test_training_runs.py` (same stand-in trainer and helpers).
"""

from __future__ import annotations

import dataclasses
import json
from datetime import timedelta
from pathlib import Path

import pytest

from models.llm.base import ChatMessage, Generation, GenerationParams
from schemas.database import Database
from schemas.events import FeedbackEvent, TrainRequest, utcnow
from schemas.outbox_store import OutboxStore
from schemas.settings import Settings
from schemas.tables import FeedbackRecord, TrainingRunRecord
from streams.services import Services
from streams.stores import Stores
from streams.workers import feedback as feedback_worker, trainer as trainer_worker
from tests.integration.test_training_runs import FAMILY, Engine, Recorder, Trainer, correct, db, kit, trainer  # noqa: F401 — fixtures
from trainers.run import run_training
from trainers.train_policy import gather
from trainers.training_store import TrainingStore


def test_a_failed_run_hands_its_claimed_corrections_back(db: Database, tmp_path: Path, unique: str, trainer: Trainer) -> None:  # noqa: F811
    tenant = f"acme-{unique}"
    correct(db, tenant, "Capital of Zorblax?", "Quenvale.", 0)
    the_kit = kit(db, tmp_path)
    assert the_kit.feedback.claim_corrections(f"run-{unique}", tenant) == [f"fb-{tenant}-0"]
    trainer.error = RuntimeError("CUDA out of memory")
    assert run_training(the_kit, f"run-{unique}", tenant, FAMILY).state == "failed"
    assert the_kit.feedback.claimed_by(f"run-{unique}") == []
    assert [f.id for f, _ in the_kit.feedback.unclaimed_corrections_with_tasks(tenant)] == [f"fb-{tenant}-0"]


def test_a_run_refused_as_busy_hands_its_claimed_corrections_back(db: Database, tmp_path: Path, unique: str, trainer: Trainer) -> None:  # noqa: F811
    tenant = f"acme-{unique}"
    the_kit = kit(db, tmp_path)
    assert the_kit.training.start_run(TrainingRunRecord(id=f"other-{unique}", tenant=tenant, family=FAMILY, recipe="lora-peft", state="running"))[0]
    correct(db, tenant, "Capital of Zorblax?", "Quenvale.", 0)
    the_kit.feedback.claim_corrections(f"run-{unique}", tenant)
    assert run_training(the_kit, f"run-{unique}", tenant, FAMILY).state == "busy"
    assert [f.id for f, _ in the_kit.feedback.unclaimed_corrections_with_tasks(tenant)] == [f"fb-{tenant}-0"]


def test_a_host_whose_clock_is_behind_cannot_claim_a_tenant_whose_run_is_training(postgres_url: str, settings: Settings,
                                                                                   tmp_path: Path, unique: str) -> None:
    the_kit = kit(Database.from_settings(settings.override(database_url=postgres_url)), tmp_path)
    tenant = f"acme-{unique}"
    assert the_kit.training.start_run(TrainingRunRecord(id=f"first-{unique}", tenant=tenant, family=FAMILY, recipe="lora-peft", state="running"))[0]
    skewed = TrainingRunRecord(id=f"skewed-{unique}", tenant=tenant, family=FAMILY, recipe="lora-peft", state="running",
                               started_at=utcnow() - timedelta(hours=1))  # made on a host whose clock is an hour behind
    claimed, holder = the_kit.training.start_run(skewed)
    assert (claimed, holder.id) == (False, f"first-{unique}")
    assert [r.id for r in the_kit.training.running(tenant)] == [f"first-{unique}"]


async def test_two_training_triggers_at_once_start_one_run(settings: Settings, unique: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Both feedback events are judged on what the policy saw before either claimed (as two consumers at once do):
    both say train, one claims the corrections and publishes, the other finds nothing left and publishes nothing."""
    settings = settings.model_copy(update={"training": settings.training.model_copy(update={"feedback_min_corrections": 1})})
    services = Services(settings, Stores.from_settings(settings))
    services.stores.registry.ensure_base_version(settings.llm.model_family)
    database, tenant = services.stores.db, f"acme-{unique}"
    correct(database, tenant, "Capital of Zorblax?", "Quenvale.", 0)
    task_id = services.stores.feedback.corrections_with_tasks(tenant)[0][1].id
    seen: dict[str, object] = {}

    def before_either_claimed(policy, tenant, **kwargs):  # type: ignore[no-untyped-def]
        return seen.setdefault("inputs", gather(policy, tenant, **kwargs))

    monkeypatch.setattr(feedback_worker, "gather", before_either_claimed)
    recorder = Recorder()
    [consumer] = feedback_worker.consumers(services, recorder)  # type: ignore[arg-type]
    events = [FeedbackEvent(event_id=f"fb-{unique}-{n}", tenant=tenant, task_id=task_id, rating="down", correction=f"Quenvale {n}.")
              for n in (1, 2)]
    for event in events:  # both stored before either is judged
        services.stores.feedback.add_feedback(FeedbackRecord(id=event.event_id, task_id=task_id, tenant=tenant, rating="down",
                                                             correction=event.correction))
    for event in events:
        await consumer.handle(event)
    requests = [e for e in recorder.events if isinstance(e, TrainRequest)]
    assert [r.event_id for r in requests] == [f"fb-{unique}-1"]


class AnyAdapterLearned(Engine):
    """Answers the correction through any adapter (the candidate's id is not known before the run)."""

    def __init__(self) -> None:
        super().__init__({"Capital of Zorblax?": "Quenvale."})

    def generate(self, messages: list[ChatMessage], params: GenerationParams | None = None, *, adapter: str | None = None) -> Generation:
        self.candidate = adapter or ""
        return super().generate(messages, params, adapter=adapter)


async def test_a_gated_run_is_announced_through_the_outbox_by_the_one_builder(settings: Settings, unique: str, trainer: Trainer,  # noqa: F811
                                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """The trainer worker writes the canary's `model.updated` to the outbox (durable before it is sent; the relay
    delivers it if the broker is down), written by the registry with the move, with the gate's numbers and the decision's reason."""
    services = Services(settings, Stores.from_settings(settings))
    family = settings.llm.model_family
    services.stores.registry.ensure_base_version(family)
    tenant = f"acme-{unique}"
    correct(services.stores.db, tenant, "Capital of Zorblax?", "Quenvale.", 0)
    # the worker's own registry, which writes model.updated with each move (the test kit's announces nothing)
    monkeypatch.setattr(trainer_worker, "training_kit", lambda _: dataclasses.replace(
        kit(services.stores.db, settings.home, AnyAdapterLearned()), registry=services.stores.registry))
    [consumer] = trainer_worker.consumers(services, Recorder())  # type: ignore[arg-type]
    await consumer.handle(TrainRequest(event_id=f"req-{unique}", tenant=tenant, model_family=family, reason="test"))
    run = TrainingStore(services.stores.db).get_run(f"req-{unique}")
    assert run is not None and run.state == "gated", run
    entries = [e for e in OutboxStore(services.stores.db).unsent(settings.broker.topic_prefix) if e.aggregate_id == run.version]
    assert [json.loads(e.payload)["state"] for e in entries] == ["canary"]
    event = json.loads(entries[0].payload)
    assert event["event_id"].startswith(f"{run.version}.canary.") and event["metrics"]["gate_candidate"] == 1.0
    assert event["canary_share"] == 0.2 and event["version_tenant"] == tenant and event["reason"]
