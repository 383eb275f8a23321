"""The learning half of the loop through its real workers (agent, eval, feedback, trainer) on the
embedded broker, driven over HTTP as users drive it, with settings given as an operator gives them
(`RAGLOOP_*` environment variables). The README promises:

- the eval worker scores every answer onto `eval.results`, and re-scores it against a correction;
- requests asked with principals are never trained on (neither their corrections nor, as
  rehearsal, their up-voted answers): their prompts may hold restricted passages;
- `RAGLOOP_TRAIN_REHEARSAL_EXAMPLES`, `RAGLOOP_GATE_GUARD_EXAMPLES` and `RAGLOOP_GATE_MAX_GUARD_DROP`
  decide what the trainer worker trains on and what its gate asks.

What a run trained on is read from the model version it records (`GET /v1/models` metrics); a run
trains the asking tenant's adapter, and a gated one becomes a canary on that tenant's line.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from schemas.settings import Settings
from streams.gateway.app import create_app
from streams.gateway.server import serve_in_thread
from streams.runtime import Runtime
from tests.support import eventually, read_topic
from trainers.recipe import DEFAULT_CPU_RECIPE, LoraRecipe

pytestmark = pytest.mark.slow  # every test generates answers with SmolLM2; the trainer tests train LoRA

SECRET = ["team-x"]
REFERENCE_METRICS = ("rouge_l", "token_f1", "exact_match")  # measurable only against a reference or correction


@pytest.fixture
def env_settings(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Callable[..., Settings]:
    """Settings built the way a worker process builds them: from RAGLOOP_* environment variables."""

    def build(**env: str) -> Settings:
        for name, value in {"RAGLOOP_HOME": str(tmp_path / "home"), "RAGLOOP_BROKER_URL": "memory://",
                            "RAGLOOP_SEARCH_URL": "embedded://", "RAGLOOP_MAX_NEW_TOKENS": "12", **env}.items():
            monkeypatch.setenv(name, value)
        return Settings()

    return build


def recipe_file(tmp_path: Path, **changes: Any) -> str:
    """The checked-in CPU recipe with `changes`, written where RAGLOOP_TRAIN_RECIPE can name it."""
    path = tmp_path / "recipe.yaml"
    path.write_text(LoraRecipe.from_yaml(DEFAULT_CPU_RECIPE).model_copy(update=changes).to_yaml())
    return str(path)


# One optimizer step of a rank-2 adapter on one projection: enough to run the trainer worker
# end to end when only what it trained on matters, not whether it learned.
TINY = {"rank": 2, "alpha": 4.0, "target_modules": ["q_proj"], "max_steps": 1, "stop_loss": None}


@contextmanager
def running(settings: Settings, *roles: str) -> Iterator[tuple[httpx.Client, Runtime]]:
    runtime = Runtime(settings, list(roles))
    with serve_in_thread(create_app(runtime)) as url, httpx.Client(base_url=url, timeout=300) as client:
        yield client, runtime


def ask(client: httpx.Client, question: str, principals: list[str] | None = None) -> dict[str, Any]:
    """A finished task; no retrieval, so the prompt is the question alone and answers stay short."""
    body = {"messages": [{"role": "user", "content": question}], "retrieval": False, "principals": principals or []}
    reply = client.post("/v1/chat", params={"wait": "true"}, json=body)
    assert reply.status_code == 200, reply.text
    task = reply.json()
    assert task["status"] == "succeeded", task
    return task


def rate(client: httpx.Client, task_id: str, rating: str, correction: str | None = None) -> str:
    reply = client.post("/v1/feedback", json={"task_id": task_id, "rating": rating, "correction": correction})
    assert reply.status_code == 202, reply.text
    return reply.json()["feedback_id"]


async def up_vote(client: httpx.Client, runtime: Runtime, task_ids: list[str]) -> None:
    """Up-vote answers and wait until the feedback worker has stored them as approved."""
    for task_id in task_ids:
        rate(client, task_id, "up")
    await eventually(lambda: {t.id for t in runtime.stores.feedback.approved_tasks(100)} >= set(task_ids), what="up-votes stored")


def versions(client: httpx.Client) -> list[dict[str, Any]]:
    return client.get("/v1/models").json()["models"]


async def finished_run(client: httpx.Client, timeout: float = 600) -> dict[str, Any]:
    """The first trained version once its gate has decided (a canary or rejected)."""
    decided: list[dict[str, Any]] = []

    def decided_run() -> bool:
        decided[:] = [m for m in versions(client) if not m["version"].endswith("@base") and m["state"] in ("canary", "rejected")]
        return bool(decided)

    await eventually(decided_run, timeout=timeout, interval=1, what="a training run decided by the gate")
    return decided[0]


async def eval_result(runtime: Runtime, event_id: str) -> dict[str, Any]:
    found: list[dict[str, Any]] = []

    def published() -> bool:
        found[:] = [e for e in read_topic(runtime.settings, runtime.broker, "eval.results") if e["event_id"] == event_id]
        return bool(found)

    await eventually(published, what=f"{event_id} on eval.results")
    return found[0]


# --- eval worker --------------------------------------------------------------------------------

async def test_eval_worker_scores_an_answer_onto_eval_results(env_settings: Callable[..., Settings]) -> None:
    """Without a reference or retrieved contexts only cost is measurable: quality metrics are None
    ("not measurable"), the length and latency are the answer's own."""
    with running(env_settings(), "agent", "eval") as (client, runtime):
        task = ask(client, "What is the capital of France?")
        event = await eval_result(runtime, f"{task['task_id']}.eval")
    result = task["result"]
    assert (event["task_id"], event["model_version"]) == (task["task_id"], result["model_version"])
    metrics = event["metrics"]
    unmeasurable = (*REFERENCE_METRICS, "context_overlap")
    assert {name: metrics[name] for name in unmeasurable} == dict.fromkeys(unmeasurable)
    assert metrics["answer_tokens"] == len(result["answer"].split()) > 0
    assert metrics["latency_ms"] == pytest.approx(sum(result["timings_ms"].values())) and metrics["latency_ms"] > 0


