"""The learning loop's targets (issue #9), measured through the public HTTP API:

- teaching: 20 invented facts (tests/e2e/learning.py's FACTS) taught only by `POST /v1/feedback`
  corrections, one tenant; the policy retrains at exactly 20 corrections, the canary earns all
  traffic under simulated users' traffic (before teaching, `--warmup-questions` other SQuAD
  questions are asked and rated by simulated users, whose up-voted answers the trainer rehearses); then the share of facts answered right through
  `POST /v1/chat` (target ≥ 90%) and the SQuAD-mini answer-contains rate on a fixed sample of
  questions before and after (target: a drop of ≤ 2 points);
- speed: from the threshold-reaching correction to the adapter serving all of the tenant's traffic,
  canary included (target ≤ 300 s);
- poison: 20 corrections that teach wrong answers to SQuAD questions the base model answered right
  (another tenant); the corrections-only gate lets the adapter through; simulated users send
  references and down-vote wrong answers; requests (all, and by the canary) and seconds from the
  first damaged answer to the automatic rollback (targets ≤ 50 canary requests, ≤ 60 s) and the
  recorded reason.

Zero wrong-adapter answers under concurrent promotions is h2's test (tests/integration), not here.

Feedback memory: ragloop keeps corrections in the feedback table only (streams/workers/feedback.py
indexes nothing), so the gain can come from the adapter alone; the script also checks that no
citation of a taught answer holds the fact.

Embedded (default): starts `ragloop up` in a temporary folder with the policy this script writes
(RAGLOOP_TRAINING_POLICY) and API keys for the two tenants. Against a running cluster: start every
role with RAGLOOP_TRAINING_POLICY pointing at the YAML `--write-policy PATH` writes, then
`--api URL --teach-key K1 --poison-key K2` (keys of two tenants with no earlier feedback). The
rollback's recorded reason and numbers are read from `GET /v1/models/decisions`.

    .venv/bin/python benchmarks/learning_loop.py --squad-questions 100
    .venv/bin/python benchmarks/learning_loop.py --facts 5 --poison 5 --squad-questions 20   # a quick look

Data: ../shared/data/squad-mini (read in place). Prints a table; writes JSON (`--out`) and an SVG
timeline of both canaries (`--plot`).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import yaml
from learning_report import plot_timeline, print_table, targets

from tests.e2e.learning import (
    FACTS,
    Answer,
    Question,
    TenantClient,
    canary_of,
    contains_any,
    drive_canary,
    fact_questions,
    first_failed_run,
    line_state,
    measure_rollback,
    poison_pairs,
    policy_yaml,
    squad_sample,
)

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "squad-mini"
TEACH, POISON = "bench-teach", "bench-poison"


class Run:
    """Where the benchmark talks to ragloop: a client per tenant (its API key) and a liveness check."""

    def __init__(self, base_url: str, keys: dict[str, str | None], alive: Callable[[], None]) -> None:
        self.clients = {tenant: TenantClient(base_url, key) for tenant, key in keys.items()}
        self.alive = alive

    def wait(self, check: Callable[[], Any], *, timeout: float, what: str, interval: float = 1.0) -> Any:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.alive()
            if result := check():
                return result
            time.sleep(interval)
        raise TimeoutError(f"timed out after {timeout}s waiting for {what}")


def decided_at(trail: Sequence[dict[str, Any]], action: str) -> float | None:
    """When the version's last `action` was recorded, on this process's monotonic clock (None: not recorded).
    Sharper than noticing the change by polling between requests, which lags by up to one request."""
    at = next((d["at"] for d in reversed(trail) if d["action"] == action), None)
    if at is None:
        return None
    moment = datetime.fromisoformat(str(at).replace("Z", "+00:00"))
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)  # the registry records UTC
    return moment.timestamp() - (time.time() - time.monotonic())


def ingest(run: Run, client: TenantClient, questions: Sequence[Question]) -> None:
    docs = {q.passage[0]: q.passage[1] for q in questions if q.passage}
    client.ingest(docs)
    run.wait(lambda: client.indexed(docs), timeout=1800, what=f"{len(docs)} passages indexed", interval=2)


def rate_of(answers: Sequence[Answer]) -> float:
    return round(sum(a.right for a in answers) / max(1, len(answers)), 4)


def wait_for_canary(run: Run, client: TenantClient, tenant: str, timeout: float) -> str:
    def gated() -> str | None:
        failed = first_failed_run(client)
        if failed:
            raise RuntimeError(f"the training run did not reach the canary: {failed}")
        canary = canary_of(client, tenant)
        if canary is None and any(line_state(m) == "rejected" for m in client.own_versions(tenant)):
            raise RuntimeError(f"the gate rejected {tenant}'s adapter: {client.own_versions(tenant)}")
        return str(canary["version"]) if canary else None

    return str(run.wait(gated, timeout=timeout, what=f"{tenant}'s adapter to become a canary", interval=2))


def teaching(run: Run, args: argparse.Namespace, squad: list[Question], warmup: list[Question]) -> dict[str, Any]:
    client = run.clients[TEACH]
    ingest(run, client, squad + warmup)
    base = client.serving()
    # Ordinary traffic before any correction, rated by its simulated users (up when right, down when wrong), as
    # real users rate: the up-voted answers are what the trainer rehearses. Disjoint from the measured sample,
    # so rehearsal cannot inflate the after-rate.
    for answer in [client.ask(q) for q in warmup]:
        client.rate(answer)
    before = [client.ask(q) for q in squad]
    facts = fact_questions(FACTS[: args.facts])
    taught_before = [client.ask(q) for q in facts]
    threshold_at = 0.0
    for answer in taught_before:
        client.correct(answer.task_id, answer.question.reference or "")
        threshold_at = time.monotonic()  # the last correction is the one that reaches min_corrections
    version = wait_for_canary(run, client, TEACH, args.retrain_timeout)
    canary_at = time.monotonic()
    mark = len(client.answers)
    traffic = [q for pair in zip(facts, squad) for q in pair] or facts  # facts and SQuAD questions, alternating, with references
    state = drive_canary(client, TEACH, version, traffic, until={"active", "rolled_back"}, alive=run.alive, timeout=args.canary_timeout)
    observed_at = time.monotonic()
    trail = client.decisions(version)
    served_at = decided_at(trail, "promote") or observed_at
    canary_traffic = client.answers[mark:]
    after_facts = [client.ask(q) for q in facts]
    after = [client.ask(q) for q in squad]
    cited = [a.question.text for a in after_facts if any(contains_any(c.get("text") or "", a.question.accepted) for c in a.citations)]
    return {
        "tenant": TEACH, "base": base, "version": version, "outcome": state, "facts": len(facts),
        "facts_right_before": rate_of(taught_before), "facts_right_after": rate_of(after_facts),
        "facts_answered_by": sorted({a.version for a in after_facts}),
        "warmup_questions": len(warmup), "squad_questions": len(squad), "squad_contains_before": rate_of(before), "squad_contains_after": rate_of(after),
        "squad_drop_points": round(100 * (rate_of(before) - rate_of(after)), 2),
        "threshold_to_canary_s": round(canary_at - threshold_at, 1), "threshold_to_all_traffic_s": round(served_at - threshold_at, 1),
        "canary_requests": len(canary_traffic), "canary_answers_by_canary": sum(a.version == version for a in canary_traffic),
        "observed_all_traffic_s": round(observed_at - threshold_at, 1), "facts_cited_from_index": cited,
        "decisions": trail, "training_runs": client.training_runs(),
        "timeline": [{"t": round(a.at - threshold_at, 2), "version": a.version, "right": a.right} for a in canary_traffic],
    }


def poisoning(run: Run, args: argparse.Namespace) -> dict[str, Any]:
    client = run.clients[POISON]
    pool = squad_sample(DATA, args.poison_pool, seed=args.seed + 1)
    ingest(run, client, pool)
    base = client.serving()
    asked = [client.ask(q) for q in pool]
    right = [a for a in asked if a.right][: args.poison]
    if len(right) < args.poison:
        raise RuntimeError(f"the base model answered only {len(right)} of {len(pool)} questions right; raise --poison-pool")
    by_id = {a.question.id: a for a in right}
    threshold_at = 0.0
    for question, wrong in poison_pairs([a.question for a in right], pool):
        client.correct(by_id[question.id].task_id, wrong)
        threshold_at = time.monotonic()
    version = wait_for_canary(run, client, POISON, args.retrain_timeout)
    mark = len(client.answers)
    poisoned = [a.question for a in right]
    state = drive_canary(client, POISON, version, poisoned, until={"active", "rolled_back"}, alive=run.alive, timeout=args.canary_timeout)
    observed_at = time.monotonic()  # noticed by polling after each request: an upper bound on the judge's moment
    trail = client.decisions(version)
    rolled_back_at = decided_at(trail, "rollback") or observed_at
    traffic = client.answers[mark:]
    measured = measure_rollback(traffic, version, rolled_back_at, damaged=lambda a: not a.right)
    rollback = next((d for d in reversed(trail) if d["action"] == "rollback"), None)
    return {
        "tenant": POISON, "base": base, "version": version, "outcome": state, "poisoned": len(right),
        "gate_accepted": True, "canary_requests": len(traffic),
        "requests_first_damage_to_rollback": measured.requests, "canary_requests_first_damage_to_rollback": measured.canary_requests,
        "seconds_first_damage_to_rollback": measured.seconds, "threshold_to_rollback_s": round(rolled_back_at - threshold_at, 1),
        "reason": rollback["reason"] if rollback else None, "actor": rollback["actor"] if rollback else None,
        "numbers": rollback["numbers"] if rollback else None, "decisions": trail, "training_runs": client.training_runs(), "serving_after": client.serving(),
        "timeline": [{"t": round(a.at - threshold_at, 2), "version": a.version, "right": a.right} for a in traffic],
    }


@contextmanager
def embedded(args: argparse.Namespace, policy: Path, tmp: Path) -> Iterator[Run]:
    from tests.e2e.deployment import deployment

    env = {"RAGLOOP_TRAINING_POLICY": str(policy), "RAGLOOP_FEEDBACK_MIN_CORRECTIONS": str(args.facts),
           "RAGLOOP_API_KEYS": f"key-teach={TEACH},key-poison={POISON}", "RAGLOOP_MAX_NEW_TOKENS": str(args.max_new_tokens)}
    with deployment(tmp, env) as dep:
        print(f"ragloop up at {dep.base_url}; logs in {tmp / 'logs'}", flush=True)
        yield Run(dep.base_url, {TEACH: "key-teach", POISON: "key-poison"}, dep.procs.assert_alive)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--facts", type=int, default=20, help="invented facts taught (also the policy's min_corrections)")
    parser.add_argument("--poison", type=int, default=20, help="wrong corrections (must equal --facts: one policy serves both tenants)")
    parser.add_argument("--poison-pool", type=int, default=80, help="SQuAD questions asked to find --poison answered right")
    parser.add_argument("--squad-questions", type=int, default=100, help="SQuAD-mini sample for the answer-contains rate")
    parser.add_argument("--warmup-questions", type=int, default=40,
                        help="SQuAD questions asked and rated (up if right, down if wrong) before teaching, disjoint from the "
                             "measured sample: the up-voted answers are what the trainer rehearses (0: a tenant that only corrects)")
    parser.add_argument("--seed", type=int, default=13)
    parser.add_argument("--canary-share", type=float, default=0.5)
    parser.add_argument("--canary-min-samples", type=int, default=20, help="canary answers scored before promotion")
    parser.add_argument("--canary-min-samples-to-abort", type=int, default=8, help="canary answers scored before a rollback")
    parser.add_argument("--max-new-tokens", type=int, default=40)
    parser.add_argument("--retrain-timeout", type=float, default=1800)
    parser.add_argument("--canary-timeout", type=float, default=1200)
    parser.add_argument("--skip-teach", action="store_true")
    parser.add_argument("--skip-poison", action="store_true")
    parser.add_argument("--api", help="a running ragloop (its roles started with the policy of --write-policy)")
    parser.add_argument("--teach-key")
    parser.add_argument("--poison-key")
    parser.add_argument("--write-policy", type=Path, help="write the policy YAML here and exit")
    parser.add_argument("--out", type=Path, default=Path("learning_loop.json"))
    parser.add_argument("--plot", type=Path, help="SVG timeline of both canaries (default: --out with .svg)")
    args = parser.parse_args()
    if args.poison != args.facts and not (args.skip_teach or args.skip_poison):
        parser.error("--poison must equal --facts: min_corrections is one number for every tenant")
    with tempfile.TemporaryDirectory(prefix="ragloop-learning-") as tmp:
        policy = policy_yaml(args.write_policy or Path(tmp) / "policy.yaml", min_corrections=args.facts if not args.skip_teach else args.poison,
                             canary_share=args.canary_share, canary_min_samples=args.canary_min_samples,
                             canary_min_samples_to_abort=args.canary_min_samples_to_abort)
        print(f"learning policy ({policy}):\n{policy.read_text()}", flush=True)
        if args.write_policy:
            return
        started = time.monotonic()
        runner = (embedded(args, policy, Path(tmp)) if args.api is None else
                  nullrun(Run(args.api, {TEACH: args.teach_key, POISON: args.poison_key}, lambda: None)))
        results: dict[str, Any] = {"policy": yaml.safe_load(policy.read_text()),
                                   "mode": "api" if args.api else "embedded"}
        with runner as run:
            if not args.skip_teach:
                sample = squad_sample(DATA, args.squad_questions + args.warmup_questions, seed=args.seed)
                results["teaching"] = teaching(run, args, sample[:args.squad_questions], sample[args.squad_questions:])
            if not args.skip_poison:
                results["poison"] = poisoning(run, args)
        results["targets"] = targets(results)
        results["wall_s"] = round(time.monotonic() - started, 1)
    args.out.write_text(json.dumps(results, indent=2, default=str))
    print_table(results)
    plot_timeline(results, args.plot or args.out.with_suffix(".svg"))
    print(f"\nJSON: {args.out}; plot: {args.plot or args.out.with_suffix('.svg')}")


@contextmanager
def nullrun(run: Run) -> Iterator[Run]:
    yield run


if __name__ == "__main__":
    main()
