"""Evaluation runs as `ragloop eval` starts them: each in a throwaway home and index, so no other
document competes with the corpus and nothing is left behind.

The process that runs them lends what it is made of: `open_services(settings)` builds the ingest
pipeline and retriever of a configuration (the same ones its workers use), and `run_chat(settings,
session)` runs `session(pipeline, answer_fn)` beside an agent that answers through the chat task
path. Evaluation stays free of the process's wiring, and the CLI only parses and prints.

    >>> report = retrieval_on_fresh_index(Path("../shared/data/scifact"), get_settings(), Services,
    ...                                   backend="embedded", split="test", mode="hybrid")   # doctest: +SKIP
"""

from __future__ import annotations

import tempfile
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

from evaluation.qa import AnswerFn, QAReport, evaluate_qa
from evaluation.retrieval import Progress, RetrievalReport, evaluate_retrieval, ingest_corpus, load_beir
from indexing.backends.base import SearchBackend
from indexing.pipeline import IngestPipeline
from indexing.retriever import HybridRetriever
from indexing.types import SearchMode
from schemas.settings import Settings


class IndexServices(Protocol):
    """The part of a process's services a retrieval run uses: one index, written and searched."""

    @property
    def pipeline(self) -> IngestPipeline: ...

    @property
    def retriever(self) -> HybridRetriever: ...

    @property
    def backend(self) -> SearchBackend: ...

    def close(self) -> None: ...


ChatSession = Callable[[IngestPipeline, AnswerFn], QAReport]
RunChat = Callable[[Settings, ChatSession], QAReport]


def retrieval_on_fresh_index(dataset: Path, base: Settings, open_services: Callable[[Settings], IndexServices], *,
                             backend: str, split: str, mode: SearchMode, progress: Progress | None = None) -> RetrievalReport:
    """Index a BEIR corpus into a fresh index (`embedded`: under a temporary home; `opensearch`: a new
    index on `base.search_url`, dropped afterwards) and score its judged queries of `split`."""
    with tempfile.TemporaryDirectory(prefix="ragloop-eval-") as home:
        settings = base.override(home=Path(home), database_url=None,
                                 search_url=base.search.url if backend == "opensearch" else "embedded://",
                                 opensearch_index=f"ragloop-eval-{uuid.uuid4().hex[:8]}")
        services = open_services(settings)
        try:
            return evaluate_retrieval(dataset, pipeline=services.pipeline, retriever=services.retriever, split=split,
                                      mode=mode, progress=progress)
        finally:
            if backend == "opensearch":
                services.backend.drop_index()  # type: ignore[attr-defined]
            services.close()


def qa_on_fresh_home(dataset: Path, base: Settings, run_chat: RunChat, *, limit: int | None, split: str,
                     progress: Progress | None = None) -> QAReport:
    """Index the dataset's corpus into a fresh embedded home, ask every question (up to `limit`)
    through the chat path `run_chat` provides, and score the answers and their citations."""
    with tempfile.TemporaryDirectory(prefix="ragloop-eval-") as home:
        settings = base.override(home=Path(home), database_url=None, broker_url="memory://",
                                 search_url="embedded://")

        def session(pipeline: IngestPipeline, answer: AnswerFn) -> QAReport:
            ingest_corpus(load_beir(dataset, split=split), pipeline, progress=progress)
            return evaluate_qa(dataset, answer_fn=answer, limit=limit, progress=True, split=split)

        return run_chat(settings, session)
