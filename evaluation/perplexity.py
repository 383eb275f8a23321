"""Perplexity of an answer under the base model, given its question: how surprising the answer is.

Why: a LoRA adapter that went wrong (overfit, poisoned, collapsed into repetition) tends to write
text the base model finds unlikely. It needs a forward pass of the base model per answer, so the
eval worker samples it (`RAGLOOP_EVAL_PERPLEXITY_RATE`) and computes it off its consumer's path
(see `PerplexitySampler`); the model is loaded on first use, on the sampler's thread.

    >>> PerplexityScorer(Path("~/.cache/ragloop/models/SmolLM2-135M-Instruct")).score("Capital of France?", "Paris.")
    4.2
"""

from __future__ import annotations

import hashlib
import math
import threading
from pathlib import Path
from typing import Any


class PerplexityScorer:
    """exp(mean negative log-likelihood of the answer's tokens | question), at most `max_tokens` answer tokens."""

    def __init__(self, model_path: Path, *, max_tokens: int = 256) -> None:
        self.model_path = model_path
        self.max_tokens = max_tokens
        self._lock = threading.Lock()
        self._loaded: tuple[Any, Any] | None = None

    def _model(self) -> tuple[Any, Any]:
        with self._lock:
            if self._loaded is None:
                from transformers import AutoModelForCausalLM, AutoTokenizer

                tokenizer = AutoTokenizer.from_pretrained(str(self.model_path))
                model = AutoModelForCausalLM.from_pretrained(str(self.model_path))
                model.eval()
                self._loaded = (tokenizer, model)
            return self._loaded

    def score(self, question: str, answer: str) -> float | None:
        """None for a blank answer (nothing to measure)."""
        if not answer.strip():
            return None
        import torch

        tokenizer, model = self._model()
        context = tokenizer(question + "\n", add_special_tokens=False)["input_ids"]
        target = tokenizer(answer, add_special_tokens=False)["input_ids"][: self.max_tokens]
        if not target:
            return None
        ids = torch.tensor([context + target])
        labels = ids.clone()
        labels[0, : len(context)] = -100  # the question is context, not scored
        with torch.no_grad():
            loss = model(input_ids=ids, labels=labels).loss
        return float(math.exp(min(float(loss), 50.0)))


def sampled(task_id: str, rate: float) -> bool:
    """Stable per task: a redelivered response is sampled (or not) the same way."""
    digest = hashlib.sha256(task_id.encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < rate
