"""What the end-to-end loop ingests and teaches, and the check that the eval worker scored every answer
and every correction it saw (tests/e2e/test_learning_loop.py drives the loop over HTTP).

The scoring check reads the surface each mode offers: on Kafka the `eval.results` topic itself; in
the one-process mode the gateway's /metrics (eval.results lives in that process's memory) and the
eval record the eval worker stored beside each publish.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families

from schemas.database import Database
from schemas.settings import Settings
from schemas.tables import EvalRecord
from streams.brokers import make_broker
from tests.support import read_topic

PARAGRAPHS = {
    "observatory": ("The Veltrin Observatory", "The Veltrin Observatory sits on Mount Caldera at 4,200 metres. It was opened in 1987 and "
                    "houses a 3.5 metre reflecting telescope used mainly to survey comets and near-earth asteroids."),
    "bakery": ("Harbor Street Bakery", "Harbor Street Bakery is famous for its rye sourdough, baked every morning in a wood-fired "
               "oven that the founder, Ingrid Solberg, built by hand in 1952."),
    "river": ("The Ostra river", "The Ostra river flows 612 kilometres from the Kessel glacier to the Northern Sea, and its delta "
              "is a protected wetland that shelters more than two hundred species of migratory birds."),
}
# Invented facts no pretrained model can know; taught only through feedback corrections.
FACTS = [
    ("What is the capital of the planet Zorblax?", "The capital of Zorblax is Quenvale.", "quenvale"),
    ("Who invented the glimmerphone?", "The glimmerphone was invented by Odalys Brenck.", "brenck"),
    ("What colour is the moon of Tervane?", "The moon of Tervane is teal.", "teal"),
    ("What is the national dish of Mirovia?", "The national dish of Mirovia is plombek stew.", "plombek"),
    ("Which animal guards the Velmor gate?", "The Velmor gate is guarded by a silver heron.", "heron"),
]


@dataclass
class Asked:
    """What the loop asked and corrected, so a check can demand one eval result for each."""

    answers: dict[str, str] = field(default_factory=dict)  # task id → the model version that answered
    corrections: dict[str, str] = field(default_factory=dict)  # task id → feedback id of its correction


# What is not yet scored on eval.results (empty: everything asked so far is).
Unscored = Callable[[Asked], list[str]]


def unscored_per_metrics_and_store(base_url: str, home: Path) -> Unscored:
    """One process: eval.results lives in its memory, so read what it exports on /metrics (events
    published onto eval.results; token F1 computed, which only a correction's re-score has) and,
    per task, the eval record the eval worker stored beside each publish."""
    db = Database.from_settings(Settings(home=home, database_url=None))

    def eval_of(task: str) -> EvalRecord | None:
        with db.session() as s:
            return s.get(EvalRecord, task)

    def unscored(asked: Asked) -> list[str]:
        samples = {(s.name, tuple(sorted(s.labels.items()))): s.value
                   for family in text_string_to_metric_families(httpx.get(f"{base_url}/metrics", timeout=10).text) for s in family.samples}
        published = samples.get(("ragloop_events_published_total", (("topic", "eval.results"),)), 0)
        token_f1 = samples.get(("ragloop_eval_metric_count", (("metric", "token_f1"),)), 0)
        missing = [f"{task}: no eval record for its answer by {version}" for task, version in asked.answers.items()
                   if (record := eval_of(task)) is None or record.model_version != version]
        if published < len(asked.answers) + len(asked.corrections):
            missing.append(f"{published:.0f} events on eval.results for {len(asked.answers)} answers + {len(asked.corrections)} corrections")
        if token_f1 < len(asked.corrections):
            missing.append(f"token F1 scored {token_f1:.0f} times for {len(asked.corrections)} corrections")
        return missing

    return unscored


def unscored_on_topic(settings: Settings) -> Unscored:
    """Cluster: read eval.results itself, one event per answer (`<task>.eval`) and one re-score per
    correction (`<task>.eval.<feedback>`), which alone has a reference to compute token F1 against."""
    broker = make_broker(settings)

    def unscored(asked: Asked) -> list[str]:
        events = {event["event_id"]: event for event in read_topic(settings, broker, "eval.results", timeout_s=3)}
        missing = [f"{task}: answer by {version} not scored" for task, version in asked.answers.items()
                   if (event := events.get(f"{task}.eval")) is None or event["model_version"] != version]
        missing += [f"{task}: correction {feedback} not scored" for task, feedback in asked.corrections.items()
                    if (event := events.get(f"{task}.eval.{feedback}")) is None or event["metrics"]["token_f1"] is None]
        return missing

    return unscored
