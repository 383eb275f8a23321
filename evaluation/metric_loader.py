"""Loads the project's own `evaluate` metric modules once per process, from the package.

Why a loader: `evaluate.load` copies and imports the metric script and builds its state, which
costs tens of milliseconds per call on top of a slow first `import evaluate`; online scoring
runs per answer, so each metric is loaded once and reused. Loading by absolute folder path
never touches the Hub, so it works with HF_HUB_OFFLINE=1 / HF_EVALUATE_OFFLINE=1.

    >>> from evaluation.metric_loader import compute
    >>> compute("token_f1", predictions=["the cat"], references=["cat"])
    {'token_f1': 1.0, 'exact_match': 1.0}
"""

from __future__ import annotations

import threading
from functools import cache
from typing import TYPE_CHECKING, Any

from evaluation.metrics import METRICS_DIR

if TYPE_CHECKING:
    import evaluate

METRIC_NAMES = ("rouge_l", "token_f1", "context_overlap", "bleu")


@cache
def load_metric(name: str) -> evaluate.EvaluationModule:
    """The loaded metric `name`, kept in memory (no arrow cache files per call)."""
    if name not in METRIC_NAMES:
        raise ValueError(f"unknown metric {name!r}; choose one of {', '.join(METRIC_NAMES)}")
    import evaluate  # deferred: importing evaluate pulls in datasets/pyarrow, seconds of startup

    return evaluate.load(str(METRICS_DIR / name), keep_in_memory=True)


@cache
def _lock(name: str) -> threading.Lock:
    return threading.Lock()


def compute(name: str, **inputs: Any) -> dict[str, float]:
    """Run metric `name` on `inputs`, one caller at a time.

    An `evaluate` module buffers inputs on the instance between `add_batch` and `compute`, so
    a shared instance must not be used by two threads at once (sync handlers may run in a pool).
    """
    metric = load_metric(name)
    with _lock(name):
        return metric.compute(**inputs)
