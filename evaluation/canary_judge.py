"""The automatic canary decision: wait, promote or roll back, from two windows of the same period.

Why a pure function: the decision must be the same in every eval worker and easy to test, and the
numbers it rests on go into the audit trail. The eval worker builds both windows from the answers
given since the canary started (canary and incumbent on the same traffic and hours, so a hard day
does not look like a bad adapter) and acts on the verdict.

The rule (`CanaryPolicy`):
- fewer than `min_samples_to_abort` canary answers: wait;
- a *drop* rolls back: for a quality metric in `policy.metrics`, the canary's mean is more than
  `max_drop` below the incumbent's AND a one-sided Welch t-test says it is lower at `alpha`; for
  down-votes and errors, the canary's share is more than `max_downvote_increase` /
  `max_error_increase` above the incumbent's AND a one-sided two-proportion z-test says so at `alpha`;
- no drop after `min_samples` canary answers: promote; else wait.

Question groups (`groups`): a canary trained on corrections is *meant* to answer the corrected
questions differently, and one mean over all of its answers lets a large gain there hide a loss
everywhere else (the learning benchmark's taught adapter: facts 0 → 100 %, SQuAD answer-contains
32 → 8 %, promoted). So the eval worker also passes each group's pair of windows — `taught` (questions
the tenant corrected) and `untaught` (everything else) — and a drop in any group with at least
`min_samples_to_abort` canary answers rolls back too, and promotion waits until every group asked
has that many (at most until `2 * min_samples` answers). Every family of tests (all answers, each
group) runs at `alpha / families` (Bonferroni), so looking in more places does not raise the chance
of rolling back a good canary.
A metric measured on fewer than two answers on either side cannot show a drop (it is named in the
numbers as not compared). A share (down-votes, errors) with no incumbent answer in the period is held
against its maximum increase alone (one-sided binomial test): a canary that fails every request it
gets is rolled back even when it took all the traffic.

    >>> judge(canary_window, incumbent_window, policy.canary)
    Verdict(action='rollback', reason='token_f1 fell from 0.82 to 0.31 over 12 canary and 40 incumbent answers (p=0.0004) …', …)
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

from scipy import stats

from evaluation.windows import VersionWindow
from trainers.policy import CanaryPolicy

Action = Literal["wait", "promote", "rollback"]


@dataclass(frozen=True)
class Verdict:
    action: Action
    reason: str
    numbers: dict[str, float] = field(default_factory=dict)  # flat and finite: goes into the decision record and `model.updated`


def judge(canary: VersionWindow, incumbent: VersionWindow, policy: CanaryPolicy,
          groups: Mapping[str, tuple[VersionWindow, VersionWindow]] | None = None) -> Verdict:
    """The verdict on all answers and, when given, on each question group's (canary, incumbent) windows."""
    numbers: dict[str, float] = {"canary.answers": canary.answers, "incumbent.answers": incumbent.answers,
                                 "min_samples": policy.min_samples, "min_samples_to_abort": policy.min_samples_to_abort}
    if canary.answers < policy.min_samples_to_abort:
        return Verdict("wait", f"{canary.version} has {canary.answers} scored answers; a drop is judged from "
                               f"{policy.min_samples_to_abort}, promotion from {policy.min_samples}", numbers)
    # A group holding every answer on both sides is the whole window again: testing it twice would only halve alpha.
    tested = {name: (c, i) for name, (c, i) in (groups or {}).items() if c.answers >= policy.min_samples_to_abort
              and (c.answers, i.answers) != (canary.answers, incumbent.answers)}
    alpha = policy.alpha / (1 + len(tested))
    numbers["alpha"] = alpha
    drops = _drops(canary, incumbent, policy, alpha, numbers, prefix="", errors=True)
    for name, (c, i) in sorted(tested.items()):
        numbers.update({f"{name}.canary.answers": c.answers, f"{name}.incumbent.answers": i.answers})
        drops += [f"on {name} questions, {d}" for d in _drops(c, i, policy, alpha, numbers, prefix=f"{name}.", errors=False)]
    period = f"over {canary.answers} canary and {incumbent.answers} incumbent ({incumbent.version}) answers of the same period"
    if drops:
        return Verdict("rollback", f"rolled back: {'; '.join(drops)} {period}", numbers)
    # A group with a few canary answers cannot be judged yet: promotion waits for it, up to twice min_samples answers
    # (a question group that is rarely asked must not hold a good canary back for ever; the reason then names it).
    short = sorted(name for name, (c, _) in (groups or {}).items() if 0 < c.answers < policy.min_samples_to_abort)
    if canary.answers >= policy.min_samples and (not short or canary.answers >= 2 * policy.min_samples):
        unjudged = f"; too few answers to judge alone: {', '.join(short)} questions" if short else ""
        return Verdict("promote", f"promoted: no significant drop in {', '.join([*policy.metrics, 'down-votes', 'errors'])} "
                                  f"{period}{_groups_said(tested)}{unjudged}{_compared(numbers, policy)}", numbers)
    if canary.answers >= policy.min_samples:
        return Verdict("wait", f"no significant drop yet {period}; waiting for {policy.min_samples_to_abort} canary answers "
                               f"on {', '.join(short)} questions to judge them too", numbers)
    return Verdict("wait", f"no significant drop yet {period}; promotion needs {policy.min_samples} canary answers", numbers)


