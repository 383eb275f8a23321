"""A delete wins over every ingest accepted before it, whichever topic or lane carried the ingest and
whenever the two are handled; an ingest accepted after the delete still indexes. Driven through the
ingest role's own handlers in chosen orders, on embedded search and on OpenSearch."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterator
from datetime import timedelta

import pytest

from schemas.events import DocumentDelete, DocumentIngest
from schemas.settings import Settings
from streams.consumer import EventConsumer
from streams.runtime import Runtime
from streams.workers.ingest import consumers

TEXT = "The Varna lighthouse has guided ships into the bay since 1857.\n\nIts lamp is visible for forty kilometres."


@pytest.fixture(params=["embedded", pytest.param("opensearch", marks=pytest.mark.opensearch)])
def runtime(request: pytest.FixtureRequest, settings: Settings, unique: str) -> Iterator[Runtime]:
    if request.param == "opensearch":
        settings = settings.override(search_url=request.getfixturevalue("opensearch_url"), opensearch_index=f"ragloop-test-{unique}")
    runtime = Runtime(settings, [])
    yield runtime
    if request.param == "opensearch":
        runtime.services.pipeline.backend.drop_index()  # type: ignore[attr-defined]


def handlers(runtime: Runtime) -> dict[str, Callable[..., Awaitable[None]]]:
    by_topic: dict[str, EventConsumer] = {c.topic.name: c for c in consumers(runtime.services, runtime.publisher)}
    return {"ingest": by_topic["docs.ingest"].handle, "large": by_topic["docs.ingest.large"].handle,
            "delete": by_topic["docs.delete"].handle}


def accepted(document_id: str) -> tuple[DocumentIngest, DocumentDelete]:
    """A POST, then a DELETE of the same document a moment later."""
    post = DocumentIngest(tenant="acme", document_id=document_id, title="Varna", text=TEXT)
    return post, DocumentDelete(tenant="acme", document_id=document_id, occurred_at=post.occurred_at + timedelta(milliseconds=5))


def chunks(runtime: Runtime, document_id: str) -> int:
    hits = runtime.services.pipeline.backend.search_bm25(tenant="acme", text="Varna lighthouse lamp", k=20)
    return sum(1 for hit in hits if hit.chunk.document_id == document_id)


def status(runtime: Runtime, document_id: str) -> str:
    row = runtime.stores.documents.get_document(document_id)
    return row.status if row is not None else "none"


def test_a_delete_handled_before_the_earlier_ingest_wins_and_a_later_post_indexes(runtime: Runtime) -> None:
    post, delete = accepted("d-before")
    run = handlers(runtime)

    async def scenario() -> None:
        await run["delete"](delete)
        await run["ingest"](post)

    asyncio.run(scenario())
    assert chunks(runtime, "d-before") == 0 and status(runtime, "d-before") == "deleted"

    again = DocumentIngest(tenant="acme", document_id="d-before", title="Varna", text=TEXT)  # accepted after the delete
    asyncio.run(run["ingest"](again))
    assert chunks(runtime, "d-before") > 0 and status(runtime, "d-before") == "indexed"


def test_a_delete_handled_after_the_ingest_read_its_mark_but_before_it_wrote_wins(runtime: Runtime) -> None:
    post, delete = accepted("d-during")
    run = handlers(runtime)
    pipeline = runtime.services.pipeline
    write = pipeline.ingest_many
    loop_box: list[asyncio.AbstractEventLoop] = []

    def delete_then_write(*args, **kwargs):  # the delete lands while the ingest is embedding
        asyncio.run_coroutine_threadsafe(run["delete"](delete), loop_box[0]).result()
        return write(*args, **kwargs)

    async def scenario() -> None:
        loop_box.append(asyncio.get_running_loop())
        pipeline.ingest_many = delete_then_write  # type: ignore[method-assign]
        try:
            await run["ingest"](post)
        finally:
            pipeline.ingest_many = write  # type: ignore[method-assign]

    asyncio.run(scenario())
    assert chunks(runtime, "d-during") == 0 and status(runtime, "d-during") == "deleted"


def test_a_delete_handled_after_the_ingest_indexed_removes_it(runtime: Runtime) -> None:
    post, delete = accepted("d-after")
    run = handlers(runtime)

    async def scenario() -> None:
        await run["ingest"](post)
        await run["delete"](delete)

    asyncio.run(scenario())
    assert chunks(runtime, "d-after") == 0 and status(runtime, "d-after") == "deleted"


def test_a_delete_wins_over_an_ingest_on_the_large_lane(runtime: Runtime) -> None:
    post, delete = accepted("d-large")
    run = handlers(runtime)

    async def scenario() -> None:
        await run["delete"](delete)
        await run["large"](post)  # the lane (docs.ingest.large) gets to the earlier ingest after the delete

    asyncio.run(scenario())
    assert chunks(runtime, "d-large") == 0 and status(runtime, "d-large") == "deleted"

    again = DocumentIngest(tenant="acme", document_id="d-large", title="Varna", text=TEXT)
    asyncio.run(run["large"](again))
    assert chunks(runtime, "d-large") > 0 and status(runtime, "d-large") == "indexed"


def test_a_delete_handled_after_the_ingest_read_its_mark_but_before_it_started_leaves_the_document_deleted(runtime: Runtime) -> None:
    """The ingest read no delete, then the delete ran whole (status `deleted`), then the ingest marked
    the document `indexing` and wrote: it loses, and the document must read `deleted`, not `indexing`."""
    post, delete = accepted("d-between")
    run = handlers(runtime)
    store = runtime.stores.documents
    read_marks = store.delete_marks
    loop_box: list[asyncio.AbstractEventLoop] = []

    def read_then_delete(document_ids):  # the delete lands right after the ingest read its marks
        marks = read_marks(document_ids)
        if not loop_box[1:]:
            loop_box.append(loop_box[0])
            asyncio.run_coroutine_threadsafe(run["delete"](delete), loop_box[0]).result()
        return marks

    async def scenario() -> None:
        loop_box.append(asyncio.get_running_loop())
        store.delete_marks = read_then_delete  # type: ignore[method-assign]
        try:
            await run["ingest"](post)
        finally:
            store.delete_marks = read_marks  # type: ignore[method-assign]

    asyncio.run(scenario())
    assert chunks(runtime, "d-between") == 0 and status(runtime, "d-between") == "deleted"
