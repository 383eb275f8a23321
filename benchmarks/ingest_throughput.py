"""Ingestion throughput end to end, as a ratio to the raw embedder on the same texts, same run.

Rows (documents/s and the ratio to the raw embedder's time on the same chunk texts):
- raw embedder: ``TextEmbedder.embed`` over every chunk text in batches of 64 (the ceiling),
  timed first and last; ratios divide by the mean of the two;
- library, batched: ``IngestPipeline.ingest_many`` into the embedded backend (batches across documents);
- library, per document: ``IngestPipeline.ingest`` once per document (what the ingest worker does);
- runtime embedded: ``streams.runtime.Runtime(settings, ["ingest"])`` on the in-process broker and
  the embedded backend, documents published as ``DocumentIngest`` events, done when every
  document's status in the store is ``indexed``;
- runtime Kafka → OpenSearch: the same through real Kafka (``--kafka``) into OpenSearch
  (``--opensearch``), with a unique topic prefix and index, removed afterwards.

The documents are the first ``--documents`` SciFact abstracts (title + text); nothing comes from
the embedding cache here. Kafka and OpenSearch rows are skipped when those are unreachable.

    .venv/bin/python benchmarks/ingest_throughput.py --documents 200
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from evaluation.retrieval import load_beir
from indexing.backends.embedded import EmbeddedBackend
from indexing.chunking import Chunker
from indexing.pipeline import IngestPipeline
from indexing.types import SourceDocument

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "scifact"


def reachable(host: str, port: int) -> bool:
    import socket

    try:
        with socket.create_connection((host, port), timeout=2):
            return True
    except OSError:
        return False


async def through_runtime(settings, docs: list[SourceDocument], timeout_s: float) -> float:
    """Seconds from the first publish until every document is indexed (runtime already warm)."""
    from schemas.events import DocumentIngest
    from streams.runtime import Runtime

    runtime = Runtime(settings, ["ingest"])
    await runtime.start(warm=True)
    try:
        # One document first, untimed: a Kafka consumer joins its group (a rebalance of a few
        # seconds) before it fetches anything, and that start-up is not ingestion throughput.
        await runtime.publisher.publish(DocumentIngest(document_id="warm-up", text="A warm-up document."))
        await wait_indexed(runtime, {"warm-up"}, time.perf_counter(), timeout_s)
        started = time.perf_counter()
        for d in docs:
            await runtime.publisher.publish(DocumentIngest(tenant=d.tenant, document_id=d.id, title=d.title, text=d.text))
        await wait_indexed(runtime, {d.id for d in docs}, started, timeout_s)
        return time.perf_counter() - started
    finally:
        await runtime.stop()
        if not settings.search.url.startswith("embedded"):
            from indexing.backends.opensearch import OpenSearchBackend

            OpenSearchBackend(settings.search.url, dimension=384, index_prefix=settings.search.opensearch_index).drop_index()


async def wait_indexed(runtime, ids: set[str], started: float, timeout_s: float) -> None:
    """Until every document in ``ids`` is indexed; raises on a failed one or after the timeout."""
    pending, total = set(ids), len(ids)
    while pending:
        if time.perf_counter() - started > timeout_s:
            raise TimeoutError(f"{len(pending)} of {total} documents not indexed after {timeout_s:.0f} s")
        await asyncio.sleep(0.2)
        records = await asyncio.to_thread(lambda: {i: runtime.stores.documents.get_document(i) for i in list(pending)})
        failed = [i for i, r in records.items() if r is not None and r.status == "failed"]
        if failed:
            raise RuntimeError(f"documents failed to ingest: {failed[:5]} ({records[failed[0]].error})")
        pending -= {i for i, r in records.items() if r is not None and r.status == "indexed"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--documents", type=int, default=200)
    parser.add_argument("--kafka", default="kafka://127.0.0.1:9092")
    parser.add_argument("--opensearch", default="http://127.0.0.1:9200")
    parser.add_argument("--timeout", type=float, default=900.0)
    parser.add_argument("--skip", nargs="*", default=[], choices=["per-document", "embedded", "kafka"])
    args = parser.parse_args()

    from models.embedder import TextEmbedder
    from schemas.settings import Settings

    docs = load_beir(args.data, split="train").documents[:args.documents]
    chunker = Chunker()
    texts = [c.embedding_text() for d in docs for c in chunker.split(d)]
    embedder = TextEmbedder()
    embedder.embed(texts[:64])  # warm up
    print(f"{len(docs)} SciFact documents, {len(texts)} chunks {chunker.to_dict()}", flush=True)

    def raw_embedder() -> float:
        started = time.perf_counter()
        for i in range(0, len(texts), 64):
            embedder.embed(texts[i:i + 64])
        return time.perf_counter() - started

    rows: list[tuple[str, float]] = [("raw embedder (batches of 64), before", raw_embedder())]

    def library(batched: bool) -> float:
        with tempfile.TemporaryDirectory() as home:
            backend = EmbeddedBackend(Path(home), dimension=embedder.dimension)
            pipeline = IngestPipeline(chunker, embedder, backend)
            started = time.perf_counter()
            if batched:
                pipeline.ingest_many(docs)
            else:
                for d in docs:
                    pipeline.ingest(d)
            seconds = time.perf_counter() - started
            backend.close()
            return seconds

    rows.append(("library: IngestPipeline.ingest_many, embedded", library(True)))
    if "per-document" not in args.skip:
        rows.append(("library: IngestPipeline.ingest per document, embedded", library(False)))
    with tempfile.TemporaryDirectory() as home:
        base = Settings(home=Path(home) / "home", broker={"url": "memory://"}, search={"url": "embedded://"})
        if "embedded" not in args.skip:
            seconds = asyncio.run(through_runtime(base, docs, args.timeout))
            rows.append(("runtime: in-process broker -> ingest worker -> embedded", seconds))
        host, port = args.kafka.removeprefix("kafka://").split(",")[0].split(":")
        os_up = reachable(*args.opensearch.split("//")[1].split(":")[:1], int(args.opensearch.rsplit(":", 1)[1]))
        if "kafka" not in args.skip and reachable(host, int(port)) and os_up:
            unique = uuid.uuid4().hex[:8]
            settings = base.override(home=Path(home) / "kafka", broker_url=args.kafka,
                                     search_url=args.opensearch, topic_prefix=f"bench-{unique}.",
                                     opensearch_index=f"bench-ingest-{unique}")
            seconds = asyncio.run(through_runtime(settings, docs, args.timeout))
            rows.append(("runtime: Kafka -> ingest worker -> OpenSearch", seconds))
        elif "kafka" not in args.skip:
            print("(Kafka or OpenSearch unreachable: that row is skipped)")

    # The raw embedder runs again at the end and the ratios use the mean of both runs, so a
    # machine that gets busier or quieter during the run does not favour either side.
    rows.append(("raw embedder (batches of 64), after", raw_embedder()))
    raw = (rows[0][1] + rows[-1][1]) / 2
    print("\n| path | seconds | documents/s | chunks/s | ratio to raw embedder |")
    print("|---|---|---|---|---|")
    for name, seconds in rows:
        print(f"| {name} | {seconds:.1f} | {len(docs) / seconds:.1f} | {len(texts) / seconds:.1f} | {raw / seconds:.2f} |")


if __name__ == "__main__":
    main()
