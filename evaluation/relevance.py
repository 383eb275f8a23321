"""Answer relevance: cosine similarity between the question and the answer in embedding space.

Why: most answers have no reference, yet an answer about something else than the question is a
failure any user sees. The process's own sentence embedder (the one retrieval uses; the eval
worker passes `services.embedder`) gives a cheap, reference-free signal. Negative similarities
are clipped to 0 so the score is in [0, 1] like the others; a blank question or answer is not
measurable (None).

    >>> answer_relevance(embedder, "What is the capital of France?", "Paris is the capital of France.")
    0.83
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import numpy as np


class Embedder(Protocol):
    def embed(self, texts: Sequence[str]) -> np.ndarray: ...


def answer_relevance(embedder: Embedder, question: str, answer: str) -> float | None:
    if not question.strip() or not answer.strip():
        return None
    question_vector, answer_vector = embedder.embed([question, answer])
    norms = float(np.linalg.norm(question_vector) * np.linalg.norm(answer_vector))
    if norms == 0:
        return None
    return float(np.clip(np.dot(question_vector, answer_vector) / norms, 0.0, 1.0))
