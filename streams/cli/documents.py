"""`ragloop publish` and `ragloop ingest`: put events on a topic, or documents into the index."""

from __future__ import annotations

import asyncio
import base64
import json
import re
import sys
import time
from pathlib import Path
from typing import Annotated

import typer
from pydantic import ValidationError
from tqdm import tqdm

from schemas.events import DocumentIngest, Event
from schemas.settings import get_settings
from streams.brokers import EmbeddedBroker
from streams.cli.options import ApiKeyOption, TenantOption, acting_as, console
from streams.cli.runtime import in_process, run_with
from streams.outbox_relay import EventTooLarge
from streams.runtime import ROLES, Runtime
from streams.topics import resolve


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
        tenant, _ = acting_as(settings, tenant or "default", None, api_key)
    text = sys.stdin.read() if source == "-" else Path(source).read_text()
    messages = _validated(target.event, text, tenant) if validate else [(None, line.encode()) for line in text.splitlines() if line.strip()]

    async def send(runtime: Runtime) -> list[str]:
        for key, value in messages:
            await runtime.broker.publish(target.name, value, key=key)
        if not isinstance(runtime.broker, EmbeddedBroker):
            return []
        await runtime.broker.join()
        return [json.loads(m.value)["reason"] for m in runtime.broker.retained[target.dlq]]

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


def image_event(file: Path, *, tenant: str, access: list[str]) -> DocumentIngest:
    """An image file as a `docs.ingest` event: its bytes, named by the file (its caption is its name)."""
    name = re.sub(r"[^A-Za-z0-9_.:@/-]", "_", file.name)
    return DocumentIngest(tenant=tenant, document_id=name, title=file.stem.replace("_", " "), filename=file.name, source=str(file),
                          content_b64=base64.b64encode(file.read_bytes()).decode(), access=access)


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
    from indexing.images.decode import is_image
    from indexing.loaders import LoadError, iter_documents

    settings = get_settings()
    tenant, _ = acting_as(settings, tenant, None, api_key)
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
            if is_image(name=file.name):  # the ingest worker decodes, stores and CLIP-embeds it
                documents.append(image_event(file, tenant=tenant, access=access or []))
                continue
            try:
                documents += [DocumentIngest(tenant=doc.tenant, document_id=doc.id, title=doc.title, text=doc.text, source=doc.source,
                                             metadata=doc.metadata, access=access or doc.access)
                              for doc in iter_documents(file, tenant=tenant, max_bytes=settings.ingest.fetch_max_bytes)]
            except LoadError as error:
                unreadable += 1
                console.print(f"[red]skipped[/] {file}: {error}")

    async def send(runtime: Runtime) -> dict[str, int]:
        accepted = []
        for event in documents:  # each row with its event (the outbox), published right after; the relay retries
            try:
                entry = runtime.outbox.entry(event, aggregate="document", aggregate_id=event.document_id)
            except EventTooLarge as error:  # counted as failed: in `documents`, not in the summary's ids
                console.print(f"[red]skipped[/] {event.document_id}: {error}")
                continue
            await asyncio.to_thread(runtime.stores.documents.upsert_document, event.document_id, event.tenant, outbox=[entry],
                                    title=event.title, status="queued", error=None)
            await runtime.outbox.send([entry])
            accepted.append(event.document_id)
        summary = await _follow_documents(runtime, accepted, timeout)
        summary["failed"] += len(documents) - len(accepted)
        return summary

    summary = run_with(settings, in_process(settings, ["ingest"]), send)
    failed = summary.get("failed", 0) + unreadable
    console.print(f"indexed {summary.get('indexed', 0)} of {len(documents) + unreadable} document(s), {summary.get('chunks', 0)} chunks; failed {failed}")
    if failed:
        raise typer.Exit(1)


async def _follow_documents(runtime: Runtime, ids: list[str], timeout: float) -> dict[str, int]:
    """A document's status lives only in its row (no service waits on it, unlike tasks): follow the rows."""
    done: dict[str, str] = {}
    chunks = 0
    deadline = time.monotonic() + timeout
    # disable=None: no bar when stderr is not a terminal, where it would split the JSON log lines.
    with tqdm(total=len(ids), desc="indexing", unit="doc", file=sys.stderr, disable=None) as bar:
        while len(done) < len(ids) and time.monotonic() < deadline:
            for doc_id in ids:
                if doc_id in done:
                    continue
                row = await asyncio.to_thread(runtime.stores.documents.get_document, doc_id)
                if row is not None and row.status in ("indexed", "failed"):
                    done[doc_id] = row.status
                    chunks += row.chunks
                    if row.status == "failed":
                        console.print(f"[red]failed[/] {doc_id}: {row.error}")
                    bar.update(1)
            await asyncio.sleep(0.2)
    statuses = list(done.values())
    return {"indexed": statuses.count("indexed"), "failed": statuses.count("failed") + len(ids) - len(done), "chunks": chunks}
