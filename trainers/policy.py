"""The learning policy: when feedback retrains a tenant's adapter, and how a new adapter earns all
traffic. It is data (`trainers/configs/learning_policy.yaml`, or `RAGLOOP_TRAINING_POLICY`),
printed when a worker starts, so operators change behaviour by editing YAML, not code::

    policy = LearningPolicy.from_yaml(DEFAULT_POLICY)
    policy.train.min_corrections, policy.canary.share

`trainers/train_policy.py` applies `train` to a tenant's feedback; `evaluation/canary_judge.py`
applies `canary` to the per-version eval windows.
"""

from __future__ import annotations

from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field

DEFAULT_POLICY = Path(__file__).parent / "configs" / "learning_policy.yaml"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")  # a typo in a YAML key must fail loudly


class TrainPolicy(_Strict):
    """When a tenant's feedback starts a training run (any trigger suffices, `min_interval_s` permitting)."""

    min_corrections: int = Field(20, ge=1, description="Corrections (after folding) since the tenant's last run.")
    downvote_rate: float | None = Field(0.5, gt=0, le=1, description="Down-vote share over the last `window` ratings of the "
                                        "active version that triggers a run (None: off).")
    window: int = Field(50, ge=1, description="Ratings (and eval scores) the rate and drop triggers look at.")
    min_window: int = Field(20, ge=1, description="Fewer ratings than this never trigger on rate or drop.")
    metric: str = Field("token_f1", description="Eval metric the drop trigger watches.")
    metric_drop: float | None = Field(0.15, gt=0, le=1, description="Fall of the metric's windowed mean below its mean when the "
                                      "version went live that triggers a run (None: off).")
    min_interval_s: float = Field(300.0, ge=0, description="Least time between two runs of one tenant.")
    min_corrections_for_trigger: int = Field(1, ge=1, description="A rate or drop trigger still needs this many corrections to learn from.")
    fold_similarity: float = Field(0.9, gt=0, le=1, description="Corrections of the same question whose normalised text is at least "
                                   "this similar (difflib ratio) fold into one, the latest kept.")
    max_correction_chars: int = Field(2000, ge=1, description="Longer corrections are refused with the reason.")


class CanaryPolicy(_Strict):
    """How a gated candidate earns all traffic, or is rolled back."""

    share: float = Field(0.2, gt=0, le=1, description="Share of the tenant's conversations (stable hash) the canary answers.")
    min_samples: int = Field(30, ge=1, description="Canary answers scored before it can be promoted.")
    min_samples_to_abort: int = Field(10, ge=1, description="Canary answers scored before a drop can roll it back.")
    metrics: list[str] = Field(default_factory=lambda: ["token_f1", "answer_relevance"],
                               description="Quality metrics compared between canary and incumbent on the same period.")
    max_drop: float = Field(0.1, ge=0, le=1, description="A quality metric's mean this much lower than the incumbent's …")
    max_downvote_increase: float = Field(0.2, ge=0, le=1, description="… or a down-vote share this much higher …")
    max_error_increase: float = Field(0.1, ge=0, le=1, description="… or an error share this much higher …")
    alpha: float = Field(0.05, gt=0, lt=1, description="… counts only when significant at this level (one-sided Welch / two-proportion test).")


class LearningPolicy(_Strict):
    train: TrainPolicy = Field(default_factory=TrainPolicy)
    canary: CanaryPolicy = Field(default_factory=CanaryPolicy)

    @classmethod
    def from_yaml(cls, path: Path | str) -> LearningPolicy:
        path = Path(path)
        data = yaml.safe_load(path.read_text()) or {}
        if not isinstance(data, dict):
            raise ValueError(f"{path}: a learning policy must be a YAML mapping with `train:` and `canary:`")
        return cls.model_validate(data)

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.model_dump(), sort_keys=False)
