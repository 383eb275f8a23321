"""The CLI as a user runs it, embedded: ingest files, ask with citations, publish events (DLQ included)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

RAGLOOP = str(Path(sys.executable).with_name("ragloop"))


@pytest.fixture
def run(tmp_path: Path):
    env = {**os.environ, "RAGLOOP_HOME": str(tmp_path / "home"), "RAGLOOP_BROKER_URL": "memory://", "RAGLOOP_SEARCH_URL": "embedded://",
           "RAGLOOP_MAX_NEW_TOKENS": "24", "COLUMNS": "250"}  # wide enough that error boxes do not wrap messages

    def ragloop(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run([RAGLOOP, *args], env=env, input=stdin, capture_output=True, text=True, timeout=600)

    return ragloop


def test_help_teaches_every_command(run) -> None:
    out = run("--help").stdout
    for command in ("up", "worker", "topics", "publish", "ingest", "ask", "models"):
        assert command in out


def test_ingest_then_ask_cites_the_right_file(run, tmp_path: Path) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "ostra.md").write_text("# The Ostra river\n\nThe Ostra river flows 612 kilometres from the Kessel glacier to the sea.\n")
    (docs / "bakery.txt").write_text("Harbor Street Bakery bakes rye sourdough in a wood-fired oven built in 1952.\n")
    ingested = run("ingest", str(docs))
    assert ingested.returncode == 0, ingested.stderr
    assert "indexed 2 of 2 document(s)" in ingested.stderr
    found = run("search", "Ostra river length", "--mode", "bm25", "--json")
    assert found.returncode == 0, found.stderr
    assert json.loads(found.stdout)[0]["document_id"].endswith("ostra.md")
    asked = run("ask", "How long is the Ostra river?", "--json")
    assert asked.returncode == 0, asked.stderr
    task = json.loads(asked.stdout)
    assert task["status"] == "succeeded"
    assert task["result"]["citations"][0]["document_id"].endswith("ostra.md")


def test_a_document_ingested_with_access_is_found_and_cited_only_for_a_principal_on_the_list(run, tmp_path: Path) -> None:
    note = tmp_path / "salaries.txt"
    note.write_text("The salary review for the Veltrin canteen staff happens every March.\n")
    assert run("ingest", str(note), "--access", "group:hr").returncode == 0

    def found(*principals: str) -> list[str]:
        flags = [arg for p in principals for arg in ("--principal", p)]
        out = run("search", "Veltrin canteen salary review", "--mode", "bm25", "--json", *flags)
        assert out.returncode == 0, out.stderr
        return [hit["document_id"] for hit in json.loads(out.stdout)]

    assert found("user:7", "group:hr") == [str(note)]
    assert found() == found("user:7") == []

    def cited(*flags: str) -> list[str]:  # the chat path: gateway-less request → agent worker → retrieval
        out = run("ask", "When is the Veltrin canteen salary review?", "--json", *flags)
        assert out.returncode == 0, out.stderr
        return [c["document_id"] for c in json.loads(out.stdout)["result"]["citations"]]

    assert cited("--principal", "group:hr") == [str(note)]
    assert cited() == []


def test_publish_refuses_schema_invalid_events_naming_the_field(run) -> None:
    result = run("publish", "docs.ingest", "-", stdin='{"text": "hello"}')
    assert result.returncode == 2
    assert "document_id: Field required" in result.stderr


def test_publish_without_validation_shows_the_dead_letter(run) -> None:
    result = run("publish", "docs.ingest", "-", "--no-validate", stdin='{"document_id": "d1", "txt": "typo"}\n')
    assert result.returncode == 0, result.stderr
    assert "dead-lettered to docs.ingest.dlq" in result.stderr and "txt: Extra inputs are not permitted" in result.stderr


def test_publish_valid_event_is_processed(run) -> None:
    result = run("publish", "docs.ingest", "-", stdin='{"document_id": "d1", "title": "T", "text": "Hello there."}')
    assert result.returncode == 0, result.stderr
    assert "published 1 event(s) to docs.ingest" in result.stderr and "dead-lettered" not in result.stderr


def _tiny_beir(folder: Path) -> Path:
    (folder / "qrels").mkdir(parents=True)
    docs = [("d1", "Ostra river", "The Ostra river flows 612 kilometres to the Northern Sea."),
            ("d2", "Bakery", "Harbor Street Bakery bakes rye sourdough every morning."),
            ("d3", "Observatory", "The Veltrin Observatory sits on Mount Caldera."),
            ("d4", "Glacier", "The Kessel glacier feeds several lakes in the north.")]
    (folder / "corpus.jsonl").write_text("\n".join(json.dumps({"_id": i, "title": t, "text": x}) for i, t, x in docs))
    (folder / "queries.jsonl").write_text("\n".join(json.dumps(q) for q in [
        {"_id": "q1", "text": "How long is the Ostra river?"}, {"_id": "q2", "text": "What bread does Harbor Street Bakery bake?"}]))
    (folder / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\nq1\td1\t1\nq2\td2\t1\n")
    (folder / "answers.jsonl").write_text('{"_id": "q1", "answers": ["612 kilometres"]}\n{"_id": "q2", "answers": ["rye sourdough"]}\n')
    return folder


def test_eval_retrieval_reports_the_contract_keys(run, tmp_path: Path) -> None:
    result = run("eval", "retrieval", "--dataset", str(_tiny_beir(tmp_path / "tiny")), "--mode", "hybrid", "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert {"ndcg@10", "recall@100", "mrr@10", "queries"} <= report.keys()
    assert report["queries"] == 2 and report["ndcg@10"] == 1.0 and report["mrr@10"] == 1.0


def test_eval_qa_asks_through_the_chat_path_and_reports_the_contract_keys(run, tmp_path: Path) -> None:
    result = run("eval", "qa", "--dataset", str(_tiny_beir(tmp_path / "tiny")), "--limit", "1", "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert {"exact_match", "f1", "contains", "hit@5", "questions"} <= report.keys()
    assert report["questions"] == 1 and report["hit@5"] == 1.0
