"""When a tenant's feedback starts a training run: `LearningPolicy.train` applied to what the tenant
said and how its serving version does. `gather` reads the inputs, `decide` is a pure function of
them, so every decision can be recorded with exactly what it was made on and replayed in a test::

    inputs = gather(policy, tenant, family, feedback=..., training=..., serving_version=...)
    decision = decide(policy.train, inputs)     # Decision(train, reason, inputs)

Triggers (any suffices, all subject to `min_interval_s` and to no run of the tenant running):
corrections since the last run (after folding), the down-vote share over the last `window` ratings
of the serving version, a windowed drop of `metric` below its mean right after the version went live.

`RAGLOOP_FEEDBACK_MIN_CORRECTIONS` (a public setting older than the policy file) overrides
`train.min_corrections` when set: environment > policy YAML > the built-in default.
"""

from __future__ import annotations

from datetime import UTC, datetime
from statistics import fmean

from pydantic import BaseModel

from schemas.events import utcnow
from schemas.settings import Settings
from trainers.examples import tenant_corrections
from trainers.feedback_store import FeedbackStore
from trainers.folding import fold
from trainers.policy import DEFAULT_POLICY, LearningPolicy, TrainPolicy
from trainers.training_store import TrainingStore


def load_policy(settings: Settings) -> LearningPolicy:
    """The policy file (`RAGLOOP_TRAINING_POLICY`, else the checked-in one) with the environment's overrides applied."""
    policy = LearningPolicy.from_yaml(settings.training.policy or DEFAULT_POLICY)
    if settings.training.feedback_min_corrections is not None:
        policy.train.min_corrections = settings.training.feedback_min_corrections
    return policy


class PolicyInputs(BaseModel):
    """Everything a decision looks at (stored with it as JSON)."""

    tenant: str
    serving_version: str
    corrections: int  # unclaimed, after folding (those asked with principals count: the run then says it cannot learn them)
    folded: int = 0
    refused: int = 0
    dropped: dict[str, str] = {}  # feedback id → why it is not counted (folded into a later one, refused), the latest 50
    ratings: int = 0
    downvotes: int = 0
    metric_values: int = 0
    metric_baseline: float | None = None  # mean of the first `window` values after the version went live
    metric_recent: float | None = None  # mean of the latest `window` values
    seconds_since_last_run: float | None = None  # None: never trained
    running: bool = False


class Decision(BaseModel):
    train: bool
    reason: str
    inputs: PolicyInputs


def decide(policy: TrainPolicy, inputs: PolicyInputs) -> Decision:
    def no(reason: str) -> Decision:
        return Decision(train=False, reason=reason, inputs=inputs)

    if inputs.running:
        return no("a training run of this tenant is running")
    if inputs.seconds_since_last_run is not None and inputs.seconds_since_last_run < policy.min_interval_s:
        return no(f"last run {inputs.seconds_since_last_run:.0f}s ago, less than min_interval_s={policy.min_interval_s:g}")
    if inputs.corrections >= policy.min_corrections:
        return Decision(train=True, reason=f"{inputs.corrections} corrections since the last run reached min_corrections="
                        f"{policy.min_corrections}", inputs=inputs)
    triggers: list[str] = []
    if policy.downvote_rate is not None and inputs.ratings >= policy.min_window:
        rate = inputs.downvotes / inputs.ratings
        if rate >= policy.downvote_rate:
            triggers.append(f"down-vote rate {rate:.2f} over {inputs.ratings} ratings of {inputs.serving_version} "
                            f"reached {policy.downvote_rate:g}")
    if (policy.metric_drop is not None and inputs.metric_baseline is not None and inputs.metric_recent is not None
            and inputs.metric_baseline - inputs.metric_recent >= policy.metric_drop):
        triggers.append(f"{policy.metric} fell from {inputs.metric_baseline:.3f} to {inputs.metric_recent:.3f} "
                        f"(drop >= {policy.metric_drop:g})")
    if not triggers:
        return no(f"{inputs.corrections} of {policy.min_corrections} corrections; no down-vote or metric trigger")
    if inputs.corrections < policy.min_corrections_for_trigger:
        return no(f"{'; '.join(triggers)}, but only {inputs.corrections} corrections to learn from "
                  f"(min_corrections_for_trigger={policy.min_corrections_for_trigger})")
    return Decision(train=True, reason="; ".join(triggers), inputs=inputs)


def gather(policy: TrainPolicy, tenant: str, *, serving_version: str, feedback: FeedbackStore, training: TrainingStore,
           now: datetime | None = None) -> PolicyInputs:
    corrections, _, untrainable = tenant_corrections(feedback, tenant, unclaimed=True)
    kept, dropped = fold(corrections, similarity=policy.fold_similarity, max_chars=policy.max_correction_chars)
    ratings = feedback.ratings_of_version(tenant, serving_version, policy.window)
    series = training.metric_series(tenant, serving_version, policy.metric)
    baseline = recent = None
    if len(series) >= 2 * policy.min_window:
        half = min(policy.window, len(series) // 2)  # the two windows never overlap
        baseline, recent = fmean(series[:half]), fmean(series[-half:])
    last = max((t for t in (training.last_run_at(tenant), training.last_train_decision_at(tenant)) if t is not None), default=None)
    now = now or utcnow()
    return PolicyInputs(
        tenant=tenant, serving_version=serving_version, corrections=len(kept) + untrainable,
        folded=sum(d.reason.startswith("folded") for d in dropped), refused=sum(not d.reason.startswith("folded") for d in dropped),
        dropped={d.id: d.reason for d in dropped[-50:]},
        ratings=len(ratings), downvotes=ratings.count("down"), metric_values=len(series), metric_baseline=baseline,
        metric_recent=recent, seconds_since_last_run=(now - _aware(last)).total_seconds() if last else None,
        running=bool(training.running(tenant)))


def _aware(at: datetime) -> datetime:
    """SQLite hands datetimes back naive; they were stored in UTC."""
    return at if at.tzinfo else at.replace(tzinfo=UTC)



def describe(policy: LearningPolicy, settings: Settings) -> str:
    """The policy as workers print it at start, with where it came from and what overrides it."""
    source = settings.training.policy or DEFAULT_POLICY
    override = (f" (train.min_corrections={settings.training.feedback_min_corrections} from RAGLOOP_FEEDBACK_MIN_CORRECTIONS)"
                if settings.training.feedback_min_corrections is not None else "")
    return f"learning policy from {source}{override}:\n{policy.to_yaml()}"
