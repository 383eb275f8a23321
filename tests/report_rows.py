"""Realistic learning-loop rows for the report's tests (not a test module): two tenants, several versions,
a canary that was promoted, one that was rolled back, one still running, ratings, and training runs that
were gated, rejected and failed. Seeded straight into the tables, as the workers would have left them."""

from __future__ import annotations

import random
from datetime import datetime, timedelta

from schemas.database import Database
from schemas.events import utcnow
from schemas.tables import EvalRecord, FeedbackRecord, ModelDecisionRecord, ModelVersionRecord, TrainingRunRecord

FAMILY = "smollm2-135m-instruct"
BASE = f"{FAMILY}@base"
ACME_V1 = f"{FAMILY}@lora-aaaaaaaaaaaa"  # acme: canaried, promoted
ACME_V2 = f"{FAMILY}@lora-bbbbbbbbbbbb"  # acme: canaried, rolled back
GLOBEX_V1 = f"{FAMILY}@lora-cccccccccccc"  # globex: a canary still running
GLOBEX_SECRET = "globex-only-reason"  # text only globex's rows hold: must never reach acme's report
ACME_VERSIONS = (BASE, ACME_V1, ACME_V2)  # the versions that answered acme
_BASE, _ACME_V1, _ACME_V2, _GLOBEX_V1, _FAMILY = BASE, ACME_V1, ACME_V2, GLOBEX_V1, FAMILY


def in_family(version: str, family: str) -> str:
    return family + version.removeprefix(FAMILY)


def seed(db: Database, *, acme: str = "acme", globex: str = "globex", family: str = FAMILY, now: datetime | None = None) -> datetime:
    """Write the rows; returns the time everything is relative to (hours before it). Another `family` (and tenants) keeps them
    apart from other tests' rows in a shared database: the version ids are then this module's with the family replaced."""
    now = now or utcnow()
    BASE, ACME_V1, ACME_V2, GLOBEX_V1, FAMILY = (in_family(v, family) for v in (_BASE, _ACME_V1, _ACME_V2, _GLOBEX_V1, _FAMILY))  # noqa: N806
    at = [now - timedelta(hours=6) + timedelta(minutes=m) for m in range(0, 360)]
    rng = random.Random(9)
    with db.session() as s:
        for version in [ModelVersionRecord(version=BASE, family=FAMILY, state="active", created_at=at[0]),  # merged: a runtime may have made the base
                        ModelVersionRecord(version=ACME_V1, family=FAMILY, tenant=acme, state="active", recipe="lora-peft", created_at=at[60]),
                        ModelVersionRecord(version=ACME_V2, family=FAMILY, tenant=acme, state="rolled_back", parent=ACME_V1, created_at=at[200]),
                        ModelVersionRecord(version=GLOBEX_V1, family=FAMILY, tenant=globex, state="canary", canary_share=0.2, created_at=at[250])]:
            s.merge(version)
        decisions = [(BASE, None, "promote", "cli", "the base model serves until an adapter is promoted", {}, 0),
                     (ACME_V1, acme, "candidate", "auto:gate", "trained on 12 corrections", {}, 60),
                     (ACME_V1, acme, "canary", "auto:gate", "gate passed", {"gate_candidate": 0.81, "gate_incumbent": 0.42}, 61),
                     (ACME_V1, acme, "promote", "auto:canary", "canary passed 200 answers without a drop", {"token_f1": 0.61, "count": 200}, 150),
                     (ACME_V2, acme, "candidate", "auto:gate", "trained on 20 corrections", {}, 200),
                     (ACME_V2, acme, "canary", "auto:gate", "gate passed", {"gate_candidate": 0.9, "gate_incumbent": 0.8}, 201),
                     (ACME_V2, acme, "rollback", "auto:canary", "token_f1 dropped 0.31 below the incumbent (p=0.002)",
                      {"canary_mean": 0.28, "incumbent_mean": 0.59, "count": 48}, 260),
                     (GLOBEX_V1, globex, "candidate", "auto:gate", GLOBEX_SECRET, {"globex_number": 31337.5}, 250),
                     (GLOBEX_V1, globex, "canary", "auto:gate", GLOBEX_SECRET, {"gate_candidate": 0.31337}, 251)]
        s.add_all([ModelDecisionRecord(family=FAMILY, version=v, tenant=t, action=a, actor=who, reason=why, numbers=n, at=at[m])
                   for v, t, a, who, why, n, m in decisions])
        runs = [("run-1", acme, "gated", ACME_V1, None, {"gate_candidate": 0.81, "gate_incumbent": 0.42, "losses": [2.1, 1.2, 0.6]}, 40, 60),
                ("run-2", acme, "rejected", None, None, {"gate_candidate": 0.35, "gate_incumbent": 0.61}, 120, 135),
                ("run-3", acme, "gated", ACME_V2, None, {"gate_candidate": 0.9, "gate_incumbent": 0.8}, 180, 200),
                ("run-4", acme, "failed", None, "loss became NaN at step 3", {}, 300, 305),
                ("run-g", globex, "gated", GLOBEX_V1, None, {"gate_candidate": 0.31337, "gate_incumbent": 0.111, "globex_steps": 3}, 230, 250)]
        s.add_all([TrainingRunRecord(id=f"{t}-{i}", tenant=t, family=FAMILY, recipe="lora-peft", state=st, version=v, error=e, metrics=m,
                                     started_at=at[a], finished_at=at[b]) for i, t, st, v, e, m, a, b in runs])
        for minute in range(0, 360, 3):
            version = ACME_V2 if 201 <= minute < 260 and minute % 2 else (ACME_V1 if minute >= 61 and (minute >= 150 or minute % 4 == 0) else BASE)
            quality = {BASE: 0.45, ACME_V1: 0.62, ACME_V2: 0.3}[version] + rng.uniform(-0.08, 0.08)
            s.add(EvalRecord(task_id=f"{acme}-t{minute}", model_version=version, tenant=acme, created_at=at[minute],
                             metrics={"token_f1": quality, "rouge_l": quality - 0.05, "bleu": 100 * quality / 3, "answer_relevance": 0.5 + quality / 2,
                                      "context_overlap": 0.7, "latency_ms": 900.0, "exact_match": None}))
            s.add(EvalRecord(task_id=f"{globex}-t{minute}", model_version=GLOBEX_V1 if minute >= 251 else BASE, tenant=globex,
                             created_at=at[minute], metrics={"token_f1": 0.99, "rouge_l": 0.99}))
        for minute in range(0, 360, 7):
            down = rng.random() < (0.6 if 201 <= minute < 260 else 0.2)
            s.add(FeedbackRecord(id=f"{acme}-f{minute}", task_id=f"{acme}-t{minute}", tenant=acme, rating="down" if down else "up",
                                 correction="The answer is 42." if down and minute % 2 else None, created_at=at[minute]))
        s.add(FeedbackRecord(id=f"{globex}-f1", task_id=f"{globex}-t1", tenant=globex, rating="down", correction=GLOBEX_SECRET, created_at=at[5]))
        s.commit()
    return now
