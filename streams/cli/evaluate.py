"""`ragloop eval`: parse the options, run an evaluation from `evaluation.runs`, print its report.

What the run borrows from this process is lent here: `Services` for a retrieval run, and for a QA
run an in-process agent asked through the task queue, as `ragloop ask` is.
"""

from __future__ import annotations

import asyncio
import math
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from tqdm import tqdm

from schemas.events import ChatOptions, ChatRequest, ChatTurn
from schemas.settings import Settings, get_settings
from streams.cli.chat import answered, task_service
from streams.cli.runtime import run_with
from streams.runtime import Runtime

if TYPE_CHECKING:
    from evaluation.qa import QAReport
    from evaluation.runs import ChatSession

eval_app = typer.Typer(help="Measure retrieval and answer quality on BEIR-layout datasets.", no_args_is_help=True)


def _tqdm_progress() -> Callable[[str, int, int], None]:
    """A `(stage, done, total)` callback that draws one progress bar per stage."""
    bars: dict[str, tqdm] = {}

    def report(stage: str, done: int, total: int) -> None:
        bar = bars.get(stage) or bars.setdefault(stage, tqdm(total=total, desc=stage, file=sys.stderr, disable=None))
        bar.update(done - bar.n)
        if done >= total:
            bar.close()

    return report


@eval_app.command("retrieval")
def eval_retrieval(dataset: Annotated[Path, typer.Option(help="BEIR folder: corpus.jsonl[.gz], queries.jsonl, qrels/<split>.tsv.",
                                                          exists=True, file_okay=False)],
                   split: Annotated[str, typer.Option(help="Which qrels file to score (train, test, dev).")] = "test",
                   backend: Annotated[str, typer.Option(help="embedded (a fresh temporary index) or opensearch "
                                                             "(RAGLOOP_SEARCH_URL, a fresh index).")] = "embedded",
                   mode: Annotated[str, typer.Option(help="bm25, dense or hybrid.")] = "hybrid",
                   json_output: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False) -> None:
    """Index a BEIR corpus into a fresh index and report nDCG@10, recall@100 and MRR@10 over its judged queries."""
    from evaluation.runs import retrieval_on_fresh_index
    from streams.services import Services

    if mode not in ("bm25", "dense", "hybrid"):
        raise typer.BadParameter(f"--mode {mode!r}: choose bm25, dense or hybrid")
    if backend not in ("embedded", "opensearch"):
        raise typer.BadParameter(f"--backend {backend!r}: choose embedded or opensearch")
    base = get_settings()
    if backend == "opensearch" and not base.search.url.startswith(("http://", "https://", "opensearch://")):
        raise typer.BadParameter("--backend opensearch needs RAGLOOP_SEARCH_URL=http://host:9200")
    report = retrieval_on_fresh_index(dataset, base, Services, backend=backend, split=split, mode=mode,  # type: ignore[arg-type]  # mode checked above
                                      progress=_tqdm_progress())
    if json_output:
        print(report.model_dump_json(indent=2))
        return
    print(f"{report.dataset} [{split}] {backend}/{mode}: {report.queries} queries")
    print(f"  nDCG@10    {report.ndcg_at_10:.4f}\n  recall@100 {report.recall_at_100:.4f}\n  MRR@10     {report.mrr_at_10:.4f}")
    print(f"  {report.queries_per_second:.1f} queries/s (query embedding included); indexed {report.documents} documents "
          f"as {report.chunks} chunks in {report.ingest_seconds:.1f}s")


@eval_app.command("qa")
def eval_qa(dataset: Annotated[Path, typer.Option(help="BEIR folder with answers.jsonl, e.g. ../shared/data/squad-mini.", exists=True, file_okay=False)],
            limit: Annotated[int | None, typer.Option(help="Ask only the first N questions (generation is ~16 tokens/s on CPU).")] = None,
            split: Annotated[str, typer.Option(help="qrels split used for hit@5.")] = "test",
            json_output: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False) -> None:
    """Index the dataset's corpus into a fresh embedded home, ask every question through the chat task
    path (event → agent → task) and report exact match, token F1, answer-contains-gold and hit@5."""
    from evaluation.runs import qa_on_fresh_home

    report = qa_on_fresh_home(dataset, get_settings(), _chat_path, limit=limit, split=split, progress=_tqdm_progress())
    if json_output:
        print(report.model_dump_json(indent=2))
        return
    print(f"{report.questions} questions: exact match {report.exact_match:.3f}, F1 {report.f1:.3f}, "
          f"contains gold {report.contains:.3f}, hit@5 {report.hit_at_5:.3f}")


def _chat_path(settings: Settings, session: ChatSession) -> QAReport:
    """Run `session` in a thread beside an in-process agent; its questions go through the task queue."""

    async def run(runtime: Runtime) -> QAReport:
        tasks = task_service(runtime)
        loop = asyncio.get_running_loop()

        def answer(question: str) -> tuple[str, list[str]]:
            request = ChatRequest(messages=[ChatTurn(role="user", content=question)], options=ChatOptions(k=5, stream=False))
            task = asyncio.run_coroutine_threadsafe(answered(tasks, request, math.inf), loop).result()
            if task.result is None:
                return "", []
            return task.result.answer, [c.document_id for c in task.result.citations]

        return await asyncio.to_thread(session, runtime.services.pipeline, answer)

    return run_with(settings, ["agent"], run)


@eval_app.command("images")
def eval_images(dataset: Annotated[Path, typer.Option(help="Folder with captions.txt (`image,caption` CSV) and images/, "
                                                     "e.g. ../shared/data/flickr8k-300.", exists=True, file_okay=False)],
                clip_checkpoint: Annotated[Path | None, typer.Option(help="open_clip checkpoint for RAGLOOP_CLIP_MODEL; "
                                                                     "default RAGLOOP_CLIP_CHECKPOINT.")] = None,
                json_output: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False) -> None:
    """Text → image recall@1/5/10 of the CLIP model on a captions file (meaningful with real weights)."""
    from evaluation.images import image_recall
    from models.clip import CLIP_OFF_MESSAGE, ClipUnavailable, load_clip

    settings = get_settings()
    if clip_checkpoint is not None:
        settings = settings.model_copy(update={"clip": settings.clip.model_copy(update={"checkpoint": clip_checkpoint})})
    try:
        clip = load_clip(settings)
        if clip is None:
            raise ClipUnavailable(CLIP_OFF_MESSAGE + " (or pass --clip-checkpoint)")
        report = image_recall(clip, dataset, progress=_tqdm_progress())
    except (ClipUnavailable, ValueError) as error:
        raise typer.BadParameter(str(error)) from None
    if json_output:
        print(report.model_dump_json(by_alias=True))
        return
    print(f"{report.images} images, {report.captions} captions ({settings.clip.model})")
    print(f"  recall@1  {report.recall_at_1:.4f}\n  recall@5  {report.recall_at_5:.4f}\n  recall@10 {report.recall_at_10:.4f}")