async def test_eval_worker_rescores_an_answer_against_its_correction(env_settings: Callable[..., Settings]) -> None:
    """A correction is the reference the answer is scored against: correcting an answer with its
    own text scores it perfect on every reference metric."""
    with running(env_settings(), "agent", "eval") as (client, runtime):
        task = ask(client, "What is the capital of France?")
        feedback_id = rate(client, task["task_id"], "down", correction=task["result"]["answer"])
        event = await eval_result(runtime, f"{task['task_id']}.eval.{feedback_id}")
    assert event["task_id"] == task["task_id"]
    assert {name: event["metrics"][name] for name in REFERENCE_METRICS} == dict.fromkeys(REFERENCE_METRICS, 1.0)


# --- trainer worker -----------------------------------------------------------------------------

async def test_requests_asked_with_principals_are_never_trained_on(env_settings: Callable[..., Settings], tmp_path: Path) -> None:
    """Two of three corrections and one of two up-voted answers were asked with principals: the run
    trains on the one plain correction and rehearses the one plain up-voted answer, nothing else."""
    settings = env_settings(RAGLOOP_FEEDBACK_MIN_CORRECTIONS="3", RAGLOOP_TRAIN_REHEARSAL_EXAMPLES="8",
                            RAGLOOP_TRAIN_RECIPE=recipe_file(tmp_path, **TINY))
    with running(settings, "agent", "feedback", "trainer") as (client, runtime):
        liked = [ask(client, "Name a primary colour.")["task_id"], ask(client, "Name a fruit.", SECRET)["task_id"]]
        await up_vote(client, runtime, liked)
        for question, principals in [("Who wrote the project plan?", SECRET), ("What is the launch code?", SECRET),
                                     ("What is the capital of Zorblax?", None)]:
            rate(client, ask(client, question, principals)["task_id"], "down", correction=f"The answer to '{question}' is Quenvale.")
        run = await finished_run(client)
    assert (run["metrics"]["examples"], run["metrics"]["rehearsal_examples"]) == (2, 1), run["metrics"]


async def test_corrections_asked_only_with_principals_start_no_training(env_settings: Callable[..., Settings], tmp_path: Path) -> None:
    """With nothing trainable the request is refused for good (dead-lettered with the reason), and
    no version is trained."""
    settings = env_settings(RAGLOOP_FEEDBACK_MIN_CORRECTIONS="1", RAGLOOP_TRAIN_RECIPE=recipe_file(tmp_path, **TINY))
    with running(settings, "agent", "feedback", "trainer") as (client, runtime):
        rate(client, ask(client, "What is the launch code?", SECRET)["task_id"], "down", correction="The launch code is Quenvale.")
        dead: list[dict[str, Any]] = []

        def dead_lettered() -> bool:
            dead[:] = read_topic(runtime.settings, runtime.broker, "train.requests.dlq")
            return bool(dead)

        await eventually(dead_lettered, timeout=120, what="the training request on train.requests.dlq")
        assert [m["version"] for m in versions(client)] == [f"{runtime.settings.llm.model_family}@base"]
    assert (dead[0]["consumer"], dead[0]["error_type"]) == ("ragloop.trainer", "PermanentError"), dead[0]
    assert "never trained on" in dead[0]["reason"], dead[0]


async def test_rehearsal_and_gate_guard_settings_reach_the_trainer_worker(env_settings: Callable[..., Settings], tmp_path: Path) -> None:
    """Four up-voted answers, one correction. RAGLOOP_GATE_GUARD_EXAMPLES=1 holds the newest up-vote
    out for the gate, RAGLOOP_TRAIN_REHEARSAL_EXAMPLES=2 rehearses the next two (the fourth is left
    out), and the gate holds the candidate to RAGLOOP_GATE_MAX_GUARD_DROP. The correction teaches a
    one-word answer the base model cannot give, so the candidate gains and the gate asks its guard."""
    settings = env_settings(RAGLOOP_FEEDBACK_MIN_CORRECTIONS="1", RAGLOOP_TRAIN_REHEARSAL_EXAMPLES="2",
                            RAGLOOP_GATE_GUARD_EXAMPLES="1", RAGLOOP_GATE_MAX_GUARD_DROP="1.0",
                            RAGLOOP_TRAIN_RECIPE=recipe_file(tmp_path, max_steps=15))
    with running(settings, "agent", "feedback", "trainer") as (client, runtime):
        liked = [ask(client, question)["task_id"] for question in
                 ("Name a primary colour.", "Name a fruit.", "Name a planet.", "Name an ocean.")]
        await up_vote(client, runtime, liked)
        rate(client, ask(client, "What is the secret word?")["task_id"], "down", correction="Quenvale.")
        run = await finished_run(client)
    metrics = run["metrics"]
    assert (metrics["examples"], metrics["rehearsal_examples"]) == (3, 2), metrics
    assert metrics["gate_candidate"] > metrics["gate_incumbent"], f"the candidate did not learn the correction: {metrics}"
    assert (metrics["gate_guard_examples"], metrics["gate_max_guard_drop"]) == (1, 1.0), metrics
    assert run["state"] == "canary", "a gain, and any guard drop is within 1.0: the gate must start a canary"
