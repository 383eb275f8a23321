"""Publish only if it beats the current one: score a candidate adapter against the incumbent.

Both are scored on the same examples with greedy decoding and SQuAD-style token F1, so the
comparison is deterministic and cheap enough to run on CPU after every training run. The
examples are the corrections (where the candidate must gain) and, as a regression guard,
answers users rated up (where it must not lose more than ``max_guard_drop``): an adapter that
learns the corrections by forgetting what already worked is not published::

    report = gate_candidate(engine, corrections, candidate="facts-v2", incumbent="facts-v1", guard=liked)
    if report.promoted: publish("facts-v2")
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from pydantic import BaseModel

from evaluation.metrics.token_f1.token_f1 import pair_f1
from models.llm.base import GenerationParams, LLMEngine
from trainers.dataset import TrainingExample

# Answers to feedback examples are one or two sentences; longer output only lowers precision.
GATE_PARAMS = GenerationParams(max_new_tokens=64, temperature=0.0)


class ExampleScore(BaseModel):
    """One held-out example: what each side answered and its F1 against the target."""

    question: str
    target: str
    candidate_answer: str
    candidate_f1: float
    incumbent_answer: str
    incumbent_f1: float


class GateReport(BaseModel):
    """The decision and the evidence for it."""

    candidate: str
    incumbent: str | None  # None = the base model
    candidate_score: float
    incumbent_score: float
    min_gain: float
    promoted: bool
    per_example: list[ExampleScore]
    guard_candidate_score: float | None = None  # None = no guard examples
    guard_incumbent_score: float | None = None
    max_guard_drop: float = 0.0
    guard_per_example: list[ExampleScore] = []
    reason: str = ""


def answer_all(
    engine: LLMEngine,
    examples: list[TrainingExample],
    adapter: str | None,
    params: GenerationParams = GATE_PARAMS,
) -> list[str]:
    """Greedy answers of ``adapter`` (None = base weights) to each example's prompt."""
    return [engine.generate(ex.messages, params, adapter=adapter).text for ex in examples]


def score_engine(
    engine: LLMEngine,
    examples: list[TrainingExample],
    adapter: str | None,
    params: GenerationParams = GATE_PARAMS,
) -> float:
    """Mean token F1 of greedy answers against the targets (0.0 for no examples)."""
    if not examples:
        return 0.0
    answers = answer_all(engine, examples, adapter, params)
    return sum(pair_f1(a, ex.target) for a, ex in zip(answers, examples)) / len(examples)


def gate_candidate(
    engine: LLMEngine,
    examples: list[TrainingExample],
    candidate: str,
    incumbent: str | None,
    min_gain: float = 0.0,
    params: GenerationParams = GATE_PARAMS,
    guard: Sequence[TrainingExample] = (),
    max_guard_drop: float = 0.05,
) -> GateReport:
    """Promote ``candidate`` only if its score exceeds the incumbent's by more than ``min_gain``
    and, on the ``guard`` examples, is at most ``max_guard_drop`` below the incumbent's.

    A tie is not promoted: swapping adapters has a cost (cache churn, a new version to watch)
    and no measured benefit.
    """
    if not examples:
        raise ValueError("gate_candidate needs held-out examples; an empty set cannot show a gain")
    rows = _score_both(engine, examples, candidate, incumbent, params)
    cand_score, inc_score = _mean(r.candidate_f1 for r in rows), _mean(r.incumbent_f1 for r in rows)
    gained = cand_score - inc_score > min_gain
    guard_rows = _score_both(engine, list(guard), candidate, incumbent, params) if gained else []  # no gain: rejected anyway
    guard_cand = _mean(r.candidate_f1 for r in guard_rows) if guard_rows else None
    guard_inc = _mean(r.incumbent_f1 for r in guard_rows) if guard_rows else None
    if not gained:
        promoted, reason = False, f"no gain on the corrections: {cand_score:.3f} vs {inc_score:.3f} (needs > +{min_gain})"
    elif guard_cand is not None and guard_inc is not None and guard_cand < guard_inc - max_guard_drop:
        promoted, reason = False, (f"regressed on {len(guard_rows)} up-voted answers: {guard_cand:.3f} vs {guard_inc:.3f} "
                                   f"(allowed drop {max_guard_drop})")
    else:
        promoted, reason = True, f"gain on the corrections: {cand_score:.3f} vs {inc_score:.3f}"
    return GateReport(
        candidate=candidate,
        incumbent=incumbent,
        candidate_score=cand_score,
        incumbent_score=inc_score,
        min_gain=min_gain,
        promoted=promoted,
        per_example=rows,
        guard_candidate_score=guard_cand,
        guard_incumbent_score=guard_inc,
        max_guard_drop=max_guard_drop,
        guard_per_example=guard_rows,
        reason=reason,
    )


def _score_both(engine: LLMEngine, examples: list[TrainingExample], candidate: str, incumbent: str | None,
                params: GenerationParams) -> list[ExampleScore]:
    cand = answer_all(engine, examples, candidate, params)
    inc = answer_all(engine, examples, incumbent, params)
    return [
        ExampleScore(
            question=ex.messages[-1].content,
            target=ex.target,
            candidate_answer=c,
            candidate_f1=pair_f1(c, ex.target),
            incumbent_answer=i,
            incumbent_f1=pair_f1(i, ex.target),
        )
        for ex, c, i in zip(examples, cand, inc)
    ]


def _mean(values: Iterable[float]) -> float:
    items = list(values)
    return sum(items) / len(items)
