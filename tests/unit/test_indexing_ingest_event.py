"""A `docs.ingest` event becomes a document by its body: text as is, file bytes by their format, bad bytes a LoadError."""

from __future__ import annotations

import base64

import pytest

from indexing.loaders import CorruptDocumentError
from indexing.loaders.ingest_event import load_ingest_event
from schemas.events import DocumentIngest

LIMITS = {"max_bytes": 1 << 20, "timeout_s": 5.0, "allow_private": False}


def test_text_is_taken_as_it_is() -> None:
    event = DocumentIngest(document_id="d1", tenant="acme", title="T", text="Rye is baked daily.", access=["team-a"])
    document = load_ingest_event(event, **LIMITS)
    assert (document.id, document.tenant, document.text, document.access) == ("d1", "acme", "Rye is baked daily.", ["team-a"])


def test_bytes_are_parsed_by_their_format() -> None:
    body = base64.b64encode(b"# Bakery\n\nRye sourdough is baked every morning.").decode()
    event = DocumentIngest(document_id="d2", content_b64=body, filename="bakery.md")
    document = load_ingest_event(event, **LIMITS)
    assert document.title == "Bakery" and "Rye sourdough" in document.text and not document.text.startswith("#")


def test_bytes_that_are_not_base64_fail_for_good_naming_the_field() -> None:
    event = DocumentIngest(document_id="d3", content_b64="not base64!", filename="x.txt")
    with pytest.raises(CorruptDocumentError, match="content_b64 is not valid base64") as raised:
        load_ingest_event(event, **LIMITS)
    assert not getattr(raised.value, "retryable", False)


def test_an_ingest_batch_is_cut_into_groups_within_the_byte_limit() -> None:
    from streams.workers.ingest import byte_bounded

    events = [DocumentIngest(tenant="t", document_id=f"d{n}", text="x" * size) for n, size in enumerate([40, 40, 30, 100, 10])]
    groups = byte_bounded(events, limit=80)
    assert [[e.document_id for e in g] for g in groups] == [["d0", "d1"], ["d2"], ["d3"], ["d4"]]
    assert [e for g in groups for e in g] == events  # nothing lost, order kept
