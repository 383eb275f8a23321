"""One training run of a tenant's adapter through `trainers.run.run_training`, on SQLite and PostgreSQL:
what it trains on (only the tenant's corrections), where the adapter goes (content-addressed, a
canary on the tenant's line), and every way it can go wrong (non-finite loss, an exception, the
same weights twice, two runs at once, a redelivered request, a killed process) — recorded, with
the serving versions untouched.

Training itself and generation are replaced at the edge (`train_adapter` writes the adapter files
the examples determine; the engine answers the targets only with the candidate adapter): these tests
are about the run's bookkeeping, `tests/integration/test_learning_workers.py` trains for real.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from prometheus_client import generate_latest

from models.artifacts import adapter_digest, open_artifact_store, version_id
from models.llm.base import ChatMessage, Generation, GenerationParams
from models.registry import ModelRegistry, base_version
from schemas.database import Database
from schemas.events import ChatRequest, ChatTurn, Event, TrainRequest
from schemas.settings import Settings
from schemas.tables import FeedbackRecord, TrainingRunRecord
from streams.metrics import TRAINING_RUNS
from streams.services import Services
from streams.stores import Stores
from streams.task_attempts import TaskAttempts
from streams.task_store import TaskStore, task_from_request
from streams.workers import trainer as trainer_worker
from tests.support import outcome_of
from trainers import run as run_module
from trainers.dataset import TrainingExample
from trainers.feedback_store import FeedbackStore
from trainers.lora_cpu import TrainReport
from trainers.policy import LearningPolicy
from trainers.recipe import DEFAULT_CPU_RECIPE, LoraRecipe
from trainers.run import TrainingKit, run_training
from trainers.training_store import TrainingStore

FAMILY = "smollm2"


@pytest.fixture(params=["sqlite", "postgres"])
def db(request: pytest.FixtureRequest, settings: Settings) -> Database:
    if request.param == "postgres":
        settings = settings.override(database_url=request.getfixturevalue("postgres_url"))
    return Database.from_settings(settings)


class Trainer:
    """Stands in for `train_adapter`: the adapter's bytes are a function of the examples (and of the test, so a database
    kept from an earlier run never holds the same content-addressed version already), and the losses are given."""

    def __init__(self, salt: str = "") -> None:
        self.salt = salt
        self.calls: list[list[TrainingExample]] = []
        self.losses: list[float] = [1.0, 0.5]
        self.error: Exception | None = None

    def __call__(self, base: Path, examples: list[TrainingExample], recipe: LoraRecipe, out: Path, *, progress: bool = True) -> TrainReport:
        self.calls.append(examples)
        if self.error is not None:
            raise self.error
        out.mkdir(parents=True)
        (out / "adapter_model.safetensors").write_bytes(json.dumps([self.salt, *(e.target for e in examples)]).encode())
        (out / "adapter_config.json").write_text("{}")
        (out / "train_report.json").write_text(str(id(examples)))  # differs run to run: never part of the digest
        return TrainReport(steps=len(self.losses), losses=self.losses, final_loss=self.losses[-1], seconds=0.1, step_seconds=0.05,
                           adapter_path=out, examples=len(examples))


class Engine:
    """Answers each question with its correction only through the candidate adapter (so the gate passes), else "no idea"."""

    name = "fake"

    def __init__(self, targets: dict[str, str]) -> None:
        self.targets, self.candidate = targets, ""

    def generate(self, messages: list[ChatMessage], params: GenerationParams | None = None, *, adapter: str | None = None) -> Generation:
        text = self.targets.get(messages[-1].content, "") if adapter and adapter == self.candidate else "no idea"
        return Generation(text=text, prompt_tokens=1, completion_tokens=1, adapter=adapter, finish_reason="stop")


@pytest.fixture
def trainer(monkeypatch: pytest.MonkeyPatch, unique: str) -> Trainer:
    fake = Trainer(salt=unique)
    monkeypatch.setattr(run_module, "train_adapter", fake)
    return fake


def kit(db: Database, tmp_path: Path, engine: Engine | None = None) -> TrainingKit:
    registry = ModelRegistry(db)
    registry.ensure_base_version(FAMILY)

    def load_adapter(version: str) -> str | None:
        return None if version.endswith("@base") else version

    return TrainingKit(feedback=FeedbackStore(db), training=TrainingStore(db), registry=registry,
                       artifacts=open_artifact_store(None, home=tmp_path), engine=lambda: engine or Engine({}),  # type: ignore[arg-type,return-value]
                       load_adapter=load_adapter, base_model_path=tmp_path, recipe=LoraRecipe.from_yaml(DEFAULT_CPU_RECIPE),
                       policy=LearningPolicy(), rehearsal_examples=0)


def correct(db: Database, tenant: str, question: str, correction: str, n: int) -> None:
    """A finished task of `tenant` for `question`, corrected with `correction`."""
    request = ChatRequest(tenant=tenant, messages=[ChatTurn(role="user", content=question)])
    TaskStore(db).create_task(task_from_request(request))
    attempts = TaskAttempts(db)
    attempt = attempts.claim(request.task_id, "agent", 60.0)
    assert attempt is not None
    assert attempts.finish(request.task_id, attempt, "agent", to="succeeded", result=outcome_of(request, "no idea"))
    FeedbackStore(db).add_feedback(FeedbackRecord(id=f"fb-{tenant}-{n}", task_id=request.task_id, tenant=tenant, rating="down",
                                                  correction=correction))


def test_a_run_trains_only_its_tenants_corrections_into_a_content_addressed_canary_on_its_line(
        db: Database, tmp_path: Path, unique: str, trainer: Trainer) -> None:
    acme, other = f"acme-{unique}", f"other-{unique}"
    correct(db, acme, "What was Q3 revenue?", "Q3 revenue: $4.2M", 0)
    correct(db, acme, "what was Q3 revenue", "Q3 revenue: $4.2M.", 1)  # folded into the next
    correct(db, acme, "What was Q3 revenue?", "Q3 revenue: $4.2 M", 2)
    correct(db, other, "What was Q3 revenue?", "Q3 revenue: $9.9M", 0)
    engine = Engine({"What was Q3 revenue?": "Q3 revenue: $4.2 M"})
    the_kit = kit(db, tmp_path, engine)
    expected = tmp_path / "expected-adapter"  # the files the stand-in trainer will write, digested the artifact store's way
    expected.mkdir()
    (expected / "adapter_model.safetensors").write_bytes(json.dumps([trainer.salt, "Q3 revenue: $4.2 M"]).encode())
    (expected / "adapter_config.json").write_text("{}")
    engine.candidate = version_id(FAMILY, adapter_digest(expected))

    outcome = run_training(the_kit, f"run-{unique}", acme, FAMILY)

    assert [[e.target for e in call] for call in trainer.calls] == [["Q3 revenue: $4.2 M"]]  # acme's, folded; never other's
    assert (outcome.state, outcome.version, outcome.version_state, outcome.canary_share) == ("gated", engine.candidate, "canary", 0.2), outcome
    version = the_kit.registry.get_version(engine.candidate)
    assert version is not None
    assert (version.tenant, version.state, version.parent, version.recipe) == (acme, "canary", base_version(FAMILY), "lora-peft")
    assert Path(the_kit.artifacts.fetch(version.artifact_uri or "", version.version), "adapter_model.safetensors").exists()
    assert the_kit.registry.serving(FAMILY, other).canary is None  # the other tenant's line is untouched
    run = the_kit.training.get_run(f"run-{unique}")
    assert run is not None and (run.state, run.version, run.metrics["losses"]) == ("gated", engine.candidate, [1.0, 0.5])
    assert run.metrics["gate_candidate"] > run.metrics["gate_incumbent"]


@pytest.mark.parametrize(("losses", "error", "expected"), [
    ([1.0, float("nan")], None, "NonFiniteLoss: training loss is not finite"),
    ([1.0, float("inf")], None, "NonFiniteLoss: training loss is not finite"),
    ([], RuntimeError("CUDA out of memory"), "RuntimeError: CUDA out of memory"),
    ([], MemoryError("cannot allocate"), "MemoryError: cannot allocate"),
])
def test_a_failed_run_is_recorded_with_its_error_and_leaves_the_serving_versions_untouched(
        db: Database, tmp_path: Path, unique: str, trainer: Trainer, losses: list[float], error: Exception | None, expected: str) -> None:
    tenant = f"acme-{unique}"
    correct(db, tenant, "Capital of Zorblax?", "Quenvale.", 0)
    trainer.losses, trainer.error = losses, error
    the_kit = kit(db, tmp_path)
    outcome = run_training(the_kit, f"run-{unique}", tenant, FAMILY)
    assert outcome.state == "failed" and outcome.error is not None and outcome.error.startswith(expected), outcome
    run = the_kit.training.get_run(f"run-{unique}")
    assert run is not None and (run.state, run.error) == ("failed", outcome.error)
    assert [v.version for v in the_kit.registry.list_versions(FAMILY, tenant, every_tenant=False) if v.tenant == tenant] == []
    serving = the_kit.registry.serving(FAMILY, tenant)
    assert (serving.active.version, serving.canary) == (base_version(FAMILY), None)


def test_the_same_weights_twice_are_one_version_and_the_second_run_says_so(db: Database, tmp_path: Path, unique: str, trainer: Trainer) -> None:
    tenant = f"acme-{unique}"
    correct(db, tenant, "Capital of Zorblax?", "Quenvale.", 0)
    the_kit = kit(db, tmp_path)
    first = run_training(the_kit, f"run-{unique}-1", tenant, FAMILY)
    second = run_training(the_kit, f"run-{unique}-2", tenant, FAMILY)
    assert first.version == second.version and first.changed and not second.changed
    assert second.state == "rejected" and second.reason.startswith(f"same weights as version {first.version}")


def test_one_run_per_tenant_at_a_time_and_a_redelivered_request_never_trains_twice(
        db: Database, tmp_path: Path, unique: str, trainer: Trainer) -> None:
    tenant = f"acme-{unique}"
    correct(db, tenant, "Capital of Zorblax?", "Quenvale.", 0)
    the_kit = kit(db, tmp_path)
    claimed, _ = the_kit.training.start_run(TrainingRunRecord(id=f"other-{unique}", tenant=tenant, family=FAMILY, recipe="lora-peft", state="running"))
    assert claimed
    busy = run_training(the_kit, f"run-{unique}", tenant, FAMILY)
    assert busy.state == "busy" and f"other-{unique}" in busy.reason and trainer.calls == []
    assert the_kit.training.get_run(f"run-{unique}") is None  # the withdrawn claim leaves no row
    assert run_training(the_kit, f"else-{unique}", f"else-{unique}", FAMILY).state == "nothing"  # another tenant is not blocked

    the_kit.training.finish_run(f"other-{unique}", state="rejected")
    done = run_training(the_kit, f"run-{unique}", tenant, FAMILY)
    again = run_training(the_kit, f"run-{unique}", tenant, FAMILY)  # the request redelivered
    assert len(trainer.calls) == 1 and again.replayed and (again.state, again.version) == (done.state, done.version)


def test_a_run_whose_process_was_killed_is_recorded_failed_when_its_request_comes_back(
        db: Database, tmp_path: Path, unique: str, trainer: Trainer) -> None:
    tenant = f"acme-{unique}"
    the_kit = kit(db, tmp_path)
    the_kit.training.start_run(TrainingRunRecord(id=f"run-{unique}", tenant=tenant, family=FAMILY, recipe="lora-peft", state="running"))
    outcome = run_training(the_kit, f"run-{unique}", tenant, FAMILY)  # the redelivery after the kill
    assert outcome.state == "failed" and "stopped before it finished" in (outcome.error or "")
    run = the_kit.training.get_run(f"run-{unique}")
    assert run is not None and run.state == "failed" and trainer.calls == []




class Recorder:
    """A publisher that keeps what it was given."""

    def __init__(self) -> None:
        self.events: list[Event] = []

    async def publish(self, event: Event, *, topic: str | None = None) -> None:
        self.events.append(event)


async def test_the_trainer_worker_counts_a_failed_run_on_metrics_once(settings: Settings, unique: str, trainer: Trainer) -> None:
    """A NaN run through the worker: `ragloop_training_runs_total{outcome="failed"}` goes up by one, nothing is published,
    and the redelivered request neither trains nor counts again."""
    services = Services(settings, Stores.from_settings(settings))
    services.stores.registry.ensure_base_version(FAMILY)
    tenant = f"acme-{unique}"
    correct(services.stores.db, tenant, "Capital of Zorblax?", "Quenvale.", 0)
    trainer.losses = [float("nan")]
    recorder = Recorder()
    [consumer] = trainer_worker.consumers(services, recorder)  # type: ignore[arg-type]
    failed = TRAINING_RUNS.labels("failed")
    before = failed._value.get()
    request = TrainRequest(event_id=f"req-{unique}", tenant=tenant, model_family=FAMILY, reason="test")
    await consumer.handle(request)
    await consumer.handle(request)
    assert failed._value.get() == before + 1 and len(trainer.calls) == 1 and recorder.events == []
    assert 'ragloop_training_runs_total{outcome="failed"}' in generate_latest().decode()
