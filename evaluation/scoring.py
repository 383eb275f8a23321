"""Scores one generated answer: quality against a reference, groundedness, cost.

Why one function: the eval worker sees one `chat.responses` event at a time (and again when a
correction for it arrives), so the per-answer record is the unit of evaluation.
Reference-based metrics exist only when a reference or user correction does; the context metric
only when retrieval returned something; citation validity only when the answer has `[n]` markers;
answer relevance only when the caller passes an embedder (the eval worker passes the process's
`services.embedder`); perplexity only when a scorer is passed (the eval worker samples it off its
consumer's path instead, see streams/workers/evaluation.py). None means "not measurable", never
"scored zero".

    >>> s = score_answer(answer="Paris", contexts=["Paris is in France"], reference="Paris",
    ...                  latency_ms=120.0)
    >>> (s.token_f1, s.context_overlap)
    (1.0, 1.0)
"""

from collections.abc import Callable

from pydantic import BaseModel, Field

from evaluation.citation_validity import citation_validity
from evaluation.metric_loader import compute
from evaluation.relevance import Embedder, answer_relevance


class AnswerScores(BaseModel):
    """Metrics for one answer; all quality scores are in [0, 1]."""

    rouge_l: float | None = Field(description="stemmed ROUGE-L F vs the reference; None without one")
    token_f1: float | None = Field(description="SQuAD token F1 vs the reference; None without one")
    exact_match: float | None = Field(description="SQuAD exact match vs the reference; None without one")
    bleu: float | None = Field(None, description="sentence BLEU (sacrebleu) / 100 vs the reference; None without one")
    context_overlap: float | None = Field(description="answer content tokens found in contexts; None without contexts")
    answer_relevance: float | None = Field(None, description="cosine similarity of question and answer embeddings, clipped "
                                           "at 0; None without a question or embedder")
    citation_validity: float | None = Field(None, description="share of `[n]` markers naming a passage that supports their "
                                            "sentence (evaluation/citation_validity.py); None without markers")
    perplexity: float | None = Field(None, ge=1, description="exp(mean NLL) of the answer given the question under the base "
                                     "model; None when not sampled")
    latency_ms: float = Field(ge=0)
    answer_tokens: int = Field(ge=0, description="whitespace-delimited words: a tokenizer-free length proxy")


def score_answer(*, answer: str, contexts: list[str], reference: str | None, latency_ms: float, question: str = "",
                 embedder: Embedder | None = None, perplexity: Callable[[str, str], float | None] | None = None) -> AnswerScores:
    """Score `answer`; a blank reference or a list of blank contexts counts as absent. `contexts` are the
    passages in the order the model saw them (`[n]` names the n-th); `perplexity(question, answer)` is optional."""
    rouge_l = token_f1 = exact_match = bleu = None
    if reference is not None and reference.strip():
        rouge_l = compute("rouge_l", predictions=[answer], references=[reference])["rouge_l"]
        squad = compute("token_f1", predictions=[answer], references=[reference])
        token_f1, exact_match = squad["token_f1"], squad["exact_match"]
        bleu = compute("bleu", predictions=[answer], references=[reference])["bleu"]

    retrieved = [c for c in contexts if c.strip()]
    context_overlap = None
    if retrieved:
        context_overlap = compute("context_overlap", predictions=[answer], references=[retrieved])["context_overlap"]

    return AnswerScores(
        rouge_l=rouge_l,
        token_f1=token_f1,
        exact_match=exact_match,
        bleu=bleu,
        context_overlap=context_overlap,
        answer_relevance=answer_relevance(embedder, question, answer) if embedder is not None else None,
        citation_validity=citation_validity(answer, contexts),
        perplexity=perplexity(question, answer) if perplexity is not None else None,
        latency_ms=latency_ms,
        answer_tokens=len(answer.split()),
    )