def _drops(canary: VersionWindow, incumbent: VersionWindow, policy: CanaryPolicy, alpha: float, numbers: dict[str, float],
           *, prefix: str, errors: bool) -> list[str]:
    """Every significant drop of one family: each quality metric, the down-vote share and (for all answers) the error share."""
    found = [_mean_drop(m, canary, incumbent, policy.max_drop, alpha, numbers, prefix) for m in policy.metrics]
    found.append(_share_rise("downvote", canary.downvotes, canary.answers, incumbent.downvotes, incumbent.answers,
                             policy.max_downvote_increase, alpha, numbers, prefix))
    if errors:
        found.append(_share_rise("error", canary.errors, canary.answers, incumbent.errors, incumbent.answers,
                                 policy.max_error_increase, alpha, numbers, prefix))
    return [d for d in found if d]


def _mean_drop(metric: str, canary: VersionWindow, incumbent: VersionWindow, max_drop: float, alpha: float,
               numbers: dict[str, float], prefix: str) -> str | None:
    """A sentence when the canary's mean of `metric` fell significantly and by more than `max_drop`; records the numbers."""
    c, i = canary.summary(metric), incumbent.summary(metric)
    for side, s in (("canary", c), ("incumbent", i)):
        if s is not None:
            numbers.update({f"{prefix}{side}.{metric}.mean": s.mean, f"{prefix}{side}.{metric}.count": s.count})
    if c is None or i is None or c.count < 2 or i.count < 2:
        return None
    p = welch_less_p(c.mean, c.std, c.count, i.mean, i.std, i.count)
    drop = i.mean - c.mean
    numbers.update({f"{prefix}{metric}.drop": drop, f"{prefix}{metric}.p": p})
    if drop > max_drop and p < alpha:
        return f"{metric} fell from {i.mean:.2f} to {c.mean:.2f} (a drop of {drop:.2f} > {max_drop}, p={p:.4f} < {alpha:.4g})"
    return None


def _share_rise(what: str, c_hits: int, c_n: int, i_hits: int, i_n: int, max_increase: float, alpha: float,
                numbers: dict[str, float], prefix: str = "") -> str | None:
    if c_n == 0:
        return None
    c_share, i_share = c_hits / c_n, (i_hits / i_n if i_n else 0.0)
    # No incumbent answer in the period (the canary took all the traffic, or the incumbent had none): the canary's
    # share is held against `max_increase` alone, one-sided binomial test; else the two-proportion test.
    p = proportion_greater_p(c_hits, c_n, i_hits, i_n) if i_n else _finite_p(stats.binomtest(c_hits, c_n, max_increase, alternative="greater").pvalue)
    numbers.update({f"{prefix}canary.{what}_share": c_share, f"{prefix}incumbent.{what}_share": i_share,
                    f"{prefix}{what}.increase": c_share - i_share, f"{prefix}{what}.p": p})
    if c_share - i_share > max_increase and p < alpha:
        return (f"{what} share rose from {i_share:.0%} to {c_share:.0%} ({c_hits} of {c_n} canary answers; "
                f"+{c_share - i_share:.2f} > {max_increase}, p={p:.4f} < {alpha:.4g})")
    return None


def _groups_said(tested: Mapping[str, tuple[VersionWindow, VersionWindow]]) -> str:
    return "".join(f", nor on {name} questions ({c.answers} canary answers)" for name, (c, _) in sorted(tested.items()))


def welch_less_p(c_mean: float, c_std: float, c_n: int, i_mean: float, i_std: float, i_n: int) -> float:
    """One-sided Welch t-test p-value that the canary's mean is below the incumbent's.
    Two constant samples (zero variance) leave no doubt either way: 0 when lower, else 1."""
    if c_std == 0 and i_std == 0:
        return 0.0 if c_mean < i_mean else 1.0
    result = stats.ttest_ind_from_stats(c_mean, c_std, c_n, i_mean, i_std, i_n, equal_var=False, alternative="less")
    return _finite_p(result.pvalue)


def proportion_greater_p(c_hits: int, c_n: int, i_hits: int, i_n: int) -> float:
    """One-sided pooled two-proportion z-test p-value that the canary's share is above the incumbent's."""
    pooled = (c_hits + i_hits) / (c_n + i_n)
    se = math.sqrt(pooled * (1 - pooled) * (1 / c_n + 1 / i_n))
    if se == 0:
        return 1.0  # both shares 0 or both 1: no difference to find
    return _finite_p(stats.norm.sf((c_hits / c_n - i_hits / i_n) / se))


def _finite_p(p: float) -> float:
    return float(p) if math.isfinite(p) else 1.0


def _compared(numbers: dict[str, float], policy: CanaryPolicy) -> str:
    """The metrics means in words for a promotion ('token_f1 0.80 vs 0.78'), and those that could not be compared."""
    said = [f"{m} {numbers[f'canary.{m}.mean']:.2f} vs {numbers[f'incumbent.{m}.mean']:.2f}" for m in policy.metrics
            if f"{m}.p" in numbers]
    missing = [m for m in policy.metrics if f"{m}.p" not in numbers]
    return (f" ({', '.join(said)})" if said else "") + (f"; not compared for lack of scores: {', '.join(missing)}" if missing else "")
